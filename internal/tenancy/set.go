package tenancy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// Store is what a Set runs and closes: logstore.DB and tracestore.DB.
type Store interface {
	Run(ctx context.Context) error
	Close() error
}

// Empty is the reserved name Set.Read opens its shared empty store under.
// '@' is not allowed in tenant IDs, so it never names a tenant.
const Empty = "@empty"

// OpenFunc opens (creating if need be) tenant's store in dir.
type OpenFunc[T Store] func(tenant, dir string) (T, error)

// Set is a set of per-tenant stores, each opened on first write. Tenant
// "fake" lives in dir itself, where the single store lived before tenancy,
// so existing data stays readable; every other tenant lives in
// TenantsDir(dir)/<id>. (A sibling, not a subdirectory: the trace store
// takes every directory under its own as a block.)
//
// Run runs every store's Run, including stores opened after Run started,
// and returns once ctx ended and all of them returned. Close closes every
// store; call it after Run returned.
type Set[T Store] struct {
	dir  string
	open OpenFunc[T]

	mu      sync.Mutex
	stores  map[string]*entry[T]
	runCtx  context.Context // set while Run runs
	runDone bool            // ctx ended: no new Run starts
	runWG   sync.WaitGroup
	runErrs []error
	closed  bool
}

type entry[T Store] struct {
	ready chan struct{} // closed once opened (or failed)
	store T
	err   error
}

// NewSet returns a set rooted at dir; nothing is opened yet.
func NewSet[T Store](dir string, open OpenFunc[T]) *Set[T] {
	return &Set[T]{dir: dir, open: open, stores: map[string]*entry[T]{}}
}

// TenantsDir is where a store rooted at dir keeps tenants other than fake.
func TenantsDir(dir string) string { return filepath.Clean(dir) + "-tenants" }

// Dir is the directory of tenant's store.
func (s *Set[T]) Dir(tenant string) string {
	if tenant == Default {
		return s.dir
	}
	return filepath.Join(TenantsDir(s.dir), tenant)
}

// Get returns tenant's store, opening (and creating) it on first use. The
// tenant must have passed ValidateID (or be Default).
func (s *Set[T]) Get(tenant string) (T, error) {
	var zero T
	if tenant != Default {
		if err := ValidateID(tenant); err != nil {
			return zero, err
		}
	}
	return s.get(tenant)
}

// Opened returns tenant's store if it is open now, without opening it or
// waiting for an open in progress: for cheap per-request checks (the
// trace receiver's back-pressure gate) that must not create stores.
func (s *Set[T]) Opened(tenant string) (T, bool) {
	var zero T
	s.mu.Lock()
	e, ok := s.stores[tenant]
	s.mu.Unlock()
	if !ok {
		return zero, false
	}
	select {
	case <-e.ready:
		if e.err != nil {
			return zero, false
		}
		return e.store, true
	default:
		return zero, false
	}
}

// Read returns tenant's store when it has one (open, or on disk from an
// earlier run), else a shared empty store, so that a query of a tenant
// that never wrote creates nothing on disk per tenant.
func (s *Set[T]) Read(tenant string) (T, error) {
	var zero T
	if tenant != Default {
		if err := ValidateID(tenant); err != nil {
			return zero, err
		}
	}
	s.mu.Lock()
	_, open := s.stores[tenant]
	s.mu.Unlock()
	if open || tenant == Default {
		return s.get(tenant)
	}
	if _, err := os.Stat(s.Dir(tenant)); err == nil {
		return s.get(tenant)
	}
	return s.get(Empty)
}

func (s *Set[T]) get(tenant string) (T, error) {
	var zero T
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return zero, errors.New("tenant stores are closed")
	}
	e, ok := s.stores[tenant]
	if !ok {
		e = &entry[T]{ready: make(chan struct{})}
		s.stores[tenant] = e
		s.mu.Unlock()
		e.store, e.err = s.openStore(tenant)
		s.mu.Lock()
		if e.err != nil {
			delete(s.stores, tenant) // the next request tries again
		} else if s.runCtx != nil {
			s.startRun(tenant, e.store)
		}
		close(e.ready)
	}
	s.mu.Unlock()
	<-e.ready
	if e.err != nil {
		return zero, e.err
	}
	return e.store, nil
}

func (s *Set[T]) openStore(tenant string) (T, error) {
	dir := s.Dir(tenant)
	if tenant == Empty {
		dir = filepath.Join(TenantsDir(s.dir), Empty)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		var zero T
		return zero, fmt.Errorf("open store of tenant %s: %w", tenant, err)
	}
	st, err := s.open(tenant, dir)
	if err != nil {
		return st, fmt.Errorf("open store of tenant %s: %w", tenant, err)
	}
	return st, nil
}

// startRun runs st.Run under the set's Run; s.mu is held.
func (s *Set[T]) startRun(tenant string, st T) {
	ctx := s.runCtx
	if s.runDone {
		return
	}
	s.runWG.Add(1)
	go func() {
		defer s.runWG.Done()
		if err := st.Run(ctx); err != nil && ctx.Err() == nil {
			s.mu.Lock()
			s.runErrs = append(s.runErrs, fmt.Errorf("tenant %s: %w", tenant, err))
			s.mu.Unlock()
		}
	}()
}

// Run runs every store's background work until ctx ends.
func (s *Set[T]) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.runCtx != nil {
		s.mu.Unlock()
		return errors.New("tenant stores: Run called twice")
	}
	s.runCtx = ctx
	for t, e := range s.stores {
		select {
		case <-e.ready:
			if e.err == nil {
				s.startRun(t, e.store)
			}
		default: // being opened: get starts it once open
		}
	}
	s.mu.Unlock()
	<-ctx.Done()
	s.mu.Lock()
	s.runDone = true
	s.mu.Unlock()
	s.runWG.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.runErrs...)
}

// Tenants lists the tenants with an open store (the empty store left out).
func (s *Set[T]) Tenants() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ts []string
	for t := range s.stores {
		if t != Empty {
			ts = append(ts, t)
		}
	}
	slices.Sort(ts)
	return ts
}

// Each calls fn for every open store, tenants in order (the empty store
// included, so settings reach it too).
func (s *Set[T]) Each(fn func(tenant string, st T)) {
	s.mu.Lock()
	var ts []string
	var es []*entry[T]
	for t, e := range s.stores {
		ts, es = append(ts, t), append(es, e)
	}
	s.mu.Unlock()
	for i, e := range es {
		<-e.ready
		if e.err == nil {
			fn(ts[i], e.store)
		}
	}
}

// Close closes every store; later Gets fail.
func (s *Set[T]) Close() error {
	s.mu.Lock()
	s.closed = true
	es := make([]*entry[T], 0, len(s.stores))
	for _, e := range s.stores {
		es = append(es, e)
	}
	s.mu.Unlock()
	var errs []error
	for _, e := range es {
		<-e.ready
		if e.err == nil {
			if err := e.store.Close(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// Registerer is what a tenant's store registers its metrics with: reg
// itself with tenancy off (metric names unchanged), reg with a constant
// tenant label with it on, and a throwaway registry for the empty store.
func Registerer(reg prometheus.Registerer, tenant string, enabled bool) prometheus.Registerer {
	switch {
	case tenant == Empty || reg == nil:
		return prometheus.NewRegistry()
	case !enabled:
		return reg
	}
	return prometheus.WrapRegistererWith(prometheus.Labels{"tenant": tenant}, reg)
}
