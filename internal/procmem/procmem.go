// Package procmem keeps the process's resident set to what it uses: after
// start-up it unmaps the executable's read-only pages that package init
// touched once (see ReleaseStartupPages), and ReleaseWhenQuiet does so
// again after every quiet interval.
package procmem

import (
	"bufio"
	"context"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// StartupSettle is how long after start-up the executable's read-only
// pages are released: long enough for every package's init and the first
// config's discovery and tailers to have run.
const StartupSettle = 10 * time.Second

// Release returns the Go heap's free pages to the operating system
// (debug.FreeOSMemory: a GC, then the scavenger) and releases the
// executable's read-only pages (ReleaseStartupPages), at once. Serve calls
// it when its first config is in force, before it says it is ready
// (ADR 0088).
func Release(logger *slog.Logger) {
	debug.FreeOSMemory()
	NoHugePages(logger)
	ReleaseStartupPages(logger)
}

// NoHugePages marks the executable's read-only mappings MADV_NOHUGEPAGE:
// from then on the kernel maps them page by page (by its fault-around
// window) and no longer maps a whole 2 MiB page-cache folio with one PMD
// when one byte of it is touched. On the 6.18 kernel measured, serve had
// 6–18 MiB of its executable PMD-mapped that way (FilePmdMapped); with it,
// 0, and 4–9 MiB less RssFile idle and during a burst of traces (ADR
// 0089). It only changes how pages are mapped, never their contents.
func NoHugePages(logger *slog.Logger) {
	exe, err := os.Executable()
	if err != nil {
		return
	}
	for _, m := range readOnlyMappingsOf(exe) {
		if _, _, errno := unix.Syscall(unix.SYS_MADVISE, m.start, m.end-m.start, unix.MADV_NOHUGEPAGE); errno != 0 {
			logger.Debug("madvise nohugepage failed", "err", errno)
		}
	}
}

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

// QuietOptions tune ReleaseWhenQuiet; the zero value takes the defaults.
type QuietOptions struct {
	// Every is how often the process's CPU time is read (default 1m).
	Every time.Duration
	// MaxCPU is the CPU time per Every below which an interval counts as
	// quiet (default 1/50 of Every: 2 % of one core).
	MaxCPU time.Duration
	// FreeHeap also returns the Go heap's free pages to the operating
	// system (debug.FreeOSMemory, which runs a GC first) at each release.
	FreeHeap bool
	// AtStart also releases at once when ReleaseWhenQuiet is called, before
	// the StartupSettle release: serve calls it as soon as it is ready,
	// when start-up's garbage and the executable's pages that package init
	// and opening the stores touched are all still resident (ADR 0088).
	AtStart bool
	// NoHugePages marks the executable's mappings MADV_NOHUGEPAGE before
	// each release (NoHugePages; ADR 0089).
	NoHugePages bool
	// cpuTime and release replace the process's CPU clock and the release
	// itself in tests.
	cpuTime func() time.Duration
	release func()
}

func (o QuietOptions) withDefaults(logger *slog.Logger) QuietOptions {
	if o.Every <= 0 {
		o.Every = time.Minute
	}
	if o.MaxCPU <= 0 {
		o.MaxCPU = o.Every / 50
	}
	if o.cpuTime == nil {
		o.cpuTime = processCPU
	}
	if o.release == nil {
		freeHeap, noHuge := o.FreeHeap, o.NoHugePages
		o.release = func() {
			if freeHeap {
				debug.FreeOSMemory()
			}
			if noHuge {
				NoHugePages(logger)
			}
			ReleaseStartupPages(logger)
		}
	}
	return o
}

// ReleaseWhenQuiet releases the executable's pages (ReleaseStartupPages)
// and, with FreeHeap, the Go heap's free pages, at the end of every
// interval of opts.Every in which the process used less than opts.MaxCPU,
// until ctx ends. With AtStart it releases at once; a release comes
// StartupSettle after the call whatever the load (as the one-time start-up
// release did).
//
// Why again and again: an idle server's timers, scrapes and GC touch a
// few pages of code at a time, and the kernel's fault-around maps their
// neighbours (64 KiB per fault), so the file-backed resident set creeps
// back to tens of MiB after the start-up release while the code really
// running stays small. Released pages that are used come back by a minor
// fault on their next access; on a busy process nothing is released
// (the pages would fault straight back in). ADR 0086.
func ReleaseWhenQuiet(ctx context.Context, logger *slog.Logger, opts QuietOptions) {
	opts = opts.withDefaults(logger)
	if opts.AtStart {
		opts.release()
	}
	settle := time.NewTimer(StartupSettle)
	defer settle.Stop()
	select {
	case <-ctx.Done():
		return
	case <-settle.C:
	}
	opts.release()
	tick := time.NewTicker(opts.Every)
	defer tick.Stop()
	last := opts.cpuTime()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := opts.cpuTime()
		used := now - last
		if used < opts.MaxCPU {
			opts.release()
			// The release's own work (a GC, page faults) does not count
			// against the next interval.
			now = opts.cpuTime()
		}
		last = now
	}
}

// processCPU is the user and system CPU time of the whole process.
func processCPU() time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
