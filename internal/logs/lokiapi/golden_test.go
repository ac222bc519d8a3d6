package lokiapi

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden answers under testdata/golden")

// goldenClock is the suite's fixed clock, 2026-01-01T00:00:00Z: the data
// set and the requests carry absolute times, so the answers never depend
// on the day the test runs.
var goldenClock = time.Unix(1767225600, 0).UTC()

type goldenRequest struct {
	name, method, path string
	params             url.Values
	header             http.Header
}

func readGoldenRequests(t *testing.T) []goldenRequest {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "golden", "requests.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []goldenRequest
	var cur *goldenRequest
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#"):
		case strings.TrimSpace(line) == "":
			cur = nil
		case cur == nil:
			fs := strings.Fields(line)
			if len(fs) != 3 {
				t.Fatalf("requests.txt:%d: want \"name METHOD path\", got %q", n, line)
			}
			out = append(out, goldenRequest{name: fs[0], method: fs[1], path: fs[2], params: url.Values{}, header: http.Header{}})
			cur = &out[len(out)-1]
		case strings.HasPrefix(line, "header: "):
			k, v, _ := strings.Cut(strings.TrimPrefix(line, "header: "), ": ")
			cur.header.Add(k, v)
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("requests.txt:%d: want key=value, got %q", n, line)
			}
			cur.params.Add(k, v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// volatile are the answer fields that measure the run (time), not the
// data: their values are replaced before the comparison.
var volatile = map[string]bool{
	"execTime": true, "queueTime": true, "bytesProcessedPerSecond": true, "linesProcessedPerSecond": true,
	"chunksDownloadTime": true, "chunkRefsFetchTime": true, "congestionControlLatency": true,
	"goVersion": true,
}

func maskVolatile(v any) any {
	switch t := v.(type) {
	case map[string]any:
		for k, sub := range t {
			if volatile[k] {
				t[k] = "(varies)"
			} else {
				t[k] = maskVolatile(sub)
			}
		}
	case []any:
		for i := range t {
			t[i] = maskVolatile(t[i])
		}
	}
	return v
}

// goldenAnswer renders an answer for the golden file: the status, the
// content type and the body, JSON bodies re-indented with keys sorted and
// volatile fields masked, other bodies as a string.
func goldenAnswer(code int, ct string, body []byte) ([]byte, error) {
	var parsed any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	ans := map[string]any{"status": code, "contentType": ct}
	if err := dec.Decode(&parsed); err == nil && !dec.More() {
		ans["body"] = maskVolatile(parsed)
	} else {
		ans["body"] = string(body)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", " ")
	err := enc.Encode(ans)
	return b.Bytes(), err
}

func TestGoldenAnswers(t *testing.T) {
	e := newEnvAt(t, func() time.Time { return goldenClock }, nil)
	for _, p := range []struct{ path, file string }{
		{"/loki/api/v1/push", "push.json"},
		{"/otlp/v1/logs", "otlp.json"},
	} {
		body, err := os.ReadFile(filepath.Join("testdata", "golden", p.file))
		if err != nil {
			t.Fatal(err)
		}
		if code, msg := e.post(t, p.path, "application/json", "", body); code/100 != 2 {
			t.Fatalf("push %s: %d %s", p.file, code, msg)
		}
	}
	seen := map[string]bool{}
	for _, rq := range readGoldenRequests(t) {
		if seen[rq.name] {
			t.Fatalf("request name %s used twice", rq.name)
		}
		seen[rq.name] = true
		t.Run(rq.name, func(t *testing.T) {
			req, _ := http.NewRequest(rq.method, e.srv.URL+rq.path+"?"+rq.params.Encode(), nil)
			req.Header = rq.header
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			got, err := goldenAnswer(resp.StatusCode, resp.Header.Get("Content-Type"), body)
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join("testdata", "golden", rq.name+".json")
			if *update {
				if err := os.WriteFile(file, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("answer differs from %s (run with -update after checking the change):\n%s", file, lineDiff(string(want), string(got)))
			}
		})
	}
	if !*update {
		// Every golden file belongs to a request.
		files, _ := filepath.Glob(filepath.Join("testdata", "golden", "*.json"))
		for _, f := range files {
			name := strings.TrimSuffix(filepath.Base(f), ".json")
			if !seen[name] && name != "push" && name != "otlp" {
				t.Errorf("%s has no request in requests.txt", f)
			}
		}
	}
}

// lineDiff shows the first lines where want and got differ.
func lineDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(wl), len(gl)) && shown < 20; i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			fmt.Fprintf(&b, "line %d:\n- %s\n+ %s\n", i+1, w, g)
			shown++
		}
	}
	return b.String()
}
