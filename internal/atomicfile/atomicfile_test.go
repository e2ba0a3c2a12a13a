package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
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
