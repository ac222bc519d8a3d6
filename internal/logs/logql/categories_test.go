package logql

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/nx-watcher/nxwatcher/internal/logs/logstore"
)

// TestCategorize: with Params.Categorize a log query groups entries by
// their stream labels and splits the rest into structured metadata and
// labels the pipeline made, as Loki's categorize-labels encoding does.
func TestCategorize(t *testing.T) {
	db, err := logstore.Open(t.TempDir(), logstore.Options{}, logstore.Deps{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	base := time.Now().Add(-time.Minute)
	app := db.Appender()
	stream := labels.FromStrings("app", "api", "env", "prod")
	app.Append(stream, logstore.Entry{Timestamp: base.UnixNano(), Line: `level=info app=inner`, Metadata: labels.FromStrings("detected_level", "info")})
	app.Append(stream, logstore.Entry{Timestamp: base.Add(time.Second).UnixNano(), Line: `not logfmt "`, Metadata: labels.FromStrings("detected_level", "unknown", "trace_id", "t1")})
	if _, err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		query    string
		stream   string
		md, pars []string // per entry, oldest first
	}{
		{`{app="api"}`, `{app="api", env="prod"}`,
			[]string{`{detected_level="info"}`, `{detected_level="unknown", trace_id="t1"}`}, []string{`{}`, `{}`}},
		{`{app="api"} | logfmt | label_format shout="{{.level}}!"`, `{app="api", env="prod"}`,
			[]string{`{detected_level="info"}`, `{detected_level="unknown", trace_id="t1"}`},
			[]string{`{app_extracted="inner", level="info", shout="info!"}`, `{shout="!"}`}},
		{`{app="api"} | drop env, trace_id`, `{app="api"}`,
			[]string{`{detected_level="info"}`, `{detected_level="unknown"}`}, []string{`{}`, `{}`}},
		{`{app="api"} | json`, `{app="api", env="prod"}`,
			[]string{`{detected_level="info"}`, `{detected_level="unknown", trace_id="t1"}`},
			[]string{`{__error__="JSONParserErr"}`, `{__error__="JSONParserErr"}`}},
	} {
		res, err := NewEngine(EngineOpts{}).Exec(t.Context(), db, tc.query, Params{Start: base.Add(-time.Minute), End: base.Add(time.Minute), Limit: 10, Categorize: true})
		if err != nil {
			t.Fatalf("%s: %v", tc.query, err)
		}
		ss := res.Value.(Streams)
		if len(ss) != 1 || ss[0].Labels.String() != tc.stream || len(ss[0].Entries) != 2 || len(ss[0].Categories) != 2 {
			t.Fatalf("%s: %+v", tc.query, ss)
		}
		for i := range 2 {
			j := i // forward: oldest first
			c := ss[0].Categories[j]
			pars := c.Parsed
			if pars.Has(ErrorDetailsLabel) {
				pars = labels.NewBuilder(pars).Del(ErrorDetailsLabel).Labels()
			}
			if c.StructuredMetadata.String() != tc.md[i] || pars.String() != tc.pars[i] {
				t.Errorf("%s entry %d: metadata %s parsed %s, want %s %s", tc.query, i, c.StructuredMetadata, pars, tc.md[i], tc.pars[i])
			}
		}
	}
	// Without Categorize everything is folded into the stream, one stream
	// per distinct label set.
	res, err := NewEngine(EngineOpts{}).Exec(t.Context(), db, `{app="api"}`, Params{Start: base.Add(-time.Minute), End: base.Add(time.Minute), Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if ss := res.Value.(Streams); len(ss) != 2 || ss[0].Categories != nil {
		t.Fatalf("folded: %+v", ss)
	}
}
