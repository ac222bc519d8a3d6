package agent

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v2"
)

// BenchmarkPipelineCRI is the per-line cost of the cri stage plus batching
// for one client (no I/O).
func BenchmarkPipelineCRI(b *testing.B) {
	var cfgs []StageConfig
	if err := yaml.UnmarshalStrict([]byte("- cri: {}"), &cfgs); err != nil {
		b.Fatal(err)
	}
	p, err := NewPipeline(cfgs, nil)
	if err != nil {
		b.Fatal(err)
	}
	bt := newBatch()
	cache := map[model.Fingerprint]cachedLabels{}
	p.SetOutput(func(e Entry) {
		bt.add(e, nil, cache, 0)
		if bt.entries >= 10000 {
			bt = newBatch()
		}
	}, nil)
	ls := model.LabelSet{"namespace": "shop", "pod": "api-0", "service": "api", "filename": "/var/log/pods/x/0.log"}
	lines := make([]string, 1000)
	ts := time.Now().UTC().Format(time.RFC3339Nano)
	for i := range lines {
		lines[i] = fmt.Sprintf("%s stdout F line %07d %s", ts, i, "payload payload payload payload payload payload payload payload payload")
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(lines[0])))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p.Process(Entry{Labels: ls, shared: true, Line: lines[i%len(lines)]})
	}
}
