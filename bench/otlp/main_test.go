package otlpbench

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks the benchmarks leave no goroutine behind (receivers,
// stores and gRPC connections all stop when a benchmark ends).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// Idle HTTP keep-alive connections of the shared client transport.
		goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
		goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
	)
}
