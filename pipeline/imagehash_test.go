package pipeline

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// TestSHA256Image: the image hash read ahead on its own goroutine is the
// SHA-256 and size of the whole file, at chunk boundaries and between them.
func TestSHA256Image(t *testing.T) {
	for _, n := range []int{0, 1, 63, readAheadChunk - 1, readAheadChunk, readAheadChunk + 1, 7*readAheadChunk + 4096 + 3} {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*7 + i>>11)
		}
		sum, size, err := sha256Image(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%d bytes: %v", n, err)
		}
		if want := sha256.Sum256(b); sum != want || size != int64(n) {
			t.Errorf("%d bytes: %x, size %d; want %x", n, sum, size, want)
		}
	}
}

// failingAt reads like r up to off, then fails.
type failingAt struct {
	r   io.ReaderAt
	off int64
}

var errDisk = errors.New("input/output error")

func (f failingAt) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) <= f.off {
		return f.r.ReadAt(p, off)
	}
	n, _ := f.r.ReadAt(p[:max(f.off-off, 0)], off)
	return n, errDisk
}

// TestSHA256ImageReadError: a read error is the result (naming the offset,
// wrapping the cause), never a digest of what was read before it; the
// reading goroutine ends also when the hash stops early.
func TestSHA256ImageReadError(t *testing.T) {
	b := make([]byte, 9*readAheadChunk)
	for _, at := range []int64{0, 5, readAheadChunk, 6*readAheadChunk + 17} {
		_, _, err := sha256Image(failingAt{bytes.NewReader(b), at})
		if !errors.Is(err, errDisk) {
			t.Fatalf("error at %d: got %v", at, err)
		}
		if want := fmt.Sprintf("read at offset %d:", at); !strings.Contains(err.Error(), want) {
			t.Errorf("error at %d: %q does not name the offset", at, err)
		}
	}
}
