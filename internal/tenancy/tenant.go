// Package tenancy is optional multi-tenancy for the Loki and Tempo APIs, as
// Loki's auth_enabled and Tempo's multitenancy_enabled do it: the tenant of a
// request comes from the X-Scope-OrgID header (HTTP) or the x-scope-orgid
// metadata (gRPC); with tenancy off every request is tenant "fake".
//
// It holds three things:
//   - reading and validating the tenant of a request (FromHTTP, FromGRPC) and
//     carrying it in a context (NewContext, FromContext);
//   - Set, a generic set of per-tenant stores opened on first write, with one
//     Run and one Close for all of them; tenant "fake" keeps the store
//     directory used before tenancy existed, every other tenant gets
//     <dir>-tenants/<id>;
//   - Gate, the bound on concurrent queries per API with a bounded wait
//     queue per tenant (Loki's querier.max_concurrent and
//     max_outstanding_per_tenant, Tempo's max_concurrent_queries).
//
// See docs/adr/0034-optional-tenancy.md and docs/security.md.
package tenancy

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"google.golang.org/grpc/metadata"
)

const (
	// Header is the HTTP header that names the tenant.
	Header = "X-Scope-OrgID"
	// MetadataKey is the gRPC metadata key that names the tenant (gRPC
	// lower-cases metadata keys).
	MetadataKey = "x-scope-orgid"
	// Default is the one tenant when tenancy is off, as in Loki.
	Default = "fake"
	// MaxIDLength is Loki's and Mimir's documented limit on a tenant ID.
	MaxIDLength = 150
)

// ErrNoOrgID is a missing tenant with tenancy on. Its text is Loki's
// answer (401 "no org id").
var ErrNoOrgID = errors.New("no org id")

// InvalidIDError is a tenant ID outside the documented rules (400).
type InvalidIDError struct {
	ID     string
	Reason string
}

func (e *InvalidIDError) Error() string {
	id := e.ID
	if len(id) > 40 {
		id = id[:40] + "…"
	}
	return fmt.Sprintf("tenant ID %q is invalid: %s", id, e.Reason)
}

// ValidateID applies the documented tenant ID rules: 1 to 150 bytes of
// A-Z a-z 0-9 and ! - _ . * ' ( ), and not "." or "..". A valid ID is
// therefore always one safe path segment.
func ValidateID(id string) error {
	switch {
	case id == "":
		return &InvalidIDError{ID: id, Reason: "empty"}
	case len(id) > MaxIDLength:
		return &InvalidIDError{ID: id, Reason: fmt.Sprintf("longer than %d bytes", MaxIDLength)}
	case id == "." || id == "..":
		return &InvalidIDError{ID: id, Reason: `"." and ".." are not allowed`}
	}
	for i := 0; i < len(id); i++ {
		if !idChar(id[i]) {
			return &InvalidIDError{ID: id, Reason: fmt.Sprintf("character %q is not allowed (use A-Z a-z 0-9 ! - _ . * ' ( ))", id[i])}
		}
	}
	return nil
}

func idChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '!', '-', '_', '.', '*', '\'', '(', ')':
		return true
	}
	return false
}

// Resolve turns a header value into the request's tenant: with tenancy off
// it is always Default (the header is ignored, as upstream does); with it
// on the value is required (ErrNoOrgID) and must be valid
// (*InvalidIDError).
func Resolve(enabled bool, value string) (string, error) {
	if !enabled {
		return Default, nil
	}
	if value == "" {
		return "", ErrNoOrgID
	}
	if err := ValidateID(value); err != nil {
		return "", err
	}
	return value, nil
}

// FromHTTP is Resolve on the request's X-Scope-OrgID header.
func FromHTTP(r *http.Request, enabled bool) (string, error) {
	if !enabled {
		return Default, nil
	}
	return Resolve(true, r.Header.Get(Header))
}

// FromGRPC is Resolve on the incoming call's x-scope-orgid metadata.
func FromGRPC(ctx context.Context, enabled bool) (string, error) {
	if !enabled {
		return Default, nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	var v string
	if vs := md.Get(MetadataKey); len(vs) > 0 {
		v = vs[0]
	}
	return Resolve(true, v)
}

// Status is the HTTP status for an error of Resolve: 401 for a missing
// tenant, 400 for an invalid one, 0 for anything else.
func Status(err error) int {
	var inv *InvalidIDError
	switch {
	case errors.Is(err, ErrNoOrgID):
		return http.StatusUnauthorized
	case errors.As(err, &inv):
		return http.StatusBadRequest
	}
	return 0
}

type ctxKey struct{}

// NewContext returns ctx carrying tenant.
func NewContext(ctx context.Context, tenant string) context.Context {
	return context.WithValue(ctx, ctxKey{}, tenant)
}

// FromContext returns the tenant NewContext put in ctx.
func FromContext(ctx context.Context) (string, bool) {
	t, ok := ctx.Value(ctxKey{}).(string)
	return t, ok && t != ""
}
