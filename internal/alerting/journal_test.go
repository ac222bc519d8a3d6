package alerting

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/nflog"
	"github.com/prometheus/alertmanager/nflog/nflogpb"
	"github.com/prometheus/client_golang/prometheus"
)

var journalRcv = &nflogpb.Receiver{GroupName: "default", Integration: "webhook", Idx: 0}

// openLog opens a notification log from dir's snapshot and journal, as New
// does.
func openLog(t *testing.T, dir string) (*nflog.Log, *nflogJournal) {
	t.Helper()
	l, err := nflog.New(nflog.Options{
		SnapshotFile: snapshotIfExists(filepath.Join(dir, "nflog")),
		Retention:    time.Hour,
		Metrics:      prometheus.NewRegistry(),
	})
	if err != nil {
		t.Fatal(err)
	}
	j, err := openNflogJournal(filepath.Join(dir, "nflog.journal"), l)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = j.close() })
	return l, j
}

func logAndSync(t *testing.T, l *nflog.Log, j *nflogJournal, group string, firing uint64) {
	t.Helper()
	if err := l.Log(journalRcv, group, []uint64{firing}, nil, nil, 0); err != nil {
		t.Fatal(err)
	}
	if err := j.sync(); err != nil {
		t.Fatal(err)
	}
}

// firing returns the firing alerts of group's entry, nil when there is none.
func firing(t *testing.T, l *nflog.Log, group string) []uint64 {
	t.Helper()
	es, err := l.Query(nflog.QGroupKey(group), nflog.QReceiver(journalRcv))
	if err != nil || len(es) == 0 {
		return nil
	}
	return es[0].FiringAlerts
}

// A record torn by a crash mid-write is cut off at open; the whole records
// before it survive and new records follow them.
func TestNflogJournalCutsTornTail(t *testing.T) {
	dir := t.TempDir()
	l, j := openLog(t, dir)
	logAndSync(t, l, j, "a", 1)
	logAndSync(t, l, j, "b", 2)
	path := filepath.Join(dir, "nflog.journal")
	whole, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Half of a copy of the first record, as a crash mid-write leaves it.
	torn := append(append([]byte(nil), whole...), whole[:len(whole)/4]...)
	if err := os.WriteFile(path, torn, 0o600); err != nil {
		t.Fatal(err)
	}
	_ = j.close()

	l2, j2 := openLog(t, dir)
	if got := firing(t, l2, "a"); len(got) != 1 || got[0] != 1 {
		t.Fatalf("group a after reopen = %v", got)
	}
	if got := firing(t, l2, "b"); len(got) != 1 || got[0] != 2 {
		t.Fatalf("group b after reopen = %v", got)
	}
	logAndSync(t, l2, j2, "c", 3)
	_ = j2.close()
	l3, _ := openLog(t, dir)
	for g, want := range map[string]uint64{"a": 1, "b": 2, "c": 3} {
		if got := firing(t, l3, g); len(got) != 1 || got[0] != want {
			t.Fatalf("group %s after second reopen = %v, want [%d]", g, got, want)
		}
	}
}

// After a compaction the snapshot holds the entries and the journal only
// newer ones; a crash between writing the snapshot and emptying the
// journal replays older entries, which must not win over newer ones.
func TestNflogJournalNewestWinsAcrossSnapshot(t *testing.T) {
	dir := t.TempDir()
	l, j := openLog(t, dir)
	logAndSync(t, l, j, "g", 1) // journal: g=1
	// g=2 is logged but not yet synced when a snapshot (holding g=2) is
	// written; the crash comes before the journal is emptied.
	if err := l.Log(journalRcv, "g", []uint64{2}, nil, nil, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := writeSnapshot(l, filepath.Join(dir, "nflog")); err != nil {
		t.Fatal(err)
	}
	_ = j.close()

	l2, j2 := openLog(t, dir)
	if got := firing(t, l2, "g"); len(got) != 1 || got[0] != 2 {
		t.Fatalf("group g after reopen = %v, want the newest [2], not the journal's older [1]", got)
	}
	// A clean compaction leaves an empty journal and the snapshot.
	logAndSync(t, l2, j2, "g", 3)
	if _, err := j2.compact(l2, filepath.Join(dir, "nflog")); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "nflog.journal")); err != nil || fi.Size() != 0 {
		t.Fatalf("journal after compact: %v, %v", fi, err)
	}
	_ = j2.close()
	l3, _ := openLog(t, dir)
	if got := firing(t, l3, "g"); len(got) != 1 || got[0] != 3 {
		t.Fatalf("group g after compaction and reopen = %v, want [3]", got)
	}
}

// FuzzNflogJournal feeds arbitrary journal files to the open path: the
// valid prefix must always replay, and reopening never panics.
func FuzzNflogJournal(f *testing.F) {
	dir := f.TempDir()
	l, err := nflog.New(nflog.Options{Retention: time.Hour, Metrics: prometheus.NewRegistry()})
	if err != nil {
		f.Fatal(err)
	}
	j, err := openNflogJournal(filepath.Join(dir, "seed.journal"), l)
	if err != nil {
		f.Fatal(err)
	}
	for i := range 3 {
		if err := l.Log(journalRcv, string(rune('a'+i)), []uint64{uint64(i)}, []uint64{7}, nil, 0); err != nil {
			f.Fatal(err)
		}
	}
	f.Add(append([]byte(nil), j.pending...))
	f.Add(j.pending[:len(j.pending)/2])
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	_ = j.close()
	f.Fuzz(func(t *testing.T, b []byte) {
		valid := validPrefix(b)
		if valid < 0 || valid > len(b) {
			t.Fatalf("validPrefix = %d of %d", valid, len(b))
		}
		l, err := nflog.New(nflog.Options{Retention: time.Hour, Metrics: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		if valid > 0 {
			if err := l.Merge(b[:valid]); err != nil {
				t.Fatalf("valid prefix does not replay: %v", err)
			}
		}
	})
}
