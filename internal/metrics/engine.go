package metrics

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/logging"
)

// Engine is the PromQL engine with the section's limits. The subquery step
// default follows the evaluation interval of the applied config.
type Engine struct {
	*promql.Engine
	evalInterval     atomic.Int64
	maxSubquerySteps int64
}

// NewEngine builds the PromQL engine; its limits take effect at start-up.
// With a directory, at most cfg.MaxConcurrency queries run at once (the
// others wait, as in Prometheus) and the queries running at a crash are
// logged at the next start, from queries.active in that directory.
func NewEngine(cfg QueryConfig, dir string, deps Deps) (*Engine, error) {
	e := &Engine{maxSubquerySteps: cfg.MaxSubquerySteps}
	e.evalInterval.Store(int64(time.Minute / time.Millisecond))
	var tracker promql.QueryTracker
	if dir != "" && cfg.MaxConcurrency > 0 {
		t, err := promql.NewActiveQueryTracker(dir, cfg.MaxConcurrency, deps.Logger.With("component", "activeQueryTracker"))
		if err != nil {
			return nil, fmt.Errorf("query engine: %w", err)
		}
		tracker = t
	}
	e.Engine = promql.NewEngine(promql.EngineOpts{
		ActiveQueryTracker: tracker,
		Logger:             deps.Logger.With("component", "query engine"),
		Reg:                deps.Registerer,
		MaxSamples:         cfg.MaxSamples,
		Timeout:            time.Duration(cfg.Timeout),
		LookbackDelta:      time.Duration(cfg.LookbackDelta),
		NoStepSubqueryIntervalFn: func(int64) int64 {
			return e.evalInterval.Load()
		},
		// Always on in Prometheus since v2.33.
		EnableAtModifier:     true,
		EnableNegativeOffset: true,
	})
	return e, nil
}

// SetEvaluationInterval updates the default subquery step on reload.
func (e *Engine) SetEvaluationInterval(d time.Duration) {
	if d > 0 {
		e.evalInterval.Store(d.Milliseconds())
	}
}

// ApplyConfig puts in force what the Prometheus config sets for PromQL, as
// Prometheus's reload does: the default subquery step (the evaluation
// interval) and global.query_log_file (a JSON line per query; "" stops it).
func (e *Engine) ApplyConfig(pc *promconfig.Config) error {
	e.SetEvaluationInterval(time.Duration(pc.GlobalConfig.EvaluationInterval))
	if pc.GlobalConfig.QueryLogFile == "" {
		e.SetQueryLogger(nil)
		return nil
	}
	l, err := logging.NewJSONFileLogger(pc.GlobalConfig.QueryLogFile)
	if err != nil {
		return fmt.Errorf("open query log: %w", err)
	}
	e.SetQueryLogger(l)
	return nil
}

// Close closes the query log and the active query tracker.
func (e *Engine) Close() error {
	e.SetQueryLogger(nil)
	return e.Engine.Close()
}

// NewInstantQuery refuses a query whose subqueries would step too often
// before the engine evaluates anything; see checkSubquerySteps.
func (e *Engine) NewInstantQuery(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, ts time.Time) (promql.Query, error) {
	if err := e.checkSubquerySteps(qs, 0); err != nil {
		return nil, err
	}
	return e.Engine.NewInstantQuery(ctx, q, opts, qs, ts)
}

// NewRangeQuery is NewInstantQuery for a range of steps.
func (e *Engine) NewRangeQuery(ctx context.Context, q storage.Queryable, opts promql.QueryOpts, qs string, start, end time.Time, interval time.Duration) (promql.Query, error) {
	if err := e.checkSubquerySteps(qs, end.Sub(start)); err != nil {
		return nil, err
	}
	return e.Engine.NewRangeQuery(ctx, q, opts, qs, start, end, interval)
}

// checkSubquerySteps bounds every subquery's number of steps. Prometheus's
// engine keeps two int64 counters per subquery step for its statistics,
// whatever the data, so `rate(up[10y:1s])` allocates ~5 GB before it reads
// one sample. A subquery spans its own range plus the range its parent
// evaluates it over (the query's end-start, an outer subquery's span).
// Parse errors are left to the engine, which reports them as Prometheus does.
func (e *Engine) checkSubquerySteps(qs string, outer time.Duration) error {
	if e.maxSubquerySteps <= 0 || !mayHaveSubquery(qs) {
		return nil
	}
	expr, err := parser.NewParser(parser.Options{}).ParseExpr(qs)
	if err != nil {
		return nil
	}
	return e.walkSubqueries(expr, outer)
}

func (e *Engine) walkSubqueries(node parser.Node, span time.Duration) error {
	if sq, ok := node.(*parser.SubqueryExpr); ok {
		step := sq.Step
		if step <= 0 {
			step = time.Duration(e.evalInterval.Load()) * time.Millisecond
		}
		span += sq.Range
		if step > 0 {
			if steps := int64(span/step) + 1; steps > e.maxSubquerySteps {
				return fmt.Errorf("subquery %s would evaluate %d steps, more than metrics.query.max_subquery_steps (%d): use a larger subquery step or a shorter range",
					sq.String(), steps, e.maxSubquerySteps)
			}
		}
	}
	for _, child := range parser.Children(node) {
		if err := e.walkSubqueries(child, span); err != nil {
			return err
		}
	}
	return nil
}

// mayHaveSubquery is a cheap pre-check: a subquery is written [range:step],
// so a query with no ':' between a '[' and the next ']' has none and need not
// be parsed twice. Brackets inside strings only cause a needless parse.
func mayHaveSubquery(qs string) bool {
	for {
		open := strings.IndexByte(qs, '[')
		if open < 0 {
			return false
		}
		qs = qs[open+1:]
		end := strings.IndexByte(qs, ']')
		if end < 0 {
			return false
		}
		if strings.IndexByte(qs[:end], ':') >= 0 {
			return true
		}
		qs = qs[end+1:]
	}
}
