// Package browsertest drives the built-in web UI in a real browser (Debian's
// chromium through chromedp) against an in-process `nxwatcher serve` fed over
// the real protocols: remote write, Loki push, OTLP/HTTP traces, and a
// scrape of one live and one dead target. It holds only tests; see
// browser_test.go. Screenshots of every page go to $NXWATCHER_ARTIFACTS (a
// temporary directory when unset). Outside CI a missing chromium skips the
// tests; under CI it fails them.
package browsertest
