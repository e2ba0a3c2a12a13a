package squashfs

import (
	"fmt"
	"io"

	"github.com/imaforge/imaforge/squashfs/compinfo"
)

// NewZstdStream returns a writer that compresses everything written to it
// into one zstd frame (RFC 8878) with the content checksum and without the
// content size, at level (the compressor table's zstd range, 1..22), with
// the library EncoderOf(Zstd) names: libzstd's ZSTD_compressStream2 in the
// cgo build. It is the compressor of imaforge's tar.zst images. Close ends
// the frame; it does not close w.
//
// threads > 0 compresses on that many threads of libzstd's own, beside the
// writer's; libzstd then cuts the input into jobs whose size depends only on
// the level, so the bytes are the same for any threads >= 1 (not the same as
// with threads = 0) and independent of how the input is split into writes.
//
// Without cgo it returns ErrNoEncoder: klauspost/compress's zstd would give
// other bytes (docs/reproducibility.md).
func NewZstdStream(w io.Writer, level, threads int) (io.WriteCloser, error) {
	ci, _ := compinfo.Of(Zstd)
	if err := ci.CheckLevel(level); err != nil {
		return nil, fmt.Errorf("squashfs: %w", err)
	}
	return newZstdStream(w, level, max(threads, 0))
}
