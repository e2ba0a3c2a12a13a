package packfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

var errBad = errors.New("bad pack")

// TestOpen: a regular file reaches the parser with its size; a directory
// is refused as bad, a missing file is fs.ErrNotExist, and a parser's error
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
