package agent

import "sync"

// ackRef ties an entry to the file offset just past its last line.
type ackRef struct {
	t      *fileTracker
	offset int64
}

// fileTracker computes the position that is safe to save for one file:
// every line before it has been acknowledged by every client (or dropped on
// purpose). Clients acknowledge their entries in order, so the safe
// position is the smallest of the clients' highest acknowledged offsets, or
// the last settled offset when nothing is in flight.
type fileTracker struct {
	mu       sync.Mutex
	path     string
	inflight int
	acked    []int64 // per client: highest acknowledged offset
	settled  int64   // highest offset handed on or dropped by the pipeline
	floor    int64   // settled when nothing was last in flight: safe
	start    int64
}

func newFileTracker(path string, clients int, start int64) *fileTracker {
	t := &fileTracker{path: path, acked: make([]int64, clients), settled: start, floor: start, start: start}
	for i := range t.acked {
		t.acked[i] = start
	}
	return t
}

// sent records an entry handed to every client.
func (t *fileTracker) sent(off int64) *ackRef {
	t.mu.Lock()
	if t.inflight == 0 {
		t.floor = t.settled
	}
	t.inflight += len(t.acked)
	if off > t.settled {
		t.settled = off
	}
	t.mu.Unlock()
	return &ackRef{t: t, offset: off}
}

// settle records lines dropped on purpose up to off.
func (t *fileTracker) settle(off int64) {
	t.mu.Lock()
	if off > t.settled {
		t.settled = off
	}
	t.mu.Unlock()
}

// ack is one client's acknowledgement (or deliberate drop) of an entry.
func (r *ackRef) done(client int) {
	t := r.t
	t.mu.Lock()
	t.inflight--
	if r.offset > t.acked[client] {
		t.acked[client] = r.offset
	}
	if t.inflight == 0 {
		t.floor = t.settled
	}
	t.mu.Unlock()
}

// position is the offset that is safe to save.
func (t *fileTracker) position() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.inflight == 0 {
		return t.settled
	}
	p := t.acked[0]
	for _, a := range t.acked[1:] {
		p = min(p, a)
	}
	// Lines dropped on purpose while nothing was in flight are settled
	// even though no client acknowledged anything past them.
	return max(p, t.floor)
}

// reset starts over at off (the file was truncated or replaced).
func (t *fileTracker) reset(off int64) {
	t.mu.Lock()
	t.settled = off
	t.floor = off
	for i := range t.acked {
		t.acked[i] = off
	}
	t.mu.Unlock()
}
