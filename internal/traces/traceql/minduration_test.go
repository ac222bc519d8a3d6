package traceql

import "testing"

func TestMinSpanDuration(t *testing.T) {
	for q, want := range map[string]int64{
		`{ duration > 2s } | rate()`:                              2e9 + 1,
		`{ duration >= 2s && status = error } | rate()`:           2e9,
		`{ 100ms < duration && duration > 50ms } | rate()`:        100e6 + 1,
		`{ duration > 2s || status = error } | rate()`:            0,
		`{ duration < 2s } | rate()`:                              0,
		`{ duration > 5 } | rate()`:                               0, // not a duration literal
		`{ span.d > 2s }`:                                         0,
		`{ duration > 2s } >> { duration > 1s }`:                  0, // first stage is not one filter
		`{ resource.service.name = "a" && duration >= 1ms }`:      1e6,
		`{ } | quantile_over_time(duration, .9)`:                  0,
		`{ duration > 1s } | histogram_over_time(duration)`:       1e9 + 1,
		`{ !(duration > 1s) }`:                                    0,
		`{ duration > 1s && duration >= 3s } | count_over_time()`: 3e9,
	} {
		p, err := Parse(q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if got := p.MinSpanDuration(); got != want {
			t.Errorf("%s: %d, want %d", q, got, want)
		}
	}
}
