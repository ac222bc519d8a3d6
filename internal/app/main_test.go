package app

import (
	"testing"

	"go.uber.org/goleak"
)

// Every component must stop its goroutines when Run returns and Close is done.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Process-wide daemons started by upstream packages' init or first use.
		goleak.IgnoreTopFunction("k8s.io/klog/v2.(*flushDaemon).run.func1"),
		goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
		goleak.IgnoreAnyFunction("github.com/patrickmn/go-cache.(*janitor).Run"),
	)
}
