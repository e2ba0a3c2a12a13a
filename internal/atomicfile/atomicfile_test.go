package atomicfile

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

func TestCommitAndAbort(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "out.bin")
	if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}

	// An aborted write keeps the old content and leaves no temporary file.
	f, err := Create(p, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("half"))
	f.Abort()
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Fatalf("after Abort: %q, want old content", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("after Abort: %d entries in dir, want 1", len(ents))
	}

	if err := WriteFile(p, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	st, _ := os.Stat(p)
	if string(b) != "new" || st.Mode().Perm() != 0o600 {
		t.Fatalf("after WriteFile: %q %v", b, st.Mode())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("after Commit: %d entries in dir, want 1", len(ents))
	}
}

func TestCreateInMissingDir(t *testing.T) {
	_, err := Create(filepath.Join(t.TempDir(), "no", "such", "x"), 0o644)
	if err == nil {
		t.Fatal("Create in a missing directory succeeded")
	}
}

// TestUnnamedUntilCommit: while a file is being written nothing is visible
// in the directory (O_TMPFILE), so a SIGKILL leaves nothing behind; Commit
// makes it appear under its name only.
func TestUnnamedUntilCommit(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "image")
	f, err := Create(p, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if !f.unnamed {
		t.Skip("no O_TMPFILE on this file system")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("while writing: %v in the directory", ents)
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := SyncDir(dir); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	st, err := os.Stat(p)
	if len(ents) != 1 || err != nil || st.Size() != 1<<20 || st.Mode().Perm() != 0o640 {
		t.Fatalf("after Commit: %v, %v, %v", ents, st, err)
	}
	f.Abort() // no effect after Commit
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
}

// TestCreateHonoursUmask: a committed file has perm less what the umask
// clears, as open(2) would give it, whether the mask is read from
// /proc/self/status or, without it, by setting the mask and back (which
// leaves the mask as it was).
func TestCreateHonoursUmask(t *testing.T) {
	for _, mask := range []int{0o022, 0o077, 0o002, 0o027, 0} {
		p := filepath.Join(t.TempDir(), "out")
		old := unix.Umask(mask)
		err := WriteFile(p, []byte("x"), 0o644)
		noProc := umask(filepath.Join(t.TempDir(), "no-status"))
		after := unix.Umask(old)
		if err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		want := fs.FileMode(0o644 &^ mask)
		if st.Mode().Perm() != want || noProc != fs.FileMode(mask) || after != mask {
			t.Errorf("umask %03o: file %03o, mask without /proc %03o, mask after %03o; want %03o, %03o, %03o",
				mask, st.Mode().Perm(), noProc, after, want, mask, mask)
		}
	}
}
