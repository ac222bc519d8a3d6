package app

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// A subquery that would step billions of times is refused with 400 before
// the engine allocates anything; the server keeps answering.
func TestHugeSubqueryRefusedBeforeEvaluation(t *testing.T) {
	ts := startServer(t, "")
	code, body := ts.get(t, "/api/v1/query?query="+url.QueryEscape("rate(up[10y:1s])"))
	if code != http.StatusBadRequest || !strings.Contains(body, `"errorType":"bad_data"`) || !strings.Contains(body, "max_subquery_steps") {
		t.Fatalf("query rate(up[10y:1s]) = %d %s, want 400 bad_data naming max_subquery_steps", code, body)
	}
	if code, body := ts.get(t, "/api/v1/query?query=up"); code != http.StatusOK {
		t.Fatalf("query up after a refused query = %d %s", code, body)
	}
}
