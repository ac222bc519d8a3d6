package app

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
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

// The TSDB admin endpoints answer Prometheus's "admin APIs disabled" unless
// --web.enable-admin-api; with it, a snapshot lands under the storage path
// and delete_series works.
func TestAdminAPIOnlyWithTheFlag(t *testing.T) {
	off := startServer(t, "")
	code, body := off.post(t, "/api/v1/admin/tsdb/snapshot", "", nil, nil)
	if code == http.StatusOK || !strings.Contains(body, "admin APIs disabled") {
		t.Errorf("snapshot without the flag = %d %s, want Prometheus's refusal", code, body)
	}
	on := startServerWith(t, "", func(o *Options) { o.EnableAdminAPI = true })
	code, body = on.post(t, "/api/v1/admin/tsdb/snapshot", "", nil, nil)
	if code != http.StatusOK || !strings.Contains(body, `"name"`) {
		t.Fatalf("snapshot with the flag = %d %s", code, body)
	}
	var resp struct {
		Data struct{ Name string } `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(on.dataDir, "snapshots", resp.Data.Name)); err != nil {
		t.Errorf("snapshot directory: %v", err)
	}
	if code, body := on.post(t, "/api/v1/admin/tsdb/delete_series?match[]=up", "", nil, nil); code != http.StatusNoContent {
		t.Errorf("delete_series with the flag = %d %s, want 204", code, body)
	}
}
