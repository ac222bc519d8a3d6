package lokiapi

import (
	"encoding/json"
	"testing"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/nx-watcher/nxwatcher/internal/logs/logstore"
)

// TestQueryStatsRealNumbers: the stats block counts what the query read,
// structured metadata included (name and value bytes, as Loki counts them).
func TestQueryStatsRealNumbers(t *testing.T) {
	e := newEnv(t, nil)
	seed(t, e)
	code, b := e.get(t, "/loki/api/v1/query_range", rangeParams(`{app="api"} |= "level"`))
	if code != 200 {
		t.Fatalf("%d %s", code, b)
	}
	var r struct {
		Data struct {
			Stats struct {
				Summary map[string]float64 `json:"summary"`
				Querier struct {
					Store struct {
						TotalChunksRef int                `json:"totalChunksRef"`
						Chunk          map[string]float64 `json:"chunk"`
					} `json:"store"`
				} `json:"querier"`
			} `json:"stats"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	s := r.Data.Stats
	lineBytes := float64(len("level=info msg=hello status=200") + len("level=error msg=boom status=500") + len("level=info msg=bye status=200"))
	// detected_level=info twice, detected_level=error and trace_id=t1 once.
	mdBytes := float64(2*len("detected_levelinfo") + len("detected_levelerror") + len("trace_idt1"))
	for name, tc := range map[string][2]float64{
		"summary.totalLinesProcessed":                             {s.Summary["totalLinesProcessed"], 3},
		"summary.totalBytesProcessed":                             {s.Summary["totalBytesProcessed"], lineBytes},
		"summary.totalEntriesReturned":                            {s.Summary["totalEntriesReturned"], 3},
		"summary.totalPostFilterLines":                            {s.Summary["totalPostFilterLines"], 3},
		"summary.totalStructuredMetadataBytesProcessed":           {s.Summary["totalStructuredMetadataBytesProcessed"], mdBytes},
		"querier.store.chunk.decompressedLines":                   {s.Querier.Store.Chunk["decompressedLines"], 3},
		"querier.store.chunk.decompressedStructuredMetadataBytes": {s.Querier.Store.Chunk["decompressedStructuredMetadataBytes"], mdBytes},
		"querier.store.totalChunksRef":                            {float64(s.Querier.Store.TotalChunksRef), 1},
	} {
		if tc[0] != tc[1] {
			t.Errorf("%s = %v, want %v (%s)", name, tc[0], tc[1], b)
		}
	}
	if s.Summary["execTime"] <= 0 {
		t.Errorf("execTime %v", s.Summary["execTime"])
	}
}

// TestQueryStatsCompressedBytes: compressedBytes is the stored size of the
// chunks a query selected: 0 while the lines sit in the head's open chunk,
// the chunk's compressed size once it is flushed.
func TestQueryStatsCompressedBytes(t *testing.T) {
	e := newEnv(t, nil)
	seed(t, e)
	compressed := func() float64 {
		code, b := e.get(t, "/loki/api/v1/query_range", rangeParams(`{app="api"}`))
		if code != 200 {
			t.Fatalf("%d %s", code, b)
		}
		var r struct {
			Data struct {
				Stats struct {
					Querier struct {
						Store struct {
							Chunk map[string]float64 `json:"chunk"`
						} `json:"store"`
					} `json:"querier"`
				} `json:"stats"`
			} `json:"data"`
		}
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		return r.Data.Stats.Querier.Store.Chunk["compressedBytes"]
	}
	if c := compressed(); c != 0 {
		t.Fatalf("open head chunk: compressedBytes %v, want 0", c)
	}
	if err := e.db.FlushHead(); err != nil {
		t.Fatal(err)
	}
	var want int64
	q, err := e.db.Querier(ts(0).UnixNano(), ts(60).UnixNano())
	if err != nil {
		t.Fatal(err)
	}
	ss := q.Select(t.Context(), logstore.SelectHints{}, labels.MustNewMatcher(labels.MatchEqual, "app", "api"))
	for ss.Next() {
		want += ss.At().StoredBytes()
	}
	q.Close()
	if c := compressed(); want <= 0 || c != float64(want) {
		t.Fatalf("flushed: compressedBytes %v, want %d (> 0)", c, want)
	}
}
