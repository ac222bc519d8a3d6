package tenancy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrQueueFull is a query refused because its tenant already has as many
// queries waiting as allowed.
var ErrQueueFull = errors.New("too many outstanding requests")

// ErrQueueTimeout is a query that waited its longest for a free slot.
var ErrQueueTimeout = errors.New("too many outstanding requests: no query slot became free in time")

// GateConfig bounds the queries of one API.
type GateConfig struct {
	// MaxConcurrent queries run at once; 0 = no limit.
	MaxConcurrent int
	// MaxQueuedPerTenant queries of one tenant may wait for a slot; more
	// are refused at once. 0 = none wait.
	MaxQueuedPerTenant int
	// MaxWait is the longest a query waits for a slot.
	MaxWait time.Duration
}

// Gate admits at most MaxConcurrent queries at once; the others wait, in a
// bounded queue per tenant and for a bounded time, then are refused
// (ErrQueueFull, ErrQueueTimeout; answered 429 by the APIs). A tenant that
// floods the queue is refused while the others still queue.
type Gate struct {
	cfg    GateConfig
	slots  chan struct{}
	mu     sync.Mutex
	queued map[string]int
}

// NewGate builds a gate.
func NewGate(cfg GateConfig) *Gate {
	g := &Gate{cfg: cfg, queued: map[string]int{}}
	if cfg.MaxConcurrent > 0 {
		g.slots = make(chan struct{}, cfg.MaxConcurrent)
	}
	return g
}

// Config is the gate's configuration.
func (g *Gate) Config() GateConfig { return g.cfg }

// Enter waits for a query slot for tenant and returns its release, or
// ErrQueueFull, ErrQueueTimeout or ctx's error.
func (g *Gate) Enter(ctx context.Context, tenant string) (func(), error) {
	if g == nil || g.slots == nil {
		return func() {}, nil
	}
	release := func() { <-g.slots }
	select {
	case g.slots <- struct{}{}:
		return release, nil
	default:
	}
	g.mu.Lock()
	if g.queued[tenant] >= g.cfg.MaxQueuedPerTenant {
		g.mu.Unlock()
		return nil, fmt.Errorf("%w: %d queries running, %d of tenant %s waiting", ErrQueueFull, g.cfg.MaxConcurrent, g.cfg.MaxQueuedPerTenant, tenant)
	}
	g.queued[tenant]++
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		if g.queued[tenant]--; g.queued[tenant] == 0 {
			delete(g.queued, tenant)
		}
		g.mu.Unlock()
	}()
	t := time.NewTimer(g.cfg.MaxWait)
	defer t.Stop()
	select {
	case g.slots <- struct{}{}:
		return release, nil
	case <-t.C:
		return nil, fmt.Errorf("%w (waited %s with %d queries running)", ErrQueueTimeout, g.cfg.MaxWait, g.cfg.MaxConcurrent)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Refused reports whether err is a refusal of Enter (429).
func Refused(err error) bool {
	return errors.Is(err, ErrQueueFull) || errors.Is(err, ErrQueueTimeout)
}
