package pipeline

import (
	"crypto/sha256"
	"fmt"
	"io"
	"math"
	"os"
)

// The image's SHA-256 (the record's image.sha256) can only be computed once
// the image is complete: a SquashFS image begins with its superblock, which
// is written last. It is therefore a pass over the whole image at the end of
// the build (0.45 s of a 2 s build of 1.3 GB of large files). The copies out
// of the page cache (pread) run on a goroutine of their own, a few chunks
// ahead of the hash (readAhead, as for large input files), so that only the
// SHA-256 itself is left on the build's critical path; the other core copies
// (and Build's concurrent fsync writes the pages out).

// sha256Image returns the SHA-256 and the size of the whole of f, read from
// offset 0 (f's offset is not used).
func sha256Image(f io.ReaderAt) (sum [sha256.Size]byte, size int64, err error) {
	r := newReadAhead(io.NopCloser(io.NewSectionReader(f, 0, math.MaxInt64)))
	defer r.Close()
	h := sha256.New()
	if size, err = r.WriteTo(h); err != nil {
		return sum, size, fmt.Errorf("read at offset %d: %w", size, err)
	}
	h.Sum(sum[:0])
	return sum, size, nil
}

// imageHash is what hashImage found: the image's SHA-256 and the bytes it
// covers.
type imageHash struct {
	sum  [sha256.Size]byte
	size int64
	err  error
}

// hashImage hashes f (sha256Image) on a goroutine of its own; the channel
// gives the result once.
func hashImage(f io.ReaderAt) <-chan imageHash {
	ch := make(chan imageHash, 1)
	go func() {
		var h imageHash
		h.sum, h.size, h.err = sha256Image(f)
		ch <- h
	}()
	return ch
}

// check fails unless the hash covers the size bytes of the image out that
// the record names.
func (h imageHash) check(out string, size int64) error {
	if h.err != nil {
		return fmt.Errorf("hash %s: %w", out, h.err)
	}
	if h.size != size {
		return fmt.Errorf("hash %s: %d bytes hashed, the image has %d", out, h.size, size)
	}
	return nil
}

// fileSize is f's size (fstat).
func fileSize(f *os.File) (int64, error) {
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}
