package browsertest

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/nx-watcher/nxwatcher/internal/leakcheck"
)

// Every goroutine a test starts (the servers', the demo's, chromedp's and
// the HTTP clients') must be gone when the package's tests end.
//
// goleak.VerifyTestMain gives them ~0.4 s (20 retries, sleeps capped at
// 100 ms; v1.3.0 exports no option to change that). Here each test's
// cleanup already waits for what it stopped (Run returned, Close, the
// browser process reaped), but some goroutines end only after that: a
// connection's read loop that sees the peer's close, chromedp's handler
// after the websocket drops. At load 18–20 on 2 cores they can take longer
// than 0.4 s to be scheduled at all. So the check polls goleak.Find for up
// to leakWait, and:
//   - if goroutines remain after that, it fails with a "--- FAIL:" line
//     that names each one by state and top function, then the full stacks
//     (a bare goleak failure printed no test error, only the package's FAIL);
//   - if they took more than slowExit to finish, it says which, so a slow
//     shutdown shows in the log before it becomes a leak.
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		opts := leakcheck.Upstream()
		code = checkLeaks(os.Stderr, leakWait, slowExit, func() error { return goleak.Find(opts...) })
	}
	os.Exit(code)
}

const (
	// leakWait bounds how long goroutines may take to end after the last
	// test: far above the ~1 s a loaded machine needs, far below the test
	// timeout.
	leakWait = 30 * time.Second
	// slowExit is the wait past which finishing goroutines are named.
	slowExit = time.Second
)

// checkLeaks polls find (goleak.Find: itself ~0.4 s of retries) until it
// finds no unexpected goroutine or wait has passed; it returns the exit
// code and writes to w what it found: the leak, or the goroutines that took
// longer than slow to end.
func checkLeaks(w io.Writer, wait, slow time.Duration, find func() error) int {
	start := time.Now()
	var first error
	for {
		err := find()
		if err == nil {
			if took := time.Since(start); first != nil && took > slow {
				fmt.Fprintf(w, "browsertest: goroutines still running when the tests ended took %.1fs to finish:\n%s",
					took.Seconds(), summary(first, "  "))
			}
			return 0
		}
		if first == nil {
			first = err
		}
		if time.Since(start) >= wait {
			fmt.Fprintf(w, "--- FAIL: TestMain (goroutine leak)\n    %d goroutines still running %s after the last test ended:\n%s%v\n",
				len(goroutineHeader.FindAllString(err.Error(), -1)), wait, summary(err, "      "), err)
			return 1
		}
	}
}

// goroutineHeader matches goleak's head of each stack it reports:
// "Goroutine 12 in state select, with net/http.(*persistConn).readLoop on
// top of the stack:".
var goroutineHeader = regexp.MustCompile(`Goroutine \d+ in state [^\n]*? on top of the stack:`)

// summary is one line per goroutine in a goleak error, each after prefix.
func summary(err error, prefix string) string {
	var b strings.Builder
	for _, h := range goroutineHeader.FindAllString(err.Error(), -1) {
		b.WriteString(prefix + strings.TrimSuffix(h, " on top of the stack:") + "\n")
	}
	return b.String()
}
