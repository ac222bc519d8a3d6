package otlp

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/prometheus/exporter-toolkit/web"
	"go.yaml.in/yaml/v2"
	"golang.org/x/crypto/bcrypt"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// UseWebConfig secures both OTLP listeners with an exporter-toolkit web
// config (Prometheus's --web.config.file): TLS from tls_server_config and
// basic auth from basic_auth_users. OTLP/HTTP is served by the toolkit
// itself; OTLP/gRPC gets TLS credentials and an auth check built from the
// same file. The file is checked now and re-read on every TLS handshake
// and every call, so certificate and user changes apply without a
// restart; whether TLS is on at all is decided here. Call it before Run.
func (r *Receiver) UseWebConfig(path string) error {
	if path == "" {
		return nil
	}
	if err := web.Validate(path); err != nil {
		return fmt.Errorf("otlp web config %s: %w", path, err)
	}
	c, err := readWebConfig(path)
	if err != nil {
		return fmt.Errorf("otlp web config %s: %w", path, err)
	}
	r.webConfigFile = path
	r.grpcAuth = &grpcWebAuth{path: path, tls: c.TLSConfig.IsEnabled(), checked: map[[32]byte]bool{}}
	return nil
}

// readWebConfig reads the file as the toolkit does (same defaults, strict
// YAML, paths relative to the file); the toolkit keeps its reader private.
func readWebConfig(path string) (*web.Config, error) {
	content, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c := &web.Config{
		TLSConfig:  web.TLSConfig{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS13, PreferServerCipherSuites: true},
		HTTPConfig: web.HTTPConfig{HTTP2: true},
	}
	if err := yaml.UnmarshalStrict(content, c); err != nil {
		return nil, err
	}
	c.TLSConfig.SetDirectory(filepath.Dir(path))
	return c, nil
}

// grpcWebAuth applies a web config to the gRPC listener.
type grpcWebAuth struct {
	path string
	tls  bool

	mu sync.Mutex
	// checked caches bcrypt outcomes by hash of (user, stored hash,
	// password): bcrypt costs milliseconds and exporters send the same
	// header on every call.
	checked map[[32]byte]bool
}

// serverOptions are the TLS credentials (when the file enables TLS) and
// the basic-auth interceptors.
func (g *grpcWebAuth) serverOptions() []grpc.ServerOption {
	var opts []grpc.ServerOption
	if g.tls {
		opts = append(opts, grpc.Creds(credentials.NewTLS(&tls.Config{
			GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
				c, err := readWebConfig(g.path)
				if err != nil {
					return nil, err
				}
				tc, err := web.ConfigToTLSConfig(&c.TLSConfig)
				if err != nil {
					return nil, err
				}
				tc.NextProtos = []string{"h2"}
				return tc, nil
			},
		})))
	}
	opts = append(opts,
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
			if err := g.authorize(ctx); err != nil {
				return nil, err
			}
			return h(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if err := g.authorize(ss.Context()); err != nil {
				return err
			}
			return h(srv, ss)
		}),
	)
	return opts
}

// fakeHash stands in for an unknown user, so a wrong user name costs the
// same bcrypt time as a wrong password (no user enumeration by timing).
var fakeHash = func() []byte {
	h, err := bcrypt.GenerateFromPassword([]byte("not a password"), bcrypt.DefaultCost)
	if err != nil {
		panic(err)
	}
	return h
}()

var errBadWebConfig = errors.New("web config unreadable")

// authorize checks the "authorization: Basic …" metadata against the
// file's basic_auth_users, if it names any.
func (g *grpcWebAuth) authorize(ctx context.Context) error {
	c, err := readWebConfig(g.path)
	if err != nil {
		return status.Error(codes.Internal, errBadWebConfig.Error())
	}
	if len(c.Users) == 0 {
		return nil
	}
	user, pass, ok := basicAuthFromMetadata(ctx)
	if !ok {
		return status.Error(codes.Unauthenticated, "basic auth credentials required")
	}
	hash, known := c.Users[user]
	stored := []byte(hash)
	if !known {
		stored = fakeHash
	}
	key := sha256.Sum256([]byte(user + "\x00" + string(stored) + "\x00" + pass))
	g.mu.Lock()
	good, cached := g.checked[key]
	g.mu.Unlock()
	if !cached {
		good = bcrypt.CompareHashAndPassword(stored, []byte(pass)) == nil && known
		g.mu.Lock()
		if len(g.checked) > 1024 {
			clear(g.checked)
		}
		g.checked[key] = good
		g.mu.Unlock()
	}
	if !good {
		return status.Error(codes.Unauthenticated, "invalid basic auth credentials")
	}
	return nil
}

func basicAuthFromMetadata(ctx context.Context) (user, pass string, ok bool) {
	md, _ := metadata.FromIncomingContext(ctx)
	for _, v := range md.Get("authorization") {
		scheme, enc, found := strings.Cut(v, " ")
		if !found || !strings.EqualFold(scheme, "basic") {
			continue
		}
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(enc))
		if err != nil {
			continue
		}
		if u, p, found := strings.Cut(string(raw), ":"); found {
			return u, p, true
		}
	}
	return "", "", false
}
