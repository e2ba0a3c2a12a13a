package pipeline

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
)

// The image's SHA-256 (the record's image.sha256) can only be computed once
// the image is complete: a SquashFS image begins with its superblock, which
// is written last. It is therefore a pass over the whole image at the end of
// the build (0.45 s of a 2 s build of 1.3 GB of large files). Here the copies
// out of the page cache (pread) run on a goroutine of their own, a few
// pieces ahead of the hash, so that only the SHA-256 itself is left on the
// build's critical path; the other core copies (and Build's concurrent
// fsync writes the pages out).
const (
	imageHashPiece = 1 << 20
	imageHashAhead = 3 // pieces read ahead of the one being hashed
)

// imagePiece is one piece read: its bytes, or the error that ended the reads
// (io.EOF at the end).
type imagePiece struct {
	b   []byte
	err error
}

// sha256Image returns the SHA-256 and the size of the whole of f, read from
// offset 0 (f's offset is not used).
func sha256Image(f io.ReaderAt) (sum [sha256.Size]byte, size int64, err error) {
	full := make(chan imagePiece, imageHashAhead)
	free := make(chan []byte, imageHashAhead+1)
	for range imageHashAhead + 1 {
		free <- make([]byte, imageHashPiece)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(full)
		var off int64
		for {
			var b []byte
			select {
			case b = <-free:
			case <-stop:
				return
			}
			n, err := f.ReadAt(b, off)
			off += int64(n)
			if n > 0 {
				full <- imagePiece{b: b[:n]}
			}
			if err != nil {
				full <- imagePiece{err: err}
				return
			}
		}
	}()
	defer func() {
		close(stop)
		for range full { // unblock a send, then wait for the end
		}
		<-done
	}()
	h := sha256.New()
	for p := range full {
		if p.err != nil {
			if !errors.Is(p.err, io.EOF) {
				return sum, size, fmt.Errorf("read at offset %d: %w", size, p.err)
			}
			break
		}
		h.Write(p.b)
		size += int64(len(p.b))
		free <- p.b[:cap(p.b)]
	}
	h.Sum(sum[:0])
	return sum, size, nil
}
