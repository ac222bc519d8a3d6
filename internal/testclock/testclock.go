// Package testclock gives tests a "now" that CI can move far from the wall
// clock. Tests that inject a clock into a component, or build their data
// around a base time, take it from Now; CI runs the time-sensitive packages a
// second time with NXWATCHER_TEST_CLOCK_SHIFT set (a Go duration such as
// "8760h" or "-8760h"), so a component that mixes its injected clock with
// time.Now, or a test that pins a calendar date, fails on every run instead of
// on the day the date goes stale. Only tests import this package.
package testclock

import (
	"fmt"
	"os"
	"sync"
	"time"
)

// EnvShift is the environment variable CI sets to move test clocks.
const EnvShift = "NXWATCHER_TEST_CLOCK_SHIFT"

var (
	shiftOnce sync.Once
	shift     time.Duration
	shiftErr  error
)

// Shift is how far test clocks are moved from the wall clock (0 unless
// NXWATCHER_TEST_CLOCK_SHIFT is set). A malformed value panics: a test run
// that silently ignored it would prove nothing.
func Shift() time.Duration {
	shiftOnce.Do(func() {
		v := os.Getenv(EnvShift)
		if v == "" {
			return
		}
		shift, shiftErr = time.ParseDuration(v)
	})
	if shiftErr != nil {
		panic(fmt.Sprintf("testclock: %s=%q: %v", EnvShift, os.Getenv(EnvShift), shiftErr))
	}
	return shift
}

// Now is the wall clock moved by Shift.
func Now() time.Time { return time.Now().Add(Shift()) }

// Base is Now truncated to the hour: a stable base for test data built
// around one instant, never a fixed calendar date.
func Base() time.Time { return Now().UTC().Truncate(time.Hour) }
