package lokiapi

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/nx-watcher/nxwatcher/internal/logs/logstore"
)

func decodeStrict(t *testing.T, src string) (Config, error) {
	t.Helper()
	var wrapper struct {
		Logs Config `yaml:"logs"`
	}
	wrapper.Logs = DefaultConfig()
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	err := dec.Decode(&wrapper)
	return wrapper.Logs, err
}

func TestConfigYAML(t *testing.T) {
	c, err := decodeStrict(t, `
logs:
  retention: 15d
  retention_size: 4GiB
  wal:
    fsync: always
  limits:
    max_line_size: 512KB
    ingestion_rate_mb: 8
    ingestion_burst_size_mb: 12
`)
	if err != nil {
		t.Fatal(err)
	}
	if time.Duration(c.Retention) != 15*24*time.Hour || c.RetentionSize != 4<<30 || c.WAL.Fsync != "always" ||
		c.Limits.MaxLineSize != 512000 || c.Limits.IngestionRateMB != 8 {
		t.Fatalf("decoded %+v", c)
	}
	// Keys left out keep their defaults.
	d := DefaultConfig()
	if c.Limits.MaxLabelNamesPerSeries != d.Limits.MaxLabelNamesPerSeries || c.WAL.FsyncInterval != d.WAL.FsyncInterval || c.Storage != d.Storage {
		t.Fatalf("defaults lost: %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	o := c.StoreOptions()
	if o.Fsync != logstore.FsyncAlways || o.RetentionSize != 4<<30 || o.Limits.MaxStreams != 5000 {
		t.Fatalf("store options %+v", o)
	}
	if _, err := decodeStrict(t, "logs:\n  retension: 1d\n"); err == nil || !strings.Contains(err.Error(), "retension") {
		t.Fatalf("unknown key not rejected: %v", err)
	}
	if _, err := decodeStrict(t, "logs:\n  retention_size: lots\n"); err == nil {
		t.Fatal("bad size accepted")
	}
}
