package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"golang.org/x/time/rate"
)

// tailer follows one file: it reads whole lines from the saved position,
// survives rotation by rename+create (the old file is read to its end
// first) and by copytruncate (the file shrinks: start again at 0), and ends
// when the file is gone and read to its end, or when ctx ends.
type tailer struct {
	path     string
	labels   model.LabelSet // the target's labels plus filename
	pipeline *Pipeline
	out      func(Entry) // fan-out to the clients
	pos      *Positions
	clients  int
	maxLine  int
	poll     time.Duration
	limiter  *rate.Limiter
	dropOnRL bool
	m        *agentMetrics
	logger   *slog.Logger

	readBytesC, readLinesC prometheus.Counter

	f       *os.File
	fi      os.FileInfo
	offset  int64 // of the next byte to read in f
	tracker *fileTracker
	buf     []byte
	skip    bool // inside a line already truncated
}

func (t *tailer) open(start int64) error {
	f, err := os.Open(t.path)
	if err != nil {
		return err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return errors.New("not a regular file")
	}
	if start > fi.Size() {
		// The file is shorter than the saved position: it was replaced or
		// truncated while we were away.
		start = 0
	}
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		f.Close()
		return err
	}
	t.f, t.fi, t.offset = f, fi, start
	t.tracker = newFileTracker(t.path, t.clients, start)
	t.buf = t.buf[:0]
	t.skip = false
	tr := t.tracker
	t.pos.Track(t.path, tr.position)
	t.pipeline.SetOutput(func(e Entry) {
		e.ack.t.sent(e.ack.offset)
		t.out(e)
	}, func(e Entry) {
		e.ack.t.settle(e.ack.offset)
	})
	return nil
}

var readBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// run tails until ctx ends or the file is deleted and drained.
func (t *tailer) run(ctx context.Context) {
	defer func() {
		t.pipeline.Flush(true)
		if t.f != nil {
			t.f.Close()
		}
	}()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		// Read buffers are shared: most files are idle most of the time.
		rbuf := readBufs.Get().(*[]byte)
		n := t.readAvailable(ctx, *rbuf)
		readBufs.Put(rbuf)
		if ctx.Err() != nil {
			return
		}
		if n > 0 {
			continue
		}
		// At the end of the file: flush waiting multi-line blocks, look
		// for rotation, then wait.
		t.pipeline.Flush(false)
		switch t.checkRotation() {
		case rotGone:
			t.m.filesActive.Dec()
			return
		case rotReopened:
			continue
		}
		timer.Reset(t.poll)
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
	}
}

// readAvailable reads what the file holds now and hands on whole lines.
func (t *tailer) readAvailable(ctx context.Context, rbuf []byte) int {
	total := 0
	for ctx.Err() == nil {
		n, err := t.f.Read(rbuf)
		if n > 0 {
			total += n
			t.readBytesC.Add(float64(n))
			t.consume(ctx, rbuf[:n])
		}
		if err != nil || n == 0 {
			if err != nil && !errors.Is(err, io.EOF) {
				t.m.readErrors.Inc()
				t.logger.Warn("read failed", "path", t.path, "err", err)
			}
			return total
		}
	}
	return total
}

// consume splits data into lines. A line longer than maxLine is cut at
// maxLine, counted, and the rest of it skipped.
func (t *tailer) consume(ctx context.Context, data []byte) {
	for len(data) > 0 {
		i := indexNL(data)
		if i < 0 {
			if t.skip {
				t.offset += int64(len(data))
				return
			}
			room := t.maxLine - len(t.buf)
			if len(data) > room {
				t.buf = append(t.buf, data[:room]...)
				t.offset += int64(len(data))
				t.emit(ctx, true)
				t.skip = true
				return
			}
			t.buf = append(t.buf, data...)
			t.offset += int64(len(data))
			return
		}
		chunk := data[:i]
		data = data[i+1:]
		t.offset += int64(i + 1)
		if t.skip {
			t.skip = false
			// the truncated line was already handed on; settle its tail
			t.tracker.settle(t.offset)
			continue
		}
		truncated := false
		if len(t.buf)+len(chunk) > t.maxLine {
			chunk = chunk[:max(0, t.maxLine-len(t.buf))]
			truncated = true
		}
		t.buf = append(t.buf, chunk...)
		t.emit(ctx, truncated)
	}
}

func indexNL(b []byte) int {
	for i, c := range b {
		if c == '\n' {
			return i
		}
	}
	return -1
}

func (t *tailer) emit(ctx context.Context, truncated bool) {
	line := t.buf
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if truncated {
		t.m.truncated.Inc()
	}
	t.buf = t.buf[:0]
	if t.limiter != nil {
		if t.dropOnRL {
			if !t.limiter.Allow() {
				t.m.dropped.WithLabelValues("readline_rate_limit").Inc()
				t.tracker.settle(t.offset)
				return
			}
		} else if err := t.limiter.Wait(ctx); err != nil {
			return
		}
	}
	t.readLinesC.Inc()
	text := string(line)
	if !utf8.ValidString(text) {
		// Loki stores text: replace invalid bytes rather than lose the line.
		t.m.invalidUTF8.Inc()
		text = strings.ToValidUTF8(text, "\uFFFD")
	}
	t.pipeline.Process(Entry{
		Labels: t.labels,
		shared: true,
		Time:   time.Now(),
		Line:   text,
		ack:    &ackRef{t: t.tracker, offset: t.offset},
	})
}

type rotation int

const (
	rotNone rotation = iota
	rotReopened
	rotGone
)

// checkRotation compares the open file with what the path names now.
func (t *tailer) checkRotation() rotation {
	fi, err := os.Stat(t.path)
	if err != nil {
		if os.IsNotExist(err) {
			// Deleted (or renamed away with nothing new yet): what was
			// in it has been read. A file created at this path later is
			// a new file: forget the position, or it would start there.
			t.pos.Remove(t.path)
			return rotGone
		}
		return rotNone
	}
	if !os.SameFile(fi, t.fi) {
		// Renamed and recreated: the old file was read to its end.
		t.f.Close()
		t.pipeline.Flush(true)
		t.m.rotations.WithLabelValues("rename").Inc()
		if err := t.open(0); err != nil {
			t.logger.Warn("reopen after rotation failed", "path", t.path, "err", err)
			return rotGone
		}
		return rotReopened
	}
	if fi.Size() < t.offset {
		// copytruncate: the file was emptied and is written again.
		t.pipeline.Flush(true)
		t.m.rotations.WithLabelValues("truncate").Inc()
		if _, err := t.f.Seek(0, io.SeekStart); err != nil {
			return rotGone
		}
		t.offset = 0
		t.buf = t.buf[:0]
		t.skip = false
		t.tracker = newFileTracker(t.path, t.clients, 0)
		t.pos.Track(t.path, t.tracker.position)
		return rotReopened
	}
	t.fi = fi
	return rotNone
}
