package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/promslog"

	"github.com/nx-watcher/nxwatcher/internal/testcert"
)

// --web.config.file as Prometheus has it: TLS and basic auth, re-read on
// change, a wrong CA refused.
func TestWebConfigTLSAndBasicAuth(t *testing.T) {
	dir := t.TempDir()
	pool, certFile, keyFile := testcert.Pair(t, dir, "good")
	otherPool, _, _ := testcert.Pair(t, dir, "other")
	cfgPath := filepath.Join(dir, "web.yml")
	testcert.WebConfig(t, cfgPath, certFile, keyFile, "admin", "s3cret")

	s, err := Listen("127.0.0.1:0", promslog.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.UseWebConfig(cfgPath); err != nil {
		t.Fatal(err)
	}
	s.Serve(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok")) }))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	url := "https://" + s.Addr().String() + "/-/healthy"
	client := func(p *x509.CertPool) *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p}}}
	}
	get := func(c *http.Client, user, pass string) (int, error) {
		req, _ := http.NewRequest("GET", url, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if code, err := get(client(pool), "", ""); err != nil || code != http.StatusUnauthorized {
		t.Fatalf("no credentials: %d %v, want 401", code, err)
	}
	if code, err := get(client(pool), "admin", "wrong"); err != nil || code != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d %v, want 401", code, err)
	}
	if code, err := get(client(pool), "admin", "s3cret"); err != nil || code != http.StatusOK {
		t.Fatalf("good credentials: %d %v, want 200", code, err)
	}
	if _, err := get(client(otherPool), "admin", "s3cret"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("wrong CA: err = %v, want a certificate error", err)
	}
	resp, err := http.Get("http://" + s.Addr().String() + "/-/healthy")
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP answered 200 on a TLS listener")
		}
	}
	// A changed password applies without a restart.
	testcert.WebConfig(t, cfgPath, certFile, keyFile, "admin", "n3w")
	if code, err := get(client(pool), "admin", "n3w"); err != nil || code != http.StatusOK {
		t.Fatalf("new password after editing the file: %d %v, want 200", code, err)
	}
	if code, _ := get(client(pool), "admin", "s3cret"); code != http.StatusUnauthorized {
		t.Fatalf("old password after editing the file: %d, want 401", code)
	}
}

func TestWebConfigRefusedWhenBroken(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "web.yml")
	if err := os.WriteFile(bad, []byte("tls_server_config:\n  cert_file: /nope.crt\n  key_file: /nope.key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Listen("127.0.0.1:0", promslog.NewNopLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.UseWebConfig(bad); err == nil || !strings.Contains(err.Error(), "web.yml") {
		t.Fatalf("broken web config: err = %v, want one naming the file", err)
	}
}
