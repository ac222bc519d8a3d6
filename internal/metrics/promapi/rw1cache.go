package promapi

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

// seriesCache maps the hash of a series' raw label bytes to the labels
// built for it once and the storage's series reference, so a remote write
// 1.0 request for known series builds no labels and the TSDB finds each
// series by reference instead of by hashing labels. A hit is verified
// against the request's labels (a hash collision is a miss). A reference
// the TSDB has garbage-collected meanwhile is harmless: the appender falls
// back to the labels it is given, which are the series' own.
//
// Entries unused for two rotations (cacheRotate each) are forgotten, so the
// cache follows the series that are being written, not every series ever
// seen. The labels it holds are usually the very string the TSDB head
// keeps for the series, so an entry costs little beyond the map slot.
type seriesCache struct {
	shards [cacheShards]cacheShard
	gen    atomic.Uint64
	next   atomic.Int64 // unix nanoseconds of the next rotation
	now    func() time.Time
}

const (
	cacheShards = 64
	cacheRotate = 30 * time.Minute
)

type cacheShard struct {
	mu        sync.Mutex
	gen       uint64
	cur, prev map[uint64]cacheEntry
	_         [32]byte // one shard per 64-byte cache line
}

type cacheEntry struct {
	ls  labels.Labels
	ref storage.SeriesRef
}

func newSeriesCache(now func() time.Time) *seriesCache {
	c := &seriesCache{now: now}
	c.next.Store(now().Add(cacheRotate).UnixNano())
	for i := range c.shards {
		c.shards[i].cur = map[uint64]cacheEntry{}
	}
	return c
}

// tick starts a new generation when one is due; once per request.
func (c *seriesCache) tick() {
	next := c.next.Load()
	if now := c.now().UnixNano(); now >= next && c.next.CompareAndSwap(next, now+int64(cacheRotate)) {
		c.gen.Add(1)
	}
}

func (c *seriesCache) shard(h uint64) *cacheShard {
	s := &c.shards[h%cacheShards]
	if g := c.gen.Load(); s.gen != g {
		// Rotate lazily: what was not used in the last generation goes.
		if g == s.gen+1 {
			s.prev = s.cur
		} else {
			s.prev = nil
		}
		s.cur, s.gen = make(map[uint64]cacheEntry, len(s.prev)), g
	}
	return s
}

// get returns the entry for h whose labels equal pairs, in order.
func (c *seriesCache) get(h uint64, pairs []rw1Pair) (cacheEntry, bool) {
	s := &c.shards[h%cacheShards]
	s.mu.Lock()
	s = c.shard(h)
	e, ok := s.cur[h]
	if !ok {
		if e, ok = s.prev[h]; ok {
			s.cur[h] = e
			delete(s.prev, h)
		}
	}
	s.mu.Unlock()
	if !ok || !sameLabels(e.ls, pairs) {
		return cacheEntry{}, false
	}
	return e, true
}

func (c *seriesCache) put(h uint64, e cacheEntry) {
	s := &c.shards[h%cacheShards]
	s.mu.Lock()
	s = c.shard(h)
	s.cur[h] = e
	s.mu.Unlock()
}

// len is the number of entries (for tests).
func (c *seriesCache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		n += len(s.cur) + len(s.prev)
		s.mu.Unlock()
	}
	return n
}

// sameLabels is true when ls holds exactly pairs, in the same order.
func sameLabels(ls labels.Labels, pairs []rw1Pair) bool {
	i, ok := 0, true
	ls.Range(func(l labels.Label) {
		if !ok {
			return
		}
		if i >= len(pairs) || pairs[i].name != l.Name || pairs[i].value != l.Value {
			ok = false
			return
		}
		i++
	})
	return ok && i == len(pairs)
}
