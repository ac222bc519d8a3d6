package logql

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// humanSizes are the units Loki accepts in `unwrap bytes()` and byte label
// filters, lower-cased: decimal (k, kb, mb…) and binary (ki, kib, mib…) up to
// exa, as the go-humanize library Loki uses reads them.
var humanSizes = map[string]float64{
	"": 1, "b": 1,
	"k": 1e3, "kb": 1e3, "ki": 1 << 10, "kib": 1 << 10,
	"m": 1e6, "mb": 1e6, "mi": 1 << 20, "mib": 1 << 20,
	"g": 1e9, "gb": 1e9, "gi": 1 << 30, "gib": 1 << 30,
	"t": 1e12, "tb": 1e12, "ti": 1 << 40, "tib": 1 << 40,
	"p": 1e15, "pb": 1e15, "pi": 1 << 50, "pib": 1 << 50,
	"e": 1e18, "eb": 1e18, "ei": 1 << 60, "eib": 1 << 60,
}

// parseHumanBytes reads a humanised size such as "2.3MB", "512KiB", "1,024 kb"
// or "42": leading digits (with '.' and ',' allowed, commas ignored), then an
// optional unit, case-insensitive, spaces around it ignored. The result is
// truncated to whole bytes. Negative sizes are not sizes.
func parseHumanBytes(s string) (float64, error) {
	n := 0
	comma := false
	for n < len(s) && (s[n] >= '0' && s[n] <= '9' || s[n] == '.' || s[n] == ',') {
		comma = comma || s[n] == ','
		n++
	}
	num := s[:n]
	if comma {
		num = strings.ReplaceAll(num, ",", "")
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, err
	}
	unit := strings.ToLower(strings.TrimSpace(s[n:]))
	m, ok := humanSizes[unit]
	if !ok {
		return 0, fmt.Errorf("unhandled size name: %v", unit)
	}
	f *= m
	if f >= math.MaxUint64 {
		return 0, fmt.Errorf("too large: %v", s)
	}
	return math.Trunc(f), nil
}
