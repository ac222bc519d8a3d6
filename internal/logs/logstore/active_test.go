package logstore

import (
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
)

func commitOne(db *DB, app string, ts int64) error {
	a := db.Appender()
	a.Append(labels.FromStrings("app", app), Entry{Timestamp: ts, Line: "line of " + app})
	rej, err := a.Commit()
	if err != nil {
		return err
	}
	if len(rej) > 0 {
		return rej[0].Err
	}
	return nil
}

// The stream limit counts every stream written within the active window:
// a head flush, or a restart, does not reset it; streams idle for longer
// than the window stop counting.
func TestStreamLimitSurvivesFlushAndReopen(t *testing.T) {
	dir := t.TempDir()
	clock := time.Unix(0, base)
	opts := DefaultOptions()
	opts.Now = func() time.Time { return clock }
	opts.Limits = Limits{MaxStreams: 2}
	open := func() *DB {
		db, err := Open(dir, opts, Deps{Registerer: prometheus.NewRegistry()})
		if err != nil {
			t.Fatal(err)
		}
		return db
	}
	db := open()
	for _, app := range []string{"a", "b"} {
		if err := commitOne(db, app, base); err != nil {
			t.Fatal(err)
		}
	}
	if err := commitOne(db, "c", base); !errors.Is(err, ErrTooManyStreams) {
		t.Fatalf("third stream: %v", err)
	}
	if err := db.FlushHead(); err != nil {
		t.Fatal(err)
	}
	if err := commitOne(db, "c", base+1); !errors.Is(err, ErrTooManyStreams) {
		t.Fatalf("third stream after a head flush: %v", err)
	}
	if err := commitOne(db, "a", base+2); err != nil { // known streams still write
		t.Fatal(err)
	}
	db.Close()
	db = open()
	if err := commitOne(db, "c", base+3); !errors.Is(err, ErrTooManyStreams) {
		t.Fatalf("third stream after a reopen: %v", err)
	}
	if n := db.ActiveStreams(); n != 2 {
		t.Fatalf("%d active streams, want 2", n)
	}
	// An hour and a bit later, "b" is idle (and "a", written again in the
	// replayed head, too): "c" fits.
	clock = clock.Add(opts.ActiveStreamWindow + time.Minute)
	db.Maintain()
	if err := commitOne(db, "c", clock.UnixNano()); err != nil {
		t.Fatalf("after the window: %v", err)
	}
	db.Close()
}
