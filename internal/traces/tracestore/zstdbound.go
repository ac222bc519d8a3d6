package tracestore

import (
	"bytes"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
)

// trustedFrameSize is the content size a zstd frame of a block's index or
// columns may declare and be decoded into a buffer of that size at once; a
// larger claim is decoded as a stream, growing with what the frame really
// holds, so a corrupt header cannot make a reader allocate what it claims
// (FuzzColumnsFile: a 9 KB section declaring 816 MB, allocated per group
// read). Only the first frame's claim is checked.
const trustedFrameSize = 64 << 20

// maxFrameSize bounds a streamed frame, as the store's decoder does.
const maxFrameSize = 1 << 30

// decodeFrames appends the decoded zstd frames src to dst.
func decodeFrames(dec *zstd.Decoder, src, dst []byte) ([]byte, error) {
	var h zstd.Header
	if h.Decode(src) != nil || !h.HasFCS || h.FrameContentSize <= trustedFrameSize {
		return dec.DecodeAll(src, dst)
	}
	r, err := zstd.NewReader(bytes.NewReader(src), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxFrameSize))
	if err != nil {
		return dst, err
	}
	defer r.Close()
	buf := bytes.NewBuffer(dst)
	n, err := io.Copy(buf, io.LimitReader(r, maxFrameSize+1))
	if err != nil {
		return dst, err
	}
	if n > maxFrameSize {
		return dst, fmt.Errorf("zstd frames over %d bytes", maxFrameSize)
	}
	return buf.Bytes(), nil
}
