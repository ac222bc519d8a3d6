// Package units holds the value types that config files share: byte sizes
// written like "512MiB" or "8GB". Durations use prometheus/common/model.Duration
// ("30d", "72h") so every section spells time the way Prometheus does.
package units

import (
	"fmt"
	"strconv"
	"strings"
)

// Bytes is a size in bytes that reads and writes as "512MiB", "8GB", "1024".
type Bytes int64

var byteSuffixes = []struct {
	suffix string
	scale  int64
}{
	// Longest suffixes first so "KiB" wins over "B".
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1000}, {"MB", 1000 * 1000}, {"GB", 1000 * 1000 * 1000}, {"TB", 1000 * 1000 * 1000 * 1000},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40},
	{"B", 1},
}

// ParseBytes reads a size such as "512MiB", "1.5GB" or "4096".
func ParseBytes(s string) (Bytes, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("invalid size %q: empty", s)
	}
	scale := int64(1)
	for _, u := range byteSuffixes {
		if strings.HasSuffix(t, u.suffix) {
			scale = u.scale
			t = strings.TrimSpace(strings.TrimSuffix(t, u.suffix))
			break
		}
	}
	f, err := strconv.ParseFloat(t, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("invalid size %q: want a number with an optional unit such as MiB or GB", s)
	}
	return Bytes(f * float64(scale)), nil
}

// String prints the size with the largest binary unit that divides it evenly.
func (b Bytes) String() string {
	for _, u := range []struct {
		suffix string
		scale  int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if b != 0 && int64(b)%u.scale == 0 {
			return strconv.FormatInt(int64(b)/u.scale, 10) + u.suffix
		}
	}
	return strconv.FormatInt(int64(b), 10) + "B"
}

// UnmarshalYAML accepts a string with a unit or a plain integer.
func (b *Bytes) UnmarshalYAML(unmarshal func(any) error) error {
	var s string
	if err := unmarshal(&s); err != nil {
		return err
	}
	v, err := ParseBytes(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// MarshalYAML writes the size in its String form.
func (b Bytes) MarshalYAML() (any, error) { return b.String(), nil }
