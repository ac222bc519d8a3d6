package collector

import (
	"testing"

	"go.uber.org/goleak"
)

// The collector and the serve the end-to-end tests start must stop every
// goroutine they started.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Process-wide daemons started by upstream packages' init or first use.
		goleak.IgnoreTopFunction("k8s.io/klog/v2.(*flushDaemon).run.func1"),
		goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
		goleak.IgnoreAnyFunction("github.com/patrickmn/go-cache.(*janitor).Run"),
	)
}
