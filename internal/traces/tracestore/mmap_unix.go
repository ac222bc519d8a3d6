//go:build unix

package tracestore

import (
	"os"
	"syscall"
)

// mapFile maps size bytes of f read-only. The mapping stays valid after f
// is closed; unmapFile releases it.
func mapFile(f *os.File, size int64) ([]byte, error) {
	if size == 0 {
		return nil, nil
	}
	return syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
}

func unmapFile(b []byte) error {
	if b == nil {
		return nil
	}
	return syscall.Munmap(b)
}
