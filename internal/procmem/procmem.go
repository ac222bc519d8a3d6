// Package procmem keeps the process's resident set to what it uses: after
// start-up it unmaps the executable's read-only pages that package init
// touched once (see ReleaseStartupPages).
package procmem

import (
	"bufio"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// StartupSettle is how long after start-up the executable's read-only
// pages are released: long enough for every package's init and the first
// config's discovery and tailers to have run.
const StartupSettle = 10 * time.Second

// ReleaseStartupPages unmaps the executable's read-only pages (code and
// constant data) from this process after start-up. The binary holds every
// role; package init of all of them, and the kernel's fault-around, map
// tens of MiB of it that a node agent never touches again. MADV_DONTNEED on
// an unmodified private file mapping only drops page-table entries: the
// pages stay in the page cache, and what is still used faults back in on
// its next access (a minor fault), so the resident set is what the process
// really uses. Writable mappings are left alone, since DONTNEED would
// discard their changes. ADR 0051.
func ReleaseStartupPages(logger *slog.Logger) {
	exe, err := os.Executable()
	if err != nil {
		return
	}
	before := RSSKiB()
	released := 0
	for _, m := range readOnlyMappingsOf(exe) {
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, unix.MADV_DONTNEED); errno != 0 {
			logger.Debug("madvise failed", "err", errno)
			continue
		}
		released++
	}
	if released > 0 {
		logger.Debug("Released start-up pages of the executable", "mappings", released, "rss_kib_before", before, "rss_kib_after", RSSKiB())
	}
}

type mapping struct{ start, end uintptr }

// readOnlyMappingsOf lists the mappings of file that are neither writable
// nor shared, from /proc/self/maps.
func readOnlyMappingsOf(file string) []mapping {
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []mapping
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// 00400000-02da1000 r-xp 00000000 08:01 123 /path/to/exe
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[5] != file {
			continue
		}
		perms := fields[1]
		if len(perms) != 4 || perms[1] == 'w' || perms[3] != 'p' {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		out = append(out, mapping{uintptr(start), uintptr(end)})
	}
	return out
}

// RSSKiB is VmRSS from /proc/self/status, 0 if unreadable.
func RSSKiB() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}
