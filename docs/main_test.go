// Package docs holds the tests that keep the documentation true: the config
// reference (configuration.md) against the config structs, every config
// example loaded by the real loader, the README tour run against an
// in-process server, and the architecture map against the package tree.
package docs

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/nx-watcher/nxwatcher/internal/leakcheck"
)

// The tour test runs a whole `nxwatcher serve` in-process; every goroutine it
// starts must be gone when it has stopped.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, leakcheck.Upstream()...)
}
