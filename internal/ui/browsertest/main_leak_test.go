package browsertest

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// parkedUntil blocks until release is closed; its name is what a leak
// report must show.
func parkedUntil(release <-chan struct{}) { <-release }

// TestCheckLeaksNamesWhatLeaked: a goroutine still running when the wait
// ends fails the check with a "--- FAIL:" line and one line per goroutine
// naming its top function, then the stacks.
func TestCheckLeaksNamesWhatLeaked(t *testing.T) {
	release, done := make(chan struct{}), make(chan struct{})
	go func() { defer close(done); parkedUntil(release) }()
	defer func() { close(release); <-done }()

	var out bytes.Buffer
	if code := checkLeaks(&out, 0, time.Hour, func() error { return goleak.Find() }); code != 1 {
		t.Fatalf("exit code %d with a parked goroutine, want 1\n%s", code, &out)
	}
	head, _, _ := strings.Cut(out.String(), "\ngoroutine ")
	for _, want := range []string{"--- FAIL: TestMain (goroutine leak)", "goroutines still running 0s after the last test ended", "in state chan receive, with github.com/nx-watcher/nxwatcher/internal/ui/browsertest.parkedUntil"} {
		if !strings.Contains(head, want) {
			t.Errorf("report lacks %q:\n%s", want, head)
		}
	}
}

// TestCheckLeaksWaitsForFinishingGoroutines: goroutines that end while the
// check polls pass it, and are named when they took longer than slow.
func TestCheckLeaksWaitsForFinishingGoroutines(t *testing.T) {
	leak := errors.New("found unexpected goroutines:\n[Goroutine 7 in state select, with net/http.(*persistConn).readLoop on top of the stack:\nnet/http.(*persistConn).readLoop(...)\n]")
	calls := 0
	find := func() error {
		calls++
		if calls < 3 {
			return leak
		}
		return nil
	}
	var out bytes.Buffer
	if code := checkLeaks(&out, time.Hour, 0, find); code != 0 || calls != 3 {
		t.Fatalf("exit code %d after %d finds, want 0 after 3", code, calls)
	}
	if want := "  Goroutine 7 in state select, with net/http.(*persistConn).readLoop\n"; !strings.Contains(out.String(), want) {
		t.Fatalf("slow exit not named: %q", out.String())
	}
	out.Reset()
	calls = 0
	if code := checkLeaks(&out, time.Hour, time.Hour, find); code != 0 || out.Len() != 0 {
		t.Fatalf("quick exit: code %d, output %q; want 0 and nothing", code, out.String())
	}
}
