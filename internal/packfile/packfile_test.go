package packfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

var errBad = errors.New("bad pack")

// TestOpen: a regular file reaches the parser with its size; a directory
// or a FIFO is refused as bad, a missing file is fs.ErrNotExist, and a parser's error
// comes back.
func TestOpen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "p")
	os.WriteFile(path, []byte("12345"), 0o644)
	size := func(_ string, f *os.File, n int64) (int64, error) { return n, nil }
	if n, err := Open(path, errBad, size); err != nil || n != 5 {
		t.Fatalf("%d %v", n, err)
	}
	if _, err := Open(dir, errBad, size); !errors.Is(err, errBad) {
		t.Fatalf("a directory: %v", err)
	}
	// A FIFO: refused at once, not waited on for a writer that never
	// comes (before O_NONBLOCK the open hung: the test ran into -timeout).
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(fifo, errBad, size); !errors.Is(err, errBad) {
		t.Fatalf("a FIFO: %v", err)
	}
	if _, err := Open(filepath.Join(dir, "none"), errBad, size); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a missing file: %v", err)
	}
	var kept *os.File
	failing := func(_ string, f *os.File, _ int64) (int, error) { kept = f; return 0, errBad }
	if _, err := Open(path, errBad, failing); !errors.Is(err, errBad) {
		t.Fatalf("the parser's error: %v", err)
	}
	if err := kept.Close(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("the file of a failed parse was left open: %v", err)
	}
	if IndexCRC([]byte("a"), []byte("bc")) != IndexCRC([]byte("ab"), []byte("c")) {
		t.Fatal("IndexCRC is not the CRC of the concatenation")
	}
}

// TestNewName: a new pack's name is in dir, ends with ext, is a pack's
// name by IsName, and sorts after one made before it; a temporary file's
// name (a leading dot) or another ending is not a pack's.
func TestNewName(t *testing.T) {
	a := NewName("/c", ".bpk")
	time.Sleep(time.Microsecond) // the names' times differ
	b := NewName("/c", ".bpk")
	if filepath.Dir(a) != "/c" || !IsName(filepath.Base(a), ".bpk") || a == b || filepath.Base(a) > filepath.Base(b) {
		t.Fatalf("NewName: %q then %q", a, b)
	}
	for _, n := range []string{".tmp-1.bpk", filepath.Base(a) + ".x", "x.pack"} {
		if IsName(n, ".bpk") {
			t.Errorf("IsName(%q) = true", n)
		}
	}
}
