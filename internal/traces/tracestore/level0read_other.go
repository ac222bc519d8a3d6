//go:build !linux

package tracestore

// readDirect is Linux's preadv path (level0read_linux.go); elsewhere the
// cut reads through its window.
func (cr *cutReader) readDirect(*headFile, []cutSlot, int64, int64) (bool, error) {
	return false, nil
}

var cutIovMax = 1024 // read by TestCutReader only

type iovecTable struct{}

// allocBatch is the cut's batch buffer; only Linux maps it outside the heap.
func allocBatch(n int) []byte { return make([]byte, 0, n) }

func freeBatch([]byte) {}
