package backlog

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// sink records what each endpoint's sender delivered; an endpoint whose
// config says down refuses (retries) until ctx ends.
type sink struct {
	mu   sync.Mutex
	got  map[string][]string // "name/config" -> records
	drop map[string]int64
}

type fakeCfg struct {
	URL  string
	Down bool
}

func newSink() *sink { return &sink{got: map[string][]string{}, drop: map[string]int64{}} }

func (s *sink) spec(name string, cfg fakeCfg, closed *int) Spec {
	return Spec{
		Name: name, SegmentSize: 256, MaxSize: 1 << 20, Config: cfg,
		Run: func(ctx context.Context, b *Backlog) {
			b.Drain(ctx, Sender{
				Send: func(ctx context.Context, rec []byte) bool {
					if cfg.Down {
						<-ctx.Done()
						return false
					}
					s.mu.Lock()
					s.got[name+"/"+cfg.URL] = append(s.got[name+"/"+cfg.URL], string(rec))
					s.mu.Unlock()
					return true
				},
				Sleep:   SleepCtx,
				Corrupt: func(int64) {},
				Pending: func(int64) {},
				Logger:  slog.New(slog.DiscardHandler),
			})
		},
		Close: func() {
			if closed != nil {
				*closed++
			}
		},
	}
}

func (s *sink) count(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.got[key])
}

func (s *sink) dropped(name string, n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drop[name] += n
}

func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func appendN(t *testing.T, s *Set, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if err := s.Append([]byte(fmt.Sprintf("rec %03d", i)), func(string, int64) {}); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSetApplyKeepsChangesAndDropsRemoved: a reload that changes an
// endpoint (same name) keeps its unsent backlog and sends it with the new
// config, in order; one that removes an endpoint deletes its backlog and
// reports the unsent bytes; a new endpoint gets what is appended after.
func TestSetApplyKeepsChangesAndDropsRemoved(t *testing.T) {
	dir := t.TempDir()
	sk := newSink()
	s := NewSet(dir, slog.New(slog.DiscardHandler), sk.dropped)
	var closedA, closedB int
	if err := s.Apply([]Spec{
		sk.spec("a", fakeCfg{URL: "old", Down: true}, &closedA),
		sk.spec("b", fakeCfg{URL: "b", Down: true}, &closedB),
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		<-done
		s.Close()
	}()
	appendN(t, s, 0, 20) // both endpoints down: everything queues
	pendingB := s.Pending()["b"]
	if pendingB == 0 {
		t.Fatal("nothing queued for b")
	}

	// Reload: a moves to a working URL, b is removed, c is added.
	if err := s.Apply([]Spec{
		sk.spec("a", fakeCfg{URL: "new"}, nil),
		sk.spec("c", fakeCfg{URL: "c"}, nil),
	}); err != nil {
		t.Fatal(err)
	}
	if closedA != 1 || closedB != 1 {
		t.Fatalf("old senders' resources closed a=%d b=%d times, want 1 each", closedA, closedB)
	}
	poll(t, "a's queued records at the new URL", func() bool { return sk.count("a/new") == 20 })
	if _, err := os.Stat(filepath.Join(dir, "b")); !os.IsNotExist(err) {
		t.Fatalf("removed endpoint's backlog still on disk: %v", err)
	}
	sk.mu.Lock()
	if sk.drop["b"] != pendingB {
		t.Errorf("dropped for b = %d bytes, want its pending %d", sk.drop["b"], pendingB)
	}
	sk.mu.Unlock()
	appendN(t, s, 20, 5)
	poll(t, "new records at a and c", func() bool { return sk.count("a/new") == 25 && sk.count("c/c") == 5 })
	sk.mu.Lock()
	for i, r := range sk.got["a/new"] {
		if r != fmt.Sprintf("rec %03d", i) {
			t.Fatalf("a's record %d = %q: out of order or lost", i, r)
		}
	}
	sk.mu.Unlock()

	// An unchanged spec leaves the running sender alone and closes the
	// spec that was built for nothing.
	var closedUnused int
	if err := s.Apply([]Spec{sk.spec("a", fakeCfg{URL: "new"}, &closedUnused), sk.spec("c", fakeCfg{URL: "c"}, nil)}); err != nil {
		t.Fatal(err)
	}
	if closedUnused != 1 {
		t.Fatalf("unused spec closed %d times, want 1", closedUnused)
	}
	appendN(t, s, 25, 1)
	poll(t, "a keeps sending", func() bool { return sk.count("a/new") == 26 })
}

// TestSetApplyIsAllOrNothing: two endpoints with one name refuse the whole
// list, and the running endpoints stay.
func TestSetApplyIsAllOrNothing(t *testing.T) {
	sk := newSink()
	s := NewSet(t.TempDir(), slog.New(slog.DiscardHandler), sk.dropped)
	defer s.Close()
	if err := s.Apply([]Spec{sk.spec("a", fakeCfg{URL: "a", Down: true}, nil)}); err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 0, 3)
	var closed int
	err := s.Apply([]Spec{sk.spec("x", fakeCfg{}, &closed), sk.spec("x", fakeCfg{}, &closed)})
	if err == nil {
		t.Fatal("two endpoints named x accepted")
	}
	if closed != 2 {
		t.Fatalf("refused specs closed %d times, want 2", closed)
	}
	if p := s.Pending(); len(p) != 1 || p["a"] == 0 {
		t.Fatalf("after a refused apply: %v, want a with its backlog", p)
	}
}

// TestSetDropsOrphanedBacklogAtFirstApply: an endpoint removed while the
// process was down has its backlog dropped, reported, at the next start;
// a directory that is not a backlog is left alone.
func TestSetDropsOrphanedBacklogAtFirstApply(t *testing.T) {
	dir := t.TempDir()
	sk := newSink()
	s := NewSet(dir, slog.New(slog.DiscardHandler), sk.dropped)
	if err := s.Apply([]Spec{sk.spec("gone", fakeCfg{Down: true}, nil), sk.spec("kept", fakeCfg{Down: true}, nil)}); err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 0, 4)
	want := s.Pending()["gone"]
	s.Close()
	other := filepath.Join(dir, "not-a-backlog")
	os.Mkdir(other, 0o755)
	os.WriteFile(filepath.Join(other, "notes.txt"), []byte("x"), 0o644)

	s = NewSet(dir, slog.New(slog.DiscardHandler), sk.dropped)
	defer s.Close()
	if err := s.Apply([]Spec{sk.spec("kept", fakeCfg{Down: true}, nil)}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "gone")); !os.IsNotExist(err) {
		t.Fatalf("orphaned backlog still there: %v", err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Fatalf("a directory that is not a backlog was removed: %v", err)
	}
	if sk.drop["gone"] != want || want == 0 {
		t.Fatalf("dropped %d bytes for the orphan, want %d", sk.drop["gone"], want)
	}
	if s.Pending()["kept"] == 0 {
		t.Fatal("the kept endpoint lost its backlog")
	}
}

// TestSetChangeShrinksBound: a reload that lowers max_backlog below what is
// queued drops the oldest segments and reports them.
func TestSetChangeShrinksBound(t *testing.T) {
	sk := newSink()
	s := NewSet(t.TempDir(), slog.New(slog.DiscardHandler), sk.dropped)
	defer s.Close()
	if err := s.Apply([]Spec{sk.spec("a", fakeCfg{Down: true}, nil)}); err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 0, 100) // 15 bytes a record, 256-byte segments
	before := s.Pending()["a"]
	small := sk.spec("a", fakeCfg{Down: true}, nil)
	small.MaxSize = 512
	if err := s.Apply([]Spec{small}); err != nil {
		t.Fatal(err)
	}
	after := s.Pending()["a"]
	if after > 512 || sk.drop["a"] != before-after {
		t.Fatalf("pending %d -> %d, dropped %d: want at most 512 left and the rest reported", before, after, sk.drop["a"])
	}
}

// TestRunWithoutEndpointsWaits: Run with no endpoint returns only when ctx
// ends (a loop in the server's run group must not end on its own). In a
// synctest bubble, synctest.Wait returns once every goroutine of the bubble
// is durably blocked: Run, still running then, is blocked in its select, so
// it cannot return without an outside event. Fake time is then moved past
// many sync ticks, each run to its end by the next Wait: Run survives them
// all. No wall-clock guess: the proof is the same on any machine load.
func TestRunWithoutEndpointsWaits(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := NewSet(t.TempDir(), slog.New(slog.DiscardHandler), nil)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		notReturned := func(when string) {
			t.Helper()
			synctest.Wait()
			select {
			case err := <-done:
				t.Fatalf("%s: Run returned (%v) with ctx still live", when, err)
			default:
			}
		}
		notReturned("at start")
		for i := 1; i <= 10; i++ {
			time.Sleep(SyncInterval) // fake time: the bubble's clock moves at once
			notReturned(fmt.Sprintf("after %d sync ticks", i))
		}
		cancel()
		synctest.Wait()
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatal("Run did not return once ctx ended and every goroutine was blocked")
		}
	})
}

// TestSyncOnlyWhenDirty: Sync after an append fsyncs, and is a no-op when
// nothing was written since.
func TestSyncOnlyWhenDirty(t *testing.T) {
	b, err := Open(t.TempDir(), 1<<20, 4<<20)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if b.dirty {
		t.Fatal("dirty before any append")
	}
	b.Append([]byte("x"))
	if !b.dirty {
		t.Fatal("not dirty after an append")
	}
	if err := b.Sync(); err != nil || b.dirty {
		t.Fatalf("Sync: %v, dirty=%v", err, b.dirty)
	}
}
