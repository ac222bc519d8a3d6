package otlp

import "sync"

// memoryLimiter is admission control on the estimated bytes that requests in
// flight hold. It never blocks: a request that does not fit is refused at
// once with a retryable error, so a flood of senders backs off instead of
// piling up goroutines and buffers. One request is always admitted when
// nothing is in flight, so a request under max_request_bytes can always
// make progress.
type memoryLimiter struct {
	limit int64

	mu       sync.Mutex
	inflight int64
}

func newMemoryLimiter(limit int64) *memoryLimiter { return &memoryLimiter{limit: limit} }

// full reports whether no new request can be admitted right now; used to
// refuse before reading a body at all.
func (l *memoryLimiter) full() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inflight >= l.limit
}

// acquire reserves n bytes, or reports false when they do not fit.
func (l *memoryLimiter) acquire(n int64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.inflight > 0 && l.inflight+n > l.limit {
		return false
	}
	l.inflight += n
	return true
}

func (l *memoryLimiter) release(n int64) {
	l.mu.Lock()
	l.inflight -= n
	l.mu.Unlock()
}

func (l *memoryLimiter) inUse() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inflight
}

// decodedOverhead estimates how much larger decoded pdata is than its
// protobuf encoding (object headers, slices, strings); measured at 2-4x for
// typical spans, we take the high end.
const decodedOverhead = 4
