package lokiapi

import (
	"errors"
	"net/http"
	"strconv"
	"sync"
	"testing"

	"github.com/grafana/loki/pkg/push"
)

// Deps.Forward gets every stream the limits accepted, after the store has
// committed it; a retry passes the same lines again (at least once); a
// forward that fails answers 503 so the sender retries.
func TestPushForwardHook(t *testing.T) {
	e := newEnv(t, nil)
	var mu sync.Mutex
	var got []AcceptedStream
	fail := false
	e.api.forward = func(s []AcceptedStream) error {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			return errors.New("backlog full")
		}
		got = append(got, s...)
		return nil
	}
	ts := now.Add(-1e9)
	req := []push.Stream{{Labels: `{app="fwd"}`, Entries: []push.Entry{{Timestamp: ts, Line: "one"}, {Timestamp: ts.Add(1), Line: "two"}}}}
	for range 2 { // the second is a sender's retry
		if code, body := e.pushProto(t, req); code != http.StatusNoContent {
			t.Fatalf("push = %d %s", code, body)
		}
	}
	mu.Lock()
	if len(got) != 2 || len(got[0].Entries) != 2 || got[0].Labels.Get("app") != "fwd" || got[0].Labels.Get("service_name") != "fwd" {
		t.Fatalf("forwarded %+v, want the two-line stream twice with its discovered labels", got)
	}
	fail = true
	mu.Unlock()
	code, body := e.pushProto(t, []push.Stream{{Labels: `{app="fwd"}`, Entries: []push.Entry{{Timestamp: ts.Add(2), Line: "three " + strconv.Itoa(3)}}}})
	if code != http.StatusServiceUnavailable {
		t.Fatalf("push with a failing forward = %d %s, want 503", code, body)
	}
}
