package squashfs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// exerciseReader does everything a user of the reader can do with an image
// (walk, look up every path through the directory index, stat, read links
// and xattrs, read files by Read, ReadAt and the parallel WriteTo), with
// bounds on the work so that a fuzzed image with a huge sparse file or a
// huge tree finishes quickly. It reports reader errors that are not the
// documented kinds through t.
func exerciseReader(t testing.TB, r *Reader) {
	const maxEntries, maxRead = 1000, 256 << 10
	budget := 8 << 20 // bytes of file content over the whole image
	n := 0
	r.Walk(".", func(p string, fi fs.FileInfo, err error) error {
		if n++; n > maxEntries || budget <= 0 {
			return fs.SkipAll
		}
		checkErr(t, err)
		if err != nil || fi == nil {
			return nil
		}
		_, err = r.Lstat(p)
		checkErr(t, err)
		_, err = r.Xattrs(p)
		checkErr(t, err)
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			_, err = r.ReadLink(p)
			checkErr(t, err)
			if f, err := r.Open(p); err == nil { // follows the link
				f.Close()
			}
		case fi.IsDir():
			_, err = r.ReadDir(p)
			checkErr(t, err)
		case fi.Mode().IsRegular():
			f, err := r.Open(p)
			checkErr(t, err)
			if err != nil {
				return nil
			}
			defer f.Close()
			budget -= 2*maxRead + 400
			_, err = io.Copy(io.Discard, io.LimitReader(f, maxRead))
			checkErr(t, err)
			file := f.(*File)
			buf := make([]byte, 100)
			for _, off := range []int64{0, file.Size() / 3, file.Size() - 50, file.Size() + 10} {
				_, err := file.ReadAt(buf, off)
				if err != io.EOF {
					checkErr(t, err)
				}
			}
			file.Seek(0, io.SeekStart)
			_, err = file.WriteTo(&cappedWriter{left: maxRead})
			if err != errCapped {
				checkErr(t, err)
			}
		}
		return nil
	})
}

var errCapped = errors.New("capped")

type cappedWriter struct{ left int }

func (w *cappedWriter) Write(p []byte) (int, error) {
	if len(p) > w.left {
		n := w.left
		w.left = 0
		return n, errCapped
	}
	w.left -= len(p)
	return len(p), nil
}

// checkErr accepts the errors a hostile image may cause: malformed data
// (ErrFormat), an unsupported compressor, and the path errors of a file
// system (missing, not a directory, link loops, invalid names).
func checkErr(t testing.TB, err error) {
	t.Helper()
	if err == nil || errors.Is(err, ErrFormat) || errors.Is(err, ErrUnsupportedCompression) ||
		errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrInvalid) ||
		errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.ELOOP) || errors.Is(err, syscall.EISDIR) {
		return
	}
	t.Errorf("unexpected kind of error: %v", err)
}

func fuzzSeeds(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join(fixtureDir, "*.sqsh"))
	more, _ := filepath.Glob(filepath.Join(fixtureDir, "*", "*.sqsh")) // the writer's samples, peers' repros
	for _, s := range append(seeds, more...) {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzReader opens arbitrary bytes as an image and uses everything the
// reader offers: a hostile image must give errors, never a panic, a hang or
// an allocation out of proportion to its size. Seeds: every image in
// testdata/squashfs (mksquashfs fixtures, this package's writer samples);
// crashers found are kept in testdata/fuzz/FuzzReader.
func FuzzReader(f *testing.F) {
	fuzzSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		// A hang is a failure too: past a minute, crash so that the
		// fuzzer keeps the input.
		watchdog := time.AfterFunc(time.Minute, func() {
			panic(fmt.Sprintf("FuzzReader: an input of %d bytes ran for a minute", len(data)))
		})
		defer watchdog.Stop()
		r, err := NewReader(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			checkErr(t, err)
			return
		}
		exerciseReader(t, r)
	})
}
