package ui

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// cpuTime is the process's user+system CPU time so far.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkProtectSessionCheck is the cost Protect adds to every request on
// the UI listener: cookie parse, token digest, session lookup, role check.
// cpu-ns/op is CPU time (all threads, GC included) per request, which stays
// honest when other processes share the cores.
func BenchmarkProtectSessionCheck(b *testing.B) {
	f := newFixture(b, DefaultConfig(), b.TempDir(), nil, nil)
	h := f.ui.Protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	c := login(b, f.mux(), "admin", testPassword)
	req := httptest.NewRequest(http.MethodGet, "/api/v1/query?query=up", nil)
	req.AddCookie(c)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	start := cpuTime(b)
	b.ResetTimer()
	for b.Loop() {
		h.ServeHTTP(w, req)
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
	if w.code != 0 && w.code != http.StatusOK {
		b.Fatalf("status %d", w.code)
	}
}

type discardWriter struct {
	h    http.Header
	code int
}

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(code int)        { d.code = code }

// BenchmarkLoginBcrypt10 is one successful login against a cost-10 bcrypt
// hash (what serve writes): the CPU an attempt costs, which the throttle
// bounds per client.
func BenchmarkLoginBcrypt10(b *testing.B) {
	h, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.DefaultCost)
	if err != nil {
		b.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Users = []UserConfig{{Name: "u", PasswordHash: secret(string(h)), Role: RoleViewer}}
	f := newFixture(b, cfg, b.TempDir(), nil, nil)
	mux := f.mux()
	body := loginBody("u", "pw")
	b.ReportAllocs()
	start := cpuTime(b)
	b.ResetTimer()
	for b.Loop() {
		if rec := do(mux, http.MethodPost, "/api/ui/login", body, jsonHdr); rec.Code != http.StatusOK {
			b.Fatalf("login: %d", rec.Code)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
}

// BenchmarkDashboardGet is GET /api/dashboards/uid/<uid> of a built-in
// dashboard (the largest of the eight): what opening a dashboard costs the
// server before any query.
func BenchmarkDashboardGet(b *testing.B) {
	f := newFixture(b, DefaultConfig(), b.TempDir(), nil, nil)
	h := f.mux()
	req := httptest.NewRequest(http.MethodGet, "/api/dashboards/uid/nx-backend-services", nil)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	start := cpuTime(b)
	b.ResetTimer()
	for b.Loop() {
		h.ServeHTTP(w, req)
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
}

// BenchmarkDashboardSearch is GET /api/ui/dashboards with a query over the
// eight built-in and 200 imported dashboards.
func BenchmarkDashboardSearch(b *testing.B) {
	f := newFixture(b, DefaultConfig(), b.TempDir(), nil, nil)
	h := f.mux()
	f.ui.dash.mu.Lock()
	for i := range 200 {
		uid := "imp" + strconv.Itoa(i)
		f.ui.dash.imported[uid] = &dashboard{uid: uid, title: "Imported " + uid, tags: []string{"x"}, version: 1, source: sourceImported, file: uid + ".json", folderTitle: "General"}
	}
	f.ui.dash.mu.Unlock()
	req := httptest.NewRequest(http.MethodGet, "/api/ui/dashboards?query=e", nil)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	start := cpuTime(b)
	b.ResetTimer()
	for b.Loop() {
		h.ServeHTTP(w, req)
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime(b)-start)/float64(b.N), "cpu-ns/op")
}
