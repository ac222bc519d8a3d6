package metrics

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/prometheus/promql"
)

// Engine is the PromQL engine with the section's limits. The subquery step
// default follows the evaluation interval of the applied config.
type Engine struct {
	*promql.Engine
	evalInterval atomic.Int64
}

// NewEngine builds the PromQL engine; its limits take effect at start-up.
func NewEngine(cfg QueryConfig, deps Deps) *Engine {
	e := &Engine{}
	e.evalInterval.Store(int64(time.Minute / time.Millisecond))
	e.Engine = promql.NewEngine(promql.EngineOpts{
		Logger:        deps.Logger.With("component", "query engine"),
		Reg:           deps.Registerer,
		MaxSamples:    cfg.MaxSamples,
		Timeout:       time.Duration(cfg.Timeout),
		LookbackDelta: time.Duration(cfg.LookbackDelta),
		NoStepSubqueryIntervalFn: func(int64) int64 {
			return e.evalInterval.Load()
		},
		// Always on in Prometheus since v2.33.
		EnableAtModifier:     true,
		EnableNegativeOffset: true,
	})
	return e
}

// SetEvaluationInterval updates the default subquery step on reload.
func (e *Engine) SetEvaluationInterval(d time.Duration) {
	if d > 0 {
		e.evalInterval.Store(d.Milliseconds())
	}
}
