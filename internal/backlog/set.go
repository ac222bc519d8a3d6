package backlog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sync"
	"time"
)

// Spec describes one endpoint's queue for a Set: its backlog directory and
// bounds, the config that tells whether a reload changed it, and the loop
// that drains it.
type Spec struct {
	// Name identifies the endpoint across reloads; its backlog lives in a
	// directory named after it. An endpoint keeps its backlog as long as a
	// reload keeps its name, whatever else changes.
	Name        string
	SegmentSize int64
	MaxSize     int64
	// Config is compared (reflect.DeepEqual) with the running endpoint's:
	// equal, the running sender is left alone.
	Config any
	// Run drains b until ctx ends (typically b.Drain with the protocol's
	// Sender).
	Run func(ctx context.Context, b *Backlog)
	// Close releases what Run used (a connection); called once Run has
	// returned, or when the spec is not used. May be nil.
	Close func()
}

// Set is the endpoints of one forwarder (logs.forward, traces.forward):
// a backlog and a sender per endpoint, reconfigurable while running.
//
// Apply puts a list of endpoints in force all or nothing:
//   - an endpoint with a new name gets a new backlog;
//   - an endpoint whose name stays keeps its backlog, unsent records
//     included; if its config changed, its sender is restarted with the new
//     one (the record in flight is sent again);
//   - an endpoint that is gone has its sender stopped and its backlog
//     deleted, unsent records included: logged and reported to Dropped.
//     Backlog directories under the Set's directory that belong to no
//     configured endpoint (an endpoint removed while the process was down)
//     are dropped the same way at the first Apply.
type Set struct {
	dir     string
	logger  *slog.Logger
	dropped func(name string, bytes int64)

	mu     sync.RWMutex // held for writing only while the list is swapped
	queues []*queue

	runMu   sync.Mutex // guards runCtx and every queue's cancel/done
	runCtx  context.Context
	applied bool
}

type queue struct {
	spec    Spec
	backlog *Backlog
	cancel  context.CancelFunc
	done    chan struct{}
}

// NewSet returns an empty Set keeping its backlogs under dir. dropped is
// told the unsent bytes of each removed endpoint's backlog.
func NewSet(dir string, logger *slog.Logger, dropped func(name string, bytes int64)) *Set {
	if dropped == nil {
		dropped = func(string, int64) {}
	}
	return &Set{dir: dir, logger: logger, dropped: dropped}
}

var unsafeChars = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// DirName is the directory of the endpoint named name.
func DirName(name string) string { return unsafeChars.ReplaceAllString(name, "_") }

// Apply puts specs in force (see Set). On error nothing changed and every
// spec was closed.
func (s *Set) Apply(specs []Spec) error {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	s.mu.RLock()
	old := map[string]*queue{}
	for _, q := range s.queues {
		old[q.spec.Name] = q
	}
	s.mu.RUnlock()

	closeSpecs := func() {
		for _, sp := range specs {
			if sp.Close != nil {
				sp.Close()
			}
		}
	}
	// Phase 1, fallible: names, and the backlogs of new endpoints.
	seen := map[string]bool{}
	for _, sp := range specs {
		d := DirName(sp.Name)
		if seen[d] {
			closeSpecs()
			return fmt.Errorf("two endpoints named %q: set name", sp.Name)
		}
		seen[d] = true
	}
	opened := map[string]*Backlog{}
	for _, sp := range specs {
		if _, ok := old[sp.Name]; ok {
			continue
		}
		b, err := Open(filepath.Join(s.dir, DirName(sp.Name)), sp.SegmentSize, sp.MaxSize)
		if err != nil {
			for _, b := range opened {
				b.Close()
			}
			closeSpecs()
			return fmt.Errorf("%s: %w", sp.Name, err)
		}
		opened[sp.Name] = b
	}

	// Phase 2: stop the senders of changed and removed endpoints, swap the
	// list, start the new senders.
	next := make([]*queue, 0, len(specs))
	var start []*queue
	for _, sp := range specs {
		q, ok := old[sp.Name]
		switch {
		case !ok:
			q = &queue{spec: sp, backlog: opened[sp.Name]}
			start = append(start, q)
		case reflect.DeepEqual(q.spec.Config, sp.Config) && q.spec.SegmentSize == sp.SegmentSize && q.spec.MaxSize == sp.MaxSize:
			if sp.Close != nil {
				sp.Close() // the running sender keeps its own
			}
			delete(old, sp.Name)
		default:
			s.stop(q)
			if q.spec.Close != nil {
				q.spec.Close()
			}
			q.spec = sp
			if d := q.backlog.SetLimits(sp.SegmentSize, sp.MaxSize); d > 0 {
				s.dropped(sp.Name, d)
			}
			start = append(start, q)
			delete(old, sp.Name)
			s.logger.Info("Forward endpoint changed; its backlog is kept", "endpoint", sp.Name)
		}
		next = append(next, q)
	}
	s.mu.Lock()
	s.queues = next
	s.mu.Unlock()
	// What is left in old was removed.
	for name, q := range old {
		s.stop(q)
		if q.spec.Close != nil {
			q.spec.Close()
		}
		pending := q.backlog.PendingBytes()
		q.backlog.Close()
		s.drop(name, filepath.Join(s.dir, DirName(name)), pending)
	}
	if !s.applied {
		s.applied = true
		s.dropOrphans(seen)
	}
	if s.runCtx != nil {
		for _, q := range start {
			s.start(q)
		}
	}
	return nil
}

// drop deletes a removed endpoint's backlog directory.
func (s *Set) drop(name, dir string, pending int64) {
	if err := os.RemoveAll(dir); err != nil {
		s.logger.Error("Delete the backlog of a removed forward endpoint", "endpoint", name, "err", err)
	}
	s.logger.Warn("Forward endpoint removed; its unsent backlog is dropped", "endpoint", name, "dropped_bytes", pending)
	s.dropped(name, pending)
}

// dropOrphans deletes backlog directories of endpoints no longer
// configured (removed while the process was down).
func (s *Set) dropOrphans(keep map[string]bool) {
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return // no directory yet: nothing to drop
	}
	for _, e := range ents {
		if !e.IsDir() || keep[e.Name()] {
			continue
		}
		dir := filepath.Join(s.dir, e.Name())
		if !isBacklogDir(dir) {
			continue
		}
		pending := int64(0)
		if b, err := Open(dir, 1<<62, 1<<62); err == nil {
			pending = b.PendingBytes()
			b.Close()
		}
		s.drop(e.Name(), dir, pending)
	}
}

// isBacklogDir is true for a directory holding only backlog files.
func isBacklogDir(dir string) bool {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false
	}
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() || (filepath.Ext(n) != ".seg" && n != "position" && n != "position.tmp") {
			return false
		}
	}
	return true
}

// start runs q's sender under the Set's run context; runMu held.
func (s *Set) start(q *queue) {
	ctx, cancel := context.WithCancel(s.runCtx)
	q.cancel, q.done = cancel, make(chan struct{})
	go func() {
		defer close(q.done)
		q.spec.Run(ctx, q.backlog)
	}()
}

// stop ends q's sender and waits for it; runMu held.
func (s *Set) stop(q *queue) {
	if q.cancel == nil {
		return
	}
	q.cancel()
	<-q.done
	q.cancel, q.done = nil, nil
}

// Append writes rec to every endpoint's backlog; each is called after each
// successful append with the endpoint's name and the bytes its bound
// dropped. When Append returns nil, rec is on disk in every backlog (in
// the page cache: it survives a crash of the process) and will be sent.
// With no endpoint it does nothing.
func (s *Set) Append(rec []byte, each func(name string, dropped int64)) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var errs []error
	for _, q := range s.queues {
		if err := q.backlog.Append(rec); err != nil {
			errs = append(errs, fmt.Errorf("forward to %s: %w", q.spec.Name, err))
			continue
		}
		each(q.spec.Name, q.backlog.TakeDropped())
	}
	return errors.Join(errs...)
}

// Len is the number of endpoints in force.
func (s *Set) Len() int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.queues)
}

// Pending is the unacknowledged bytes of every endpoint's backlog.
func (s *Set) Pending() map[string]int64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	m := make(map[string]int64, len(s.queues))
	for _, q := range s.queues {
		m[q.spec.Name] = q.backlog.PendingBytes()
	}
	return m
}

// SyncInterval is how often Run fsyncs the backlogs written since the last
// time, so a record survives a power loss after at most this long (as the
// log store's WAL with its default fsync: interval).
const SyncInterval = time.Second

// Run sends every endpoint's backlog, including endpoints added later by
// Apply, and fsyncs the backlogs every SyncInterval, until ctx ends.
func (s *Set) Run(ctx context.Context) error {
	s.runMu.Lock()
	if s.runCtx != nil {
		s.runMu.Unlock()
		return errors.New("backlog set: Run called twice")
	}
	s.runCtx = ctx
	s.mu.RLock()
	for _, q := range s.queues {
		s.start(q)
	}
	s.mu.RUnlock()
	s.runMu.Unlock()

	t := time.NewTicker(SyncInterval)
	defer t.Stop()
loop:
	for {
		select {
		case <-t.C:
			s.sync()
		case <-ctx.Done():
			break loop
		}
	}
	s.runMu.Lock()
	defer s.runMu.Unlock()
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, q := range s.queues {
		s.stop(q)
	}
	return nil
}

func (s *Set) sync() {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, q := range s.queues {
		if err := q.backlog.Sync(); err != nil {
			s.logger.Error("Sync forward backlog", "endpoint", q.spec.Name, "err", err)
		}
	}
}

// Close closes every backlog and releases the senders' resources; call it
// after Run returned.
func (s *Set) Close() error {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, q := range s.queues {
		s.stop(q)
		if q.spec.Close != nil {
			q.spec.Close()
		}
		errs = append(errs, q.backlog.Close())
	}
	s.queues = nil
	return errors.Join(errs...)
}
