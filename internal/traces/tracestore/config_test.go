package tracestore

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestConfigYAML(t *testing.T) {
	src := `
retention: 30d
retention_size: 8GiB
trace_idle: 15s
max_trace_live: 10m
max_block_duration: 2m
max_block_bytes: 32MiB
max_head_bytes: 128MiB
compaction_window: 2h
max_trace_bytes: 10MiB
`
	cfg := DefaultConfig()
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	o := cfg.Options()
	if o.Retention != 30*24*time.Hour || o.RetentionSize != 8<<30 || o.TraceIdle != 15*time.Second ||
		o.MaxBlockBytes != 32<<20 || o.CompactionWindow != 2*time.Hour || o.MaxTraceBytes != 10<<20 {
		t.Fatalf("options = %+v", o)
	}
	dec = yaml.NewDecoder(strings.NewReader("retension: 3d\n"))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err == nil {
		t.Fatal("unknown key accepted")
	}
}

func TestConfigValidateReportsAll(t *testing.T) {
	c := DefaultConfig()
	c.Retention = 0
	c.MaxBlockBytes = 10
	c.TraceIdle = c.MaxTraceLive * 2
	err := c.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"traces.retention", "traces.max_block_bytes", "traces.trace_idle"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if DefaultConfig().Retention != 72*3600*1e9 {
		t.Fatal("default retention is not 72h")
	}
}
