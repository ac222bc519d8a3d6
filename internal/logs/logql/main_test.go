package logql

import (
	"testing"

	"go.uber.org/goleak"
)

// The engine runs stream workers and the store chunk loaders: none may outlive a query.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
