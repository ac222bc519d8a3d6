package logs

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/grafana/loki/pkg/push"
)

// BenchmarkPushJSONLines is BenchmarkPush (protobuf, fsync=interval) with
// JSONLine lines instead of logfmt: what checking each cut chunk for the
// json-objects flag (ADR 0109) costs the push path where it does work.
func BenchmarkPushJSONLines(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	const batch, streams = 1000, 10
	reqs := make([]*push.PushRequest, 64)
	raw := 0
	base := time.Now().Add(-time.Hour)
	per := batch / streams
	for i := range reqs {
		req := &push.PushRequest{}
		for s := range streams {
			st := push.Stream{Labels: fmt.Sprintf(`{app="bench", namespace="prod", pod="api-%d"}`, s)}
			for j := range per {
				k := i*batch + s*per + j
				l := JSONLine(r, k)
				raw += len(l)
				st.Entries = append(st.Entries, push.Entry{Timestamp: base.Add(time.Duration(k) * time.Microsecond), Line: l})
			}
			req.Streams = append(req.Streams, st)
		}
		reqs[i] = req
	}
	s := newServer(b, "interval")
	b.SetBytes(int64(raw / len(reqs)))
	timePushes(b, s, batch, "application/x-protobuf", func(i int) []byte {
		return Restamp(reqs[i%len(reqs)], base, i, batch, streams)
	})
}
