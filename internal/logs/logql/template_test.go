package logql

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// Template functions whose output a script test cannot hold (newlines) or
// that depend on the clock.
func TestTemplateFuncsDirect(t *testing.T) {
	now := time.Now().Unix()
	for _, c := range []struct{ tpl, want string }{
		{`{{ nindent 2 "a\nb" }}`, "\n  a\n  b"},
		{`{{ indent 2 "a\nb" }}`, "  a\n  b"},
		{`{{ gt (now | unixEpoch | int) ` + strconv.FormatInt(now-1, 10) + ` }}`, "true"},
		{`{{ __line__ }}|{{ __timestamp__ | unixEpochMillis }}`, "the line|1500"},
		{`{{ .a | default "-" }}{{ .missing | default "-" }}`, "x-"},
	} {
		ct, err := newTemplate(c.tpl)
		if err != nil {
			t.Fatalf("%s: %v", c.tpl, err)
		}
		var ls labelSet
		ls.reset(labelsOf("a", "x"), labelsOf())
		got, err := render(ct, &pipelineCtx{ts: int64(1500 * time.Millisecond)}, "the line", &ls)
		if err != nil || got != c.want {
			t.Errorf("%s = %q, %v; want %q", c.tpl, got, err, c.want)
		}
	}
}

// Bound copies of one template run in parallel without sharing per-line state.
func TestTemplateParallel(t *testing.T) {
	ct, err := newTemplate(`{{ __line__ }}`)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	for g := 0; g < 4; g++ {
		go func() {
			line := strconv.Itoa(g)
			var ls labelSet
			ls.reset(labelsOf(), labelsOf())
			for i := 0; i < 200; i++ {
				got, err := render(ct, &pipelineCtx{}, line, &ls)
				if err != nil || got != line {
					done <- fmt.Errorf("render %q = %q, %v", line, got, err)
					return
				}
			}
			done <- nil
		}()
	}
	for g := 0; g < 4; g++ {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

func labelsOf(kv ...string) labels.Labels { return labels.FromStrings(kv...) }
