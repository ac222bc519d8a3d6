// Package testbin finds the real programs that tests drive (node exporter,
// promtool, amtool). .ci/run installs them, so under CI a missing one fails
// the test instead of skipping it.
package testbin

import (
	"os"
	"os/exec"
	"testing"
)

// Require returns the path of program, or skips the test outside CI (and
// fails it under CI) naming the Debian package that provides it.
func Require(t testing.TB, program, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(program)
	if err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not installed; .ci/run must install the Debian package %s", program, debianPackage)
	}
	t.Skipf("%s not installed (apt-get install %s); CI installs it", program, debianPackage)
	return ""
}
