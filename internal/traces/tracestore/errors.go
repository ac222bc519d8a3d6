package tracestore

import (
	"errors"
	"fmt"
)

// ErrInvalidID is matched (errors.Is) by every InvalidIDError; receivers map
// it to HTTP 400 / gRPC InvalidArgument.
var ErrInvalidID = errors.New("invalid trace or span id")

// ErrTraceTooLarge is returned when a trace would grow beyond MaxTraceBytes;
// receivers map it to HTTP 400 / gRPC InvalidArgument (retrying cannot help).
var ErrTraceTooLarge = errors.New("trace too large")

// ErrClosed is returned by ConsumeTraces after Close.
var ErrClosed = errors.New("tracestore closed")

// InvalidIDError says which span of a request carried a bad ID. Nothing of the
// request was stored.
type InvalidIDError struct {
	ResourceIndex, ScopeIndex, SpanIndex int
	// Field is "trace_id", "span_id" or "parent_span_id".
	Field string
	// Reason is "all zero" for now; spans with absent IDs decode as zero.
	Reason string
}

func (e *InvalidIDError) Error() string {
	return fmt.Sprintf("resource_spans[%d].scope_spans[%d].spans[%d].%s: %s", e.ResourceIndex, e.ScopeIndex, e.SpanIndex, e.Field, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidID) true.
func (e *InvalidIDError) Is(target error) bool { return target == ErrInvalidID }
