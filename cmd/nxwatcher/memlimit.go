package main

import (
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// memLimitRatio is the share of the container's memory limit given to the Go
// heap target, Prometheus's --auto-gomemlimit.ratio default.
const memLimitRatio = 0.9

// cgroupMemoryFiles hold the container memory limit (cgroup v2, then v1).
var cgroupMemoryFiles = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// setAutoMemLimit sets GOMEMLIMIT from the container's memory limit, as
// Prometheus 3 does by default, so the GC works harder before the kernel
// kills us. An explicit GOMEMLIMIT wins.
func setAutoMemLimit(logger *slog.Logger) {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	limit, ok := containerMemoryLimit(cgroupMemoryFiles)
	if !ok {
		return
	}
	target := int64(float64(limit) * memLimitRatio)
	debug.SetMemoryLimit(target)
	logger.Info("Set GOMEMLIMIT from the container memory limit", "limit_bytes", limit, "gomemlimit_bytes", target)
}

func containerMemoryLimit(files []string) (int64, bool) {
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		s := strings.TrimSpace(string(b))
		if s == "max" {
			return 0, false
		}
		v, err := strconv.ParseInt(s, 10, 64)
		// cgroup v1 reports "no limit" as a huge page-aligned number.
		if err != nil || v <= 0 || v >= 1<<62 {
			return 0, false
		}
		return v, true
	}
	return 0, false
}
