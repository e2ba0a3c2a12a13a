package pipeline

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// source is a content reader for the read-ahead tests: at most step bytes
// per Read, err after the content (nil: io.EOF), and a record of Close.
type source struct {
	r      io.Reader
	step   int
	err    error
	closed int
}

func (s *source) Read(p []byte) (int, error) {
	if len(p) > s.step {
		p = p[:s.step]
	}
	n, err := s.r.Read(p)
	if err == io.EOF && s.err != nil {
		err = s.err
	}
	return n, err
}

func (s *source) Close() error { s.closed++; return nil }

func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// readIn reads r to its end in reads of n bytes, as the image writers do.
func readIn(r io.Reader, n int) ([]byte, error) {
	var out []byte
	buf := make([]byte, n)
	for {
		k, err := r.Read(buf)
		out = append(out, buf[:k]...)
		if err != nil {
			return out, err
		}
	}
}

// TestReadAhead: the consumer gets the source's bytes, in order, whatever
// the sizes of its reads and of the source's, and then the source's error.
func TestReadAhead(t *testing.T) {
	boom := errors.New("disk on fire")
	for _, size := range []int{0, 1, readAheadChunk - 1, readAheadChunk, readAheadChunk + 1, 3*readAheadChunk*readAheadDepth + 4097} {
		want := randomBytes(size, uint64(size))
		for _, c := range []struct {
			step, read int
			err        error
		}{
			{1 << 30, 128 << 10, nil},
			{4096, 1, nil},
			{777, 1 << 20, nil},
			{65536, 3000, boom},
			{1 << 30, readAheadChunk, boom},
		} {
			t.Run(fmt.Sprintf("%d/%d/%d/%v", size, c.step, c.read, c.err), func(t *testing.T) {
				if size > 1<<20 && c.step < 1000 && testing.Short() {
					t.Skip("slow in -short")
				}
				src := &source{r: bytes.NewReader(want), step: c.step, err: c.err}
				ra := newReadAhead(src)
				got, err := readIn(ra, c.read)
				wantErr := c.err
				if wantErr == nil {
					wantErr = io.EOF
				}
				if !errors.Is(err, wantErr) {
					t.Errorf("error %v, want %v", err, wantErr)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("read %d bytes, differ from the %d of the source", len(got), len(want))
				}
				if err := ra.Close(); err != nil || src.closed != 1 {
					t.Errorf("Close: %v, source closed %d times", err, src.closed)
				}
			})
		}
	}
}

// TestReadAheadWriteTo: after any number of bytes taken by Read, WriteTo
// writes exactly the rest, and then returns nil at the end of the source or
// the source's error.
func TestReadAheadWriteTo(t *testing.T) {
	boom := errors.New("disk on fire")
	want := randomBytes(3*readAheadChunk*readAheadDepth+4097, 7)
	for _, first := range []int{0, 1, readAheadChunk, readAheadChunk + 5} {
		for _, srcErr := range []error{nil, boom} {
			src := &source{r: bytes.NewReader(want), step: 65536, err: srcErr}
			ra := newReadAhead(src)
			head := make([]byte, first)
			if _, err := io.ReadFull(ra, head); err != nil {
				t.Fatal(err)
			}
			var tail bytes.Buffer
			n, err := ra.WriteTo(&tail)
			if err != srcErr || n != int64(tail.Len()) {
				t.Errorf("after %d bytes read: WriteTo %d, %v; want the source's error %v", first, n, err, srcErr)
			}
			if got := append(head, tail.Bytes()...); !bytes.Equal(got, want) {
				t.Errorf("after %d bytes read: %d bytes in all, differ from the %d of the source", first, len(got), len(want))
			}
			ra.Close()
		}
	}
}

// TestReadAheadCloseEarly: a consumer that stops reading (a size mismatch,
// a cancelled build) closes the reader; the goroutine ends and the source
// is closed, with no read after Close.
func TestReadAheadCloseEarly(t *testing.T) {
	want := randomBytes(8*readAheadChunk*readAheadDepth, 7)
	src := &source{r: bytes.NewReader(want), step: 1 << 30}
	ra := newReadAhead(src)
	buf := make([]byte, 1000)
	if _, err := io.ReadFull(ra, buf); err != nil || !bytes.Equal(buf, want[:1000]) {
		t.Fatalf("first read: %v", err)
	}
	if err := ra.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ra.done:
	default:
		t.Fatal("read-ahead goroutine still running after Close")
	}
	if src.closed != 1 {
		t.Errorf("source closed %d times", src.closed)
	}
	if read := len(want) - src.r.(*bytes.Reader).Len(); read > (readAheadDepth+1)*readAheadChunk+1000 {
		t.Errorf("read %d bytes ahead of a consumer at 1000, more than the %d chunks allowed", read, readAheadDepth+1)
	}
	if _, err := ra.Read(buf); err == nil {
		t.Error("Read after Close succeeded")
	}
}

// TestBuildLargeFiles: files from the read-ahead size up are read ahead
// (two workers); their digests (signed) are those of their content, the
// image holds that content, and the image and record are those of a build
// on one core, which reads nothing ahead.
func TestBuildLargeFiles(t *testing.T) {
	p := newProject(t)
	src := filepath.Join(p.dir, "src")
	content := map[string][]byte{}
	for i, size := range []int{readAheadMin - 1, readAheadMin, 2*readAheadMin + readAheadChunk/3} {
		name := fmt.Sprintf("/usr/lib/big%d", i)
		b := randomBytes(size, uint64(i))
		copy(b[size/2:], make([]byte, size/4)) // some zero blocks
		content[name] = b
		if err := os.MkdirAll(filepath.Dir(filepath.Join(src, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m := p.manifest(t, "zstd", "src", "")
	res, err := build(t, m, 2)
	if err != nil {
		t.Fatal(err)
	}
	img1, _ := os.ReadFile(res.ImagePath)
	rec1, _ := os.ReadFile(res.RecordPath)
	seen := 0
	for _, f := range res.Record.FileList() {
		b, ok := content[f.Path]
		if !ok {
			continue
		}
		seen++
		if sum := sha256.Sum256(b); f.Digest != hex.EncodeToString(sum[:]) {
			t.Errorf("%s: digest %s, want sha256 of its content", f.Path, f.Digest)
		}
	}
	if seen != len(content) {
		t.Fatalf("record lists %d of the %d files", seen, len(content))
	}
	r := openImage(t, res.ImagePath)
	for name, b := range content {
		got, err := r.ReadFile(name[1:])
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("%s in the image: %v, equal %v", name, err, bytes.Equal(got, b))
		}
	}
	r.Close()

	procs := runtime.GOMAXPROCS(1)
	res2, err := build(t, m, 0)
	runtime.GOMAXPROCS(procs)
	if err != nil {
		t.Fatal(err)
	}
	img2, _ := os.ReadFile(res2.ImagePath)
	rec2, _ := os.ReadFile(res2.RecordPath)
	if !bytes.Equal(img1, img2) || !bytes.Equal(rec1, rec2) {
		t.Error("the image or record differs with GOMAXPROCS=1")
	}
}
