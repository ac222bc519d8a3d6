package logs

import (
	"encoding/json"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/grafana/loki/pkg/push"
)

// BenchmarkPushJSON is BenchmarkPush with the JSON body Loki's HTTP API
// documents ({"streams":[{"stream":{…},"values":[["ns","line"]…]}]},
// uncompressed): the JSON decoder instead of snappy + protobuf, the rest of
// the path (validation, WAL, head, chunk cuts) the same. fsync=interval.
func BenchmarkPushJSON(b *testing.B) {
	const batch, streams = 1000, 4
	r := rand.New(rand.NewPCG(1, 2))
	reqs := make([]*push.PushRequest, 64)
	raw := 0
	base := time.Now().Add(-time.Hour)
	for i := range reqs {
		var n int
		reqs[i], n = PushRequest(r, base, i, batch, streams)
		raw += n
	}
	s := newServer(b, "interval")
	b.SetBytes(int64(raw / len(reqs)))
	timePushes(b, s, batch, "application/json", func(i int) []byte {
		return restampJSON(b, reqs[i%len(reqs)], base, i, batch, streams)
	})
}

func restampJSON(b *testing.B, req *push.PushRequest, base time.Time, seq, n, streams int) []byte {
	type jsonStream struct {
		Stream map[string]string `json:"stream"`
		Values [][2]string       `json:"values"`
	}
	per := n / streams
	out := struct {
		Streams []jsonStream `json:"streams"`
	}{}
	for s, st := range req.Streams {
		// PushRequest's labels: {app="bench", namespace="prod", pod="api-<s>"}.
		js := jsonStream{Stream: map[string]string{"app": "bench", "namespace": "prod", "pod": "api-" + strconv.Itoa(s)}}
		for i, e := range st.Entries {
			ts := base.Add(time.Duration(seq*n+s*per+i) * time.Microsecond)
			js.Values = append(js.Values, [2]string{strconv.FormatInt(ts.UnixNano(), 10), e.Line})
		}
		out.Streams = append(out.Streams, js)
	}
	body, err := json.Marshal(out)
	if err != nil {
		b.Fatal(err)
	}
	return body
}
