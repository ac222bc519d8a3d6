package demo

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/nx-watcher/nxwatcher/internal/leakcheck"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, leakcheck.Upstream()...)
}
