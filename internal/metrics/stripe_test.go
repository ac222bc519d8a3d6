package metrics

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
)

// headStripes reads the stripe count the head's series table was built
// with (tsdb keeps it unexported: Head.series.size).
func headStripes(t *testing.T, db *tsdb.DB) int {
	t.Helper()
	series := reflect.ValueOf(db.Head()).Elem().FieldByName("series")
	if !series.IsValid() || series.IsNil() {
		t.Fatal("tsdb.Head has no series field: Prometheus changed its head; update this test")
	}
	size := series.Elem().FieldByName("size")
	if !size.IsValid() {
		t.Fatal("tsdb stripeSeries has no size field: Prometheus changed its head; update this test")
	}
	return int(size.Int())
}

// The head's series table gets metrics.head_stripe_size stripes: 4,096 by
// default (not Prometheus's 16,384, ADR 0085), the configured value
// otherwise; and a head with fewer stripes than series still appends and
// answers every series.
func TestHeadStripeSize(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  int
		want int
	}{
		{"default", DefaultConfig().HeadStripeSize, 4096},
		{"zero means default", 0, DefaultHeadStripeSize},
		{"configured", 64, 64},
		{"Prometheus's", 16384, tsdb.DefaultStripeSize},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.HeadStripeSize = tc.set
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			db, err := OpenTSDB(t.TempDir(), cfg, Deps{Logger: promslog.NewNopLogger(), Registerer: prometheus.NewRegistry()})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if got := headStripes(t, db.DB); got != tc.want {
				t.Errorf("head stripes = %d, want %d", got, tc.want)
			}
			// More series than stripes: all of them appended and read back.
			const n = 1000
			ts := time.Now().UnixMilli()
			app := db.Appender(context.Background())
			for i := range n {
				if _, err := app.Append(0, labels.FromStrings("__name__", "m", "i", string(rune('a'+i%26))+strings.Repeat("x", i/26)), ts, float64(i)); err != nil {
					t.Fatal(err)
				}
			}
			if err := app.Commit(); err != nil {
				t.Fatal(err)
			}
			if got := db.Head().NumSeries(); got != n {
				t.Errorf("head series = %d, want %d", got, n)
			}
			q, err := db.Querier(ts-1, ts+1)
			if err != nil {
				t.Fatal(err)
			}
			defer q.Close()
			ss := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchEqual, "__name__", "m"))
			got := 0
			for ss.Next() {
				got++
			}
			if err := ss.Err(); err != nil || got != n {
				t.Errorf("select: %d series, err %v; want %d", got, err, n)
			}
		})
	}
}

func TestHeadStripeSizeValidate(t *testing.T) {
	for _, n := range []int{-1, 3, 1000, 1 << 21} {
		cfg := DefaultConfig()
		cfg.HeadStripeSize = n
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "metrics.head_stripe_size") {
			t.Errorf("head_stripe_size %d: err %v, want a metrics.head_stripe_size error", n, err)
		}
	}
}
