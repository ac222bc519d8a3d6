package promsink

import (
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/pmetric"
)

// window is the range of sample timestamps, in milliseconds, the sink
// takes: [now - MaxAge, now + 10m].
type window struct{ min, max int64 }

// ms is the sample timestamp the translator makes of an OTLP timestamp.
func ms(ts pcommon.Timestamp) int64 { return int64(ts) / 1_000_000 }

// count counts md's data points before and after w. It runs on every
// request: plain loops, no allocation.
func (w window) count(md pmetric.Metrics) (past, future int) {
	rms := md.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		sms := rms.At(i).ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				p, f := w.countMetric(ms.At(k))
				past += p
				future += f
			}
		}
	}
	return past, future
}

func (w window) countMetric(m pmetric.Metric) (past, future int) {
	side := func(ts pcommon.Timestamp) {
		switch t := ms(ts); {
		case t < w.min:
			past++
		case t > w.max:
			future++
		}
	}
	switch m.Type() {
	case pmetric.MetricTypeGauge:
		dps := m.Gauge().DataPoints()
		for i := 0; i < dps.Len(); i++ {
			side(dps.At(i).Timestamp())
		}
	case pmetric.MetricTypeSum:
		dps := m.Sum().DataPoints()
		for i := 0; i < dps.Len(); i++ {
			side(dps.At(i).Timestamp())
		}
	case pmetric.MetricTypeHistogram:
		dps := m.Histogram().DataPoints()
		for i := 0; i < dps.Len(); i++ {
			side(dps.At(i).Timestamp())
		}
	case pmetric.MetricTypeExponentialHistogram:
		dps := m.ExponentialHistogram().DataPoints()
		for i := 0; i < dps.Len(); i++ {
			side(dps.At(i).Timestamp())
		}
	case pmetric.MetricTypeSummary:
		dps := m.Summary().DataPoints()
		for i := 0; i < dps.Len(); i++ {
			side(dps.At(i).Timestamp())
		}
	}
	return past, future
}

// keep returns a copy of md without its data points outside w, and without
// the metrics that had points and are left with none (a metric that came
// empty stays, for the translator to judge as before).
func (w window) keep(md pmetric.Metrics) pmetric.Metrics {
	out := pmetric.NewMetrics()
	md.CopyTo(out)
	rms := out.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		sms := rms.At(i).ScopeMetrics()
		for j := 0; j < sms.Len(); j++ {
			sms.At(j).Metrics().RemoveIf(func(m pmetric.Metric) bool {
				before := pointCount(m)
				switch m.Type() {
				case pmetric.MetricTypeGauge:
					removePoints(w, m.Gauge().DataPoints())
				case pmetric.MetricTypeSum:
					removePoints(w, m.Sum().DataPoints())
				case pmetric.MetricTypeHistogram:
					removePoints(w, m.Histogram().DataPoints())
				case pmetric.MetricTypeExponentialHistogram:
					removePoints(w, m.ExponentialHistogram().DataPoints())
				case pmetric.MetricTypeSummary:
					removePoints(w, m.Summary().DataPoints())
				}
				return before > 0 && pointCount(m) == 0
			})
		}
	}
	return out
}

func pointCount(m pmetric.Metric) int {
	switch m.Type() {
	case pmetric.MetricTypeGauge:
		return m.Gauge().DataPoints().Len()
	case pmetric.MetricTypeSum:
		return m.Sum().DataPoints().Len()
	case pmetric.MetricTypeHistogram:
		return m.Histogram().DataPoints().Len()
	case pmetric.MetricTypeExponentialHistogram:
		return m.ExponentialHistogram().DataPoints().Len()
	case pmetric.MetricTypeSummary:
		return m.Summary().DataPoints().Len()
	}
	return 0
}

type point interface{ Timestamp() pcommon.Timestamp }

type points[P point] interface {
	Len() int
	At(int) P
	RemoveIf(func(P) bool)
}

func removePoints[P point, S points[P]](w window, dps S) {
	dps.RemoveIf(func(p P) bool {
		t := ms(p.Timestamp())
		return t < w.min || t > w.max
	})
}
