package browsertest

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/nx-watcher/nxwatcher/internal/leakcheck"
)

// Every goroutine a test starts (the server's and chromedp's) must be gone
// when the package's tests end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, leakcheck.Upstream()...)
}
