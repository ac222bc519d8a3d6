package app

import (
	"net/http"
	"testing"
	"time"
)

// Without --web.enable-lifecycle, /-/reload and /-/quit answer 403 with
// Prometheus's text and change nothing; with it, /-/quit ends Run cleanly.
func TestLifecycleAPIOffByDefault(t *testing.T) {
	ts := startServerWith(t, "", func(o *Options) { o.EnableLifecycle = false })
	for _, path := range []string{"/-/reload", "/-/quit"} {
		code, body := ts.post(t, path, "", nil, nil)
		if code != http.StatusForbidden || body != "Lifecycle API is not enabled." {
			t.Errorf("POST %s = %d %q, want 403 %q", path, code, body, "Lifecycle API is not enabled.")
		}
	}
	if code, _ := ts.get(t, "/-/ready"); code != http.StatusOK {
		t.Errorf("after refused /-/quit, /-/ready = %d", code)
	}
}

func TestQuitEndsRun(t *testing.T) {
	ts := startServer(t, "")
	code, body := ts.post(t, "/-/quit", "", nil, nil)
	if code != http.StatusOK || body != "Requesting termination... Goodbye!" {
		t.Fatalf("POST /-/quit = %d %q", code, body)
	}
	select {
	case err := <-ts.done:
		if err != nil {
			t.Errorf("Run after /-/quit: %v", err)
		}
		ts.done <- err // ts.stop reads it again
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return within 30s of /-/quit")
	}
}
