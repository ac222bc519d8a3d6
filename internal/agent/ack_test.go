package agent

import "testing"

// The saved position is the smallest offset every client acknowledged, or
// the last settled offset when nothing is in flight.
func TestFileTrackerPosition(t *testing.T) {
	tr := newFileTracker("f", 2, 100)
	eq(t, "start", tr.position(), int64(100))
	a := tr.sent(110)
	b := tr.sent(120)
	eq(t, "nothing acked", tr.position(), int64(100))
	a.done(0)
	b.done(0)
	eq(t, "client 1 behind", tr.position(), int64(100))
	a.done(1)
	eq(t, "both past a", tr.position(), int64(110))
	tr.settle(130) // a dropped line after b
	eq(t, "b still in flight at client 1", tr.position(), int64(110))
	b.done(1)
	eq(t, "all acked: settled", tr.position(), int64(130))
	c := tr.sent(140)
	c.done(0)
	eq(t, "c unacked by client 1 (never, e.g. shutdown)", tr.position(), int64(130))
}
