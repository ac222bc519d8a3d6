package ui

import (
	"testing"

	"go.uber.org/goleak"
	"golang.org/x/crypto/bcrypt"

	"github.com/nx-watcher/nxwatcher/internal/leakcheck"
)

func TestMain(m *testing.M) {
	// Hashes written by tests need not be slow; the cost is not what they test.
	bcryptCost = bcrypt.MinCost
	goleak.VerifyTestMain(m, leakcheck.Upstream()...)
}
