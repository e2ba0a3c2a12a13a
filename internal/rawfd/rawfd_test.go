package rawfd

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestReader: the bare-descriptor reader (squashfs pack opens files with it) reads
// the whole content and then io.EOF, and every failure (a missing file, a
// directory, a read or close after Close) is an *fs.PathError naming the
// path, with the cause kept.
func TestReader(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	want := bytes.Repeat([]byte("integrity measurement\n"), 1000)
	if err := os.WriteFile(p, want, 0o644); err != nil {
		t.Fatal(err)
	}

	r, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, %v; want %d bytes", len(got), err, len(want))
	}
	if n, err := r.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("Read at the end: %d, %v; want 0, io.EOF", n, err)
	}
	if n, err := r.Read(nil); n != 0 || err != nil {
		t.Fatalf("empty Read: %d, %v", n, err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	checkPathErr := func(what string, err error, op string, cause error) {
		t.Helper()
		var pe *fs.PathError
		if !errors.As(err, &pe) || pe.Op != op || !errors.Is(err, cause) || !strings.Contains(err.Error(), p) && !strings.Contains(err.Error(), dir) {
			t.Errorf("%s: %v; want a %s error naming the path, caused by %v", what, err, op, cause)
		}
	}
	_, err = r.Read(make([]byte, 1))
	checkPathErr("Read after Close", err, "read", fs.ErrClosed)
	checkPathErr("second Close", r.Close(), "close", fs.ErrClosed)

	_, err = Open(filepath.Join(dir, "missing"))
	checkPathErr("open of a missing file", err, "open", fs.ErrNotExist)

	d, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	_, err = d.Read(make([]byte, 1))
	checkPathErr("Read of a directory", err, "read", syscall.EISDIR)
}
