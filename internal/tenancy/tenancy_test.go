package tenancy

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc/metadata"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestValidateID(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"a", true}, {"team-A_1", true}, {"x!-_.*'()y", true}, {strings.Repeat("a", 150), true},
		{"", false}, {".", false}, {"..", false}, {strings.Repeat("a", 151), false},
		{"a/b", false}, {"a|b", false}, {"a b", false}, {"../etc", false}, {"é", false}, {Empty, false},
	} {
		err := ValidateID(tc.id)
		if (err == nil) != tc.ok {
			t.Errorf("ValidateID(%q) = %v, want ok=%v", tc.id, err, tc.ok)
		}
		if err != nil && Status(err) != http.StatusBadRequest {
			t.Errorf("Status(%v) = %d, want 400", err, Status(err))
		}
	}
}

func TestResolve(t *testing.T) {
	if id, err := Resolve(false, "anything/at all"); err != nil || id != Default {
		t.Errorf("off: got %q, %v; want fake", id, err)
	}
	if _, err := Resolve(true, ""); !errors.Is(err, ErrNoOrgID) || Status(err) != http.StatusUnauthorized || err.Error() != "no org id" {
		t.Errorf("on, missing: got %v", err)
	}
	if id, err := Resolve(true, "t1"); err != nil || id != "t1" {
		t.Errorf("on: got %q, %v", id, err)
	}
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("X-Scope-Orgid", "t2")
	if id, err := FromHTTP(r, true); err != nil || id != "t2" {
		t.Errorf("FromHTTP: got %q, %v", id, err)
	}
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs("X-Scope-OrgID", "t3"))
	if id, err := FromGRPC(ctx, true); err != nil || id != "t3" {
		t.Errorf("FromGRPC: got %q, %v", id, err)
	}
	if _, err := FromGRPC(context.Background(), true); !errors.Is(err, ErrNoOrgID) {
		t.Errorf("FromGRPC without metadata: got %v", err)
	}
	if id, ok := FromContext(NewContext(context.Background(), "t4")); !ok || id != "t4" {
		t.Errorf("FromContext: got %q, %v", id, ok)
	}
	if _, ok := FromContext(context.Background()); ok {
		t.Error("FromContext of a bare context reported a tenant")
	}
}

type fakeStore struct {
	dir     string
	running atomic.Bool
	closed  atomic.Bool
}

func (f *fakeStore) Run(ctx context.Context) error {
	f.running.Store(true)
	<-ctx.Done()
	f.running.Store(false)
	return nil
}

func (f *fakeStore) Close() error { f.closed.Store(true); return nil }

func TestSet(t *testing.T) {
	root := filepath.Join(t.TempDir(), "logs")
	var opened atomic.Int32
	s := NewSet(root, func(tenant, dir string) (*fakeStore, error) {
		opened.Add(1)
		return &fakeStore{dir: dir}, nil
	})
	fake, err := s.Get(Default)
	if err != nil || fake.dir != root {
		t.Fatalf("fake: %v, dir %q want %q", err, fake.dir, root)
	}
	a, err := s.Get("a")
	if err != nil || a.dir != filepath.Join(root+"-tenants", "a") {
		t.Fatalf("a: %v, dir %q", err, a.dir)
	}
	if again, _ := s.Get("a"); again != a {
		t.Fatal("second Get opened another store")
	}
	if _, err := s.Get("../x"); err == nil {
		t.Fatal("Get of an invalid tenant succeeded")
	}
	// Read of a tenant that never wrote: the shared empty store, nothing per tenant on disk.
	e1, _ := s.Read("never")
	e2, _ := s.Read("nor-this")
	if e1 != e2 || e1 == a || e1 == fake {
		t.Fatal("Read of unknown tenants did not give the one empty store")
	}
	if _, err := os.Stat(s.Dir("never")); !os.IsNotExist(err) {
		t.Fatalf("Read created the tenant's directory: %v", err)
	}
	if r, _ := s.Read("a"); r != a {
		t.Fatal("Read of a known tenant did not give its store")
	}
	if got := s.Tenants(); strings.Join(got, ",") != "a,fake" {
		t.Fatalf("Tenants = %v", got)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	b, _ := s.Get("b") // opened after Run started: runs too
	for _, st := range []*fakeStore{fake, a, b} {
		for !st.running.Load() {
			time.Sleep(time.Millisecond) // poll, bounded by the test timeout
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, st := range []*fakeStore{fake, a, b, e1} {
		if !st.closed.Load() {
			t.Fatalf("store %s not closed", st.dir)
		}
	}
	if _, err := s.Get("c"); err == nil {
		t.Fatal("Get after Close succeeded")
	}
	// A store from an earlier run is found on disk by Read.
	s2 := NewSet(root, func(tenant, dir string) (*fakeStore, error) { return &fakeStore{dir: dir}, nil })
	if r, _ := s2.Read("a"); r.dir != s2.Dir("a") {
		t.Fatalf("Read after restart: dir %q", r.dir)
	}
	s2.Close()
}

func TestSetOpenErrorRetries(t *testing.T) {
	fail := true
	s := NewSet(t.TempDir(), func(tenant, dir string) (*fakeStore, error) {
		if fail {
			return nil, errors.New("disk on fire")
		}
		return &fakeStore{dir: dir}, nil
	})
	if _, err := s.Get("a"); err == nil {
		t.Fatal("want the open error")
	}
	fail = false
	if _, err := s.Get("a"); err != nil {
		t.Fatalf("retry: %v", err)
	}
	s.Close()
}

// TestSetOpened: Opened answers only for stores already open; it neither
// opens one nor waits for an open in progress.
func TestSetOpened(t *testing.T) {
	release := make(chan struct{})
	s := NewSet(t.TempDir(), func(tenant, dir string) (*fakeStore, error) {
		if tenant == "slow" {
			<-release
		}
		return &fakeStore{dir: dir}, nil
	})
	defer s.Close()
	if _, ok := s.Opened("a"); ok {
		t.Fatal("Opened before any Get")
	}
	if got := s.Tenants(); len(got) != 0 {
		t.Fatalf("Opened opened %v", got)
	}
	a, err := s.Get("a")
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := s.Opened("a"); !ok || got != a {
		t.Fatalf("Opened(a) = %v, %v; want the store Get returned", got, ok)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := s.Get("slow"); err != nil {
			t.Error(err)
		}
	}()
	for {
		s.mu.Lock()
		_, started := s.stores["slow"]
		s.mu.Unlock()
		if started {
			break
		}
		runtime.Gosched()
	}
	if _, ok := s.Opened("slow"); ok {
		t.Error("Opened answered for a store still opening")
	}
	close(release)
	<-done
	if _, ok := s.Opened("slow"); !ok {
		t.Error("Opened(slow) after its open finished")
	}
}

func TestGate(t *testing.T) {
	g := NewGate(GateConfig{MaxConcurrent: 2, MaxQueuedPerTenant: 1, MaxWait: time.Minute})
	ctx := context.Background()
	r1, err1 := g.Enter(ctx, "a")
	r2, err2 := g.Enter(ctx, "a")
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	// Third of a waits (queue 1), fourth of a is refused, one of b may still wait.
	var wg sync.WaitGroup
	wg.Add(1)
	var waited error
	go func() {
		defer wg.Done()
		rel, err := g.Enter(ctx, "a")
		waited = err
		if err == nil {
			rel()
		}
	}()
	for {
		g.mu.Lock()
		n := g.queued["a"]
		g.mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := g.Enter(ctx, "a"); !errors.Is(err, ErrQueueFull) || !Refused(err) {
		t.Fatalf("fourth of a: %v, want queue full", err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := g.Enter(short, "b"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("b: %v, want its context's deadline", err)
	}
	r1()
	wg.Wait()
	if waited != nil {
		t.Fatalf("queued query: %v", waited)
	}
	r2()

	tg := NewGate(GateConfig{MaxConcurrent: 1, MaxQueuedPerTenant: 5, MaxWait: 10 * time.Millisecond})
	rel, _ := tg.Enter(ctx, "a")
	if _, err := tg.Enter(ctx, "a"); !errors.Is(err, ErrQueueTimeout) || !Refused(err) {
		t.Fatalf("timeout: %v", err)
	}
	rel()
	if rel, err := NewGate(GateConfig{}).Enter(ctx, "a"); err != nil {
		t.Fatal(err)
	} else {
		rel()
	}
}
