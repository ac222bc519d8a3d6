package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/grafana/loki/pkg/push"

	"github.com/nx-watcher/nxwatcher/internal/testcert"
)

func TestAgentCheckSyntaxAndBadConfig(t *testing.T) {
	var out, errb bytes.Buffer
	if code := runAgent(t.Context(), []string{"--config.file=../../deploy/agent/promtail.yaml", "-check-syntax"}, &out, &errb, nil, nil); code != 0 {
		t.Fatalf("design doc config: %d %s", code, errb.String())
	}
	if code := checkAgentConfig([]string{"../../deploy/agent/promtail.yaml"}, &out, &errb); code != 0 {
		t.Fatalf("check: %d %s", code, errb.String())
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("clients: [{url: http://x/}]\nscrape_config: []\n"), 0o644)
	errb.Reset()
	if code := runAgent(t.Context(), []string{"-config.file", bad}, &out, &errb, nil, nil); code != 1 || !strings.Contains(errb.String(), "line 2: field scrape_config not found") {
		t.Fatalf("bad config: %d %s", code, errb.String())
	}
	if code := runAgent(t.Context(), nil, &out, &errb, nil, nil); code != 2 {
		t.Fatalf("no config: %d", code)
	}
}

func TestAgentShipsAndServes(t *testing.T) {
	var pushed atomic.Int64
	loki := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		raw, err := snappy.Decode(nil, body)
		var req push.PushRequest
		if err != nil || req.Unmarshal(raw) != nil {
			http.Error(w, "bad", 400)
			return
		}
		for _, s := range req.Streams {
			pushed.Add(int64(len(s.Entries)))
		}
		w.WriteHeader(204)
	}))
	defer loki.Close()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.log"), []byte("one\ntwo\n"), 0o644)
	cfgFile := filepath.Join(dir, "promtail.yaml")
	os.WriteFile(cfgFile, []byte(fmt.Sprintf(`
server: {http_listen_address: 127.0.0.1, http_listen_port: 9080}
positions: {filename: %s/positions.yaml}
clients: [{url: "${NXW_AGENT_TEST_URL}", batchwait: 10ms}]
target_config: {sync_period: 50ms}
scrape_configs:
  - job_name: f
    static_configs: [{targets: [localhost], labels: {job: f, __path__: %s/*.log}}]
`, dir, dir)), 0o644)
	t.Setenv("NXW_AGENT_TEST_URL", loki.URL+"/loki/api/v1/push")
	ctx, cancel := context.WithCancel(t.Context())
	listening := make(chan string, 1)
	reload := make(chan struct{})
	done := make(chan int, 1)
	stderr := &syncBuffer{}
	go func() {
		done <- runAgent(ctx, []string{"-config.file=" + cfgFile, "-config.expand-env", "-server.http-listen-port=0"}, io.Discard, stderr, listening, reload)
	}()
	addr := <-listening
	deadline := time.Now().Add(10 * time.Second)
	for pushed.Load() < 2 {
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("lines not pushed: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, p := range []string{"/ready", "/metrics", "/targets"} {
		// The receiver sees a push before the client has counted its
		// answer, so the sent counter may lag the lines by a moment.
		var (
			code int
			b    []byte
		)
		for wait := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			resp, err := http.Get("http://" + addr + p)
			if err != nil {
				t.Fatal(err)
			}
			b, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			code = resp.StatusCode
			if p != "/metrics" || strings.Contains(string(b), `promtail_sent_entries_total{host="`) || time.Now().After(wait) {
				break
			}
		}
		if code != 200 {
			t.Errorf("%s: %d %s", p, code, b)
		}
		if p == "/metrics" && !strings.Contains(string(b), `promtail_sent_entries_total{host="`) {
			t.Errorf("metrics lack promtail_sent_entries_total: %s", b)
		}
	}
	// Reload: a new job appears; a broken file keeps the running config.
	os.WriteFile(filepath.Join(dir, "b.txt"), []byte("three\n"), 0o644)
	cfgText, _ := os.ReadFile(cfgFile)
	os.WriteFile(cfgFile, []byte("clients: [{url: http://x/}]\nbogus: 1\n"), 0o644)
	reload <- struct{}{}
	// The agent reads the file while handling the reload: wait until it has
	// refused the broken one before writing the good one.
	for wait := time.Now().Add(10 * time.Second); !strings.Contains(stderr.String(), "Reload failed"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(wait) {
			cancel()
			<-done
			t.Fatalf("broken config not refused: %s", stderr.String())
		}
	}
	os.WriteFile(cfgFile, append(cfgText, []byte(fmt.Sprintf("  - job_name: g\n    static_configs: [{targets: [localhost], labels: {job: g, __path__: %s/*.txt}}]\n", dir))...), 0o644)
	reload <- struct{}{}
	deadline = time.Now().Add(10 * time.Second)
	for pushed.Load() < 3 {
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("line of the reloaded config not pushed: %s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if pushed.Load() != 3 {
		t.Fatalf("reload re-shipped lines: %d pushed", pushed.Load())
	}
	if !strings.Contains(stderr.String(), "Reload failed") || !strings.Contains(stderr.String(), "Reloaded") {
		t.Errorf("reload logs: %s", stderr.String())
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	pos, _ := os.ReadFile(filepath.Join(dir, "positions.yaml"))
	if !strings.Contains(string(pos), `a.log: "8"`) || !strings.Contains(string(pos), `b.txt: "6"`) {
		t.Fatalf("positions: %s", pos)
	}
}

// startTestAgent runs the agent on 127.0.0.1:0 with a config that tails
// nothing, and returns its address; the agent stops with the test.
func startTestAgent(t *testing.T, serverYAML string, flags ...string) (string, *syncBuffer) {
	t.Helper()
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "promtail.yaml")
	os.WriteFile(cfgFile, []byte(fmt.Sprintf(`
server: {http_listen_address: 127.0.0.1, http_listen_port: 0%s}
positions: {filename: %s/positions.yaml}
clients: [{url: "http://127.0.0.1:1/loki/api/v1/push"}]
scrape_configs:
  - job_name: f
    static_configs: [{targets: [localhost], labels: {job: f, __path__: %s/*.log}}]
`, serverYAML, dir, dir)), 0o644)
	listening := make(chan string, 1)
	done := make(chan int, 1)
	stderr := &syncBuffer{}
	runCtx, stop := context.WithCancel(t.Context())
	go func() {
		done <- runAgent(runCtx, append([]string{"-config.file=" + cfgFile}, flags...), io.Discard, stderr, listening, nil)
	}()
	t.Cleanup(func() {
		stop()
		if code := <-done; code != 0 {
			t.Errorf("agent exit %d: %s", code, stderr.String())
		}
	})
	select {
	case addr := <-listening:
		return addr, stderr
	case code := <-done:
		done <- code
		t.Fatalf("agent exited %d: %s", code, stderr.String())
	}
	return "", nil
}

func TestAgentWebConfigTLSAndBasicAuth(t *testing.T) {
	dir := t.TempDir()
	pool, cert, key := testcert.Pair(t, dir, "agent")
	wrongPool, _, _ := testcert.Pair(t, dir, "other")
	webCfg := filepath.Join(dir, "web.yml")
	testcert.WebConfig(t, webCfg, cert, key, "alice", "s3cret")
	addr, _ := startTestAgent(t, "", "--web.config.file="+webCfg)
	url := "https://" + addr + "/metrics"

	good := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer good.CloseIdleConnections()
	get := func(c *http.Client, user, pass string) (int, error) {
		req, _ := http.NewRequest(http.MethodGet, url, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, nil
	}
	if code, err := get(good, "", ""); err != nil || code != http.StatusUnauthorized {
		t.Errorf("no credentials: %d %v, want 401", code, err)
	}
	if code, err := get(good, "alice", "wrong"); err != nil || code != http.StatusUnauthorized {
		t.Errorf("wrong password: %d %v, want 401", code, err)
	}
	if code, err := get(good, "alice", "s3cret"); err != nil || code != http.StatusOK {
		t.Errorf("credentials: %d %v, want 200", code, err)
	}
	wrong := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: wrongPool}}}
	defer wrong.CloseIdleConnections()
	if _, err := get(wrong, "alice", "s3cret"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("wrong CA: %v, want a certificate error", err)
	}
	plain := &http.Client{}
	if code, err := get(plain, "alice", "s3cret"); err == nil && code == http.StatusOK {
		t.Error("plain HTTP answered 200 on the TLS listener")
	}
	// The file is re-read on every request: a changed password applies at once.
	testcert.WebConfig(t, webCfg, cert, key, "alice", "n3w")
	if code, err := get(good, "alice", "s3cret"); err != nil || code != http.StatusUnauthorized {
		t.Errorf("old password after the change: %d %v, want 401", code, err)
	}
	if code, err := get(good, "alice", "n3w"); err != nil || code != http.StatusOK {
		t.Errorf("new password: %d %v, want 200", code, err)
	}
}

// Promtail's server.http_tls_config with client certificates required.
func TestAgentHTTPTLSConfigClientCert(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir)
	srvCert, srvKey := ca.issue(t, dir, "server", x509.ExtKeyUsageServerAuth)
	cliCert, cliKey := ca.issue(t, dir, "client", x509.ExtKeyUsageClientAuth)
	other := newTestCA(t, filepath.Join(dir, "other"))
	badCert, badKey := other.issue(t, filepath.Join(dir, "other"), "client", x509.ExtKeyUsageClientAuth)

	addr, _ := startTestAgent(t, fmt.Sprintf(`, http_tls_config: {cert_file: %s, key_file: %s, client_auth_type: RequireAndVerifyClientCert, client_ca_file: %s}`,
		srvCert, srvKey, ca.file))
	try := func(certFile, keyFile string, roots *x509.CertPool) error {
		tc := &tls.Config{RootCAs: roots}
		if certFile != "" {
			kp, err := tls.LoadX509KeyPair(certFile, keyFile)
			if err != nil {
				t.Fatal(err)
			}
			tc.Certificates = []tls.Certificate{kp}
		}
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
		defer c.CloseIdleConnections()
		resp, err := c.Get("https://" + addr + "/metrics")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	if err := try(cliCert, cliKey, ca.pool); err != nil {
		t.Errorf("client certificate from the CA: %v", err)
	}
	if err := try("", "", ca.pool); err == nil {
		t.Error("no client certificate accepted")
	}
	if err := try(badCert, badKey, ca.pool); err == nil {
		t.Error("client certificate of another CA accepted")
	}
	if err := try(cliCert, cliKey, other.pool); err == nil {
		t.Error("server certificate trusted by the wrong CA")
	}
}

func TestAgentTLSConfigErrors(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "promtail.yaml")
	for _, tc := range []struct{ server, flag, want string }{
		{`{http_tls_config: {cert_file: a.crt}}`, "", "cert_file and key_file are both required"},
		{`{http_tls_config: {cert_file: a, key_file: b, client_auth_type: Sometimes}}`, "", "client_auth_type"},
		{`{http_tls_config: {cert_file: /nope.crt, key_file: /nope.key}}`, "", "http_tls_config"},
		{`{http_tls_config: {cert_file: a, key_file: b}}`, "--web.config.file=" + filepath.Join(dir, "w.yml"), "use one"},
	} {
		os.WriteFile(cfgFile, []byte("server: "+tc.server+"\nclients: [{url: http://x/}]\n"), 0o644)
		var errb syncBuffer
		args := []string{"-config.file=" + cfgFile}
		if tc.flag != "" {
			args = append(args, tc.flag)
		}
		if code := runAgent(t.Context(), args, io.Discard, &errb, nil, nil); code != 1 || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%s: exit %d, %s; want 1 and %q", tc.server, code, errb.String(), tc.want)
		}
	}
}

func TestAgentReloadEndpoint(t *testing.T) {
	addr, stderr := startTestAgent(t, "", "--server.enable-runtime-reload")
	resp, err := http.Get("http://" + addr + "/reload")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /reload: %d, want 405", resp.StatusCode)
	}
	resp, err = http.Post("http://"+addr+"/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(stderr.String(), "Reloaded") {
		t.Errorf("POST /reload: %d %s; log: %s", resp.StatusCode, b, stderr.String())
	}
	// Without the flag (or server.enable_runtime_reload) there is no /reload.
	addr2, _ := startTestAgent(t, "")
	resp, err = http.Post("http://"+addr2+"/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("POST /reload without the flag: %d, want 404", resp.StatusCode)
	}
	// The config key alone enables it too.
	addr3, _ := startTestAgent(t, ", enable_runtime_reload: true")
	resp, err = http.Post("http://"+addr3+"/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("POST /reload with server.enable_runtime_reload: %d", resp.StatusCode)
	}
}

func TestAgentReloadEndpointBadConfig(t *testing.T) {
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "promtail.yaml")
	os.WriteFile(cfgFile, []byte(fmt.Sprintf("server: {http_listen_address: 127.0.0.1, http_listen_port: 0, enable_runtime_reload: true}\npositions: {filename: %s/p.yaml}\nclients: [{url: http://127.0.0.1:1/}]\n", dir)), 0o644)
	listening := make(chan string, 1)
	done := make(chan int, 1)
	ctx, stop := context.WithCancel(t.Context())
	go func() {
		done <- runAgent(ctx, []string{"-config.file=" + cfgFile}, io.Discard, io.Discard, listening, nil)
	}()
	addr := <-listening
	defer func() { stop(); <-done }()
	os.WriteFile(cfgFile, []byte("clients: [{url: http://x/}]\nbogus: 1\n"), 0o644)
	resp, err := http.Post("http://"+addr+"/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(string(b), "bogus") {
		t.Errorf("bad config reload: %d %s, want 500 naming the key", resp.StatusCode, b)
	}
	// The agent still serves.
	resp, err = http.Get("http://" + addr + "/metrics")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("after a failed reload: %v", err)
	}
	resp.Body.Close()
}

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	file string
}

func newTestCA(t *testing.T, dir string) *testCA {
	t.Helper()
	os.MkdirAll(dir, 0o755)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	file := filepath.Join(dir, "ca.crt")
	os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	return &testCA{cert: cert, key: key, pool: pool, file: file}
}

func (ca *testCA) issue(t *testing.T, dir, name string, usage x509.ExtKeyUsage) (certFile, keyFile string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)
	return certFile, keyFile
}
