package demo

import (
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
)

// The backfill's le values are spelled as Prometheus's scrape stores them,
// so backfilled and scraped buckets are one series (le="5.0", not "5").
func TestBackfillLeMatchesScrape(t *testing.T) {
	for _, tc := range []struct {
		le          float64
		contentType string
	}{
		{0.005, "text/plain; version=0.0.4"}, {1, "text/plain; version=0.0.4"}, {5, "text/plain; version=0.0.4"},
		{2.5e-7, "text/plain; version=0.0.4"}, {math.Inf(1), "text/plain; version=0.0.4"},
		{5, "application/openmetrics-text; version=1.0.0"}, {10, "application/openmetrics-text; version=1.0.0"},
	} {
		le := tc.le
		// An exporter writes le as Go's shortest form ("5"); the scrape
		// parser normalises it.
		text := "# TYPE h histogram\nh_bucket{le=\"" + strconv.FormatFloat(le, 'g', -1, 64) + "\"} 1\n"
		if math.IsInf(le, 1) {
			text = "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\n"
		}
		if strings.HasPrefix(tc.contentType, "application/openmetrics") {
			text += "# EOF\n"
		}
		p, err := textparse.New([]byte(text), tc.contentType, labels.NewSymbolTable(), textparse.ParserOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var scraped string
		for {
			e, err := p.Next()
			if err != nil {
				break
			}
			if e == textparse.EntrySeries {
				var l labels.Labels
				p.Labels(&l)
				scraped = l.Get("le")
			}
		}
		if got := formatLe(le); got != scraped {
			t.Errorf("le %v (%s): backfill writes %q, a scrape stores %q", le, tc.contentType, got, scraped)
		}
	}
}
