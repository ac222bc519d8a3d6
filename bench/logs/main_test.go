package logs

import (
	"testing"

	"go.uber.org/goleak"
)

// The benchmarks start stores and push from many goroutines: none may
// outlive them.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
