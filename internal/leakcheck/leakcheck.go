// Package leakcheck holds the goleak options every package's TestMain
// shares: the process-wide goroutines that upstream dependencies start at
// init or first use and never stop. Only tests import it.
package leakcheck

import "go.uber.org/goleak"

// Upstream are the long-lived goroutines of Prometheus's dependencies
// (klog's flush daemon, OpenCensus's view worker, go-cache's janitor).
func Upstream() []goleak.Option {
	return []goleak.Option{
		goleak.IgnoreTopFunction("k8s.io/klog/v2.(*flushDaemon).run.func1"),
		goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
		goleak.IgnoreAnyFunction("github.com/patrickmn/go-cache.(*janitor).Run"),
	}
}
