package config

import (
	"os"
	"testing"
)

// FuzzParse: any bytes given as a serve config either load or are refused
// with an error; the loader never panics.
func FuzzParse(f *testing.F) {
	for _, p := range []string{"default.yml", "testdata/seed-serve.yml"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("metrics:\n  prometheus:\n    global: {scrape_interval: 1s}\n    scrape_configs: [{job_name: a}]\n"))
	f.Add([]byte("alerting:\n  alertmanager:\n    route: {receiver: x}\n    receivers: [{name: x}]\n"))
	f.Add([]byte("logs: {limits: {max_line_size: 1KiB}}\ntraces: {enabled: false}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, t.TempDir(), nop)
		if err == nil && cfg == nil {
			t.Fatal("no config and no error")
		}
	})
}
