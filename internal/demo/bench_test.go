package demo

import (
	"testing"
	"time"
)

// BenchmarkPlatformTick is one second of the simulated platform at the
// default rate (metrics only; logs and traces are the emitters' cost).
func BenchmarkPlatformTick(b *testing.B) {
	o := Options{}
	o.defaults()
	o.startAt = time.Now()
	p := newPlatform(o)
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		now = now.Add(time.Second)
		p.tick(now, time.Second)
	}
}
