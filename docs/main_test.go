// Package docs holds the tests that keep the documentation true: the config
// reference (configuration.md) against the config structs, and every config
// example and the README tour run against the real loader and an in-process
// server.
package docs

import (
	"testing"

	"go.uber.org/goleak"
)

// The tour test runs a whole `nxwatcher serve` in-process; every goroutine it
// starts must be gone when it has stopped.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Process-wide daemons started by upstream packages' init or first use.
		goleak.IgnoreTopFunction("k8s.io/klog/v2.(*flushDaemon).run.func1"),
		goleak.IgnoreTopFunction("go.opencensus.io/stats/view.(*worker).start"),
		goleak.IgnoreAnyFunction("github.com/patrickmn/go-cache.(*janitor).Run"),
	)
}
