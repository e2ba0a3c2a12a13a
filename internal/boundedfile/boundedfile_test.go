package boundedfile

import (
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestReadFile(t *testing.T) {
	dir := t.TempDir()
	ok := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(ok, []byte("key"), 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, 2000), 0o600); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadFile(ok, 1000); err != nil || string(b) != "key" {
		t.Fatalf("regular file: %q, %v", b, err)
	}
	// The limit itself, an empty file, and a file whose fstat size (0)
	// is not its length (procfs): read to the end, growing the buffer.
	if b, err := ReadFile(big, 2000); err != nil || len(b) != 2000 {
		t.Fatalf("a file of exactly the limit: %d bytes, %v", len(b), err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadFile(empty, 1000); err != nil || len(b) != 0 {
		t.Fatalf("empty file: %q, %v", b, err)
	}
	want, err := os.ReadFile("/proc/self/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := ReadFile("/proc/self/cmdline", 1<<20); err != nil || string(b) != string(want) {
		t.Fatalf("/proc/self/cmdline: %q, %v; want %q", b, err, want)
	}
	if _, err := ReadFile("/proc/self/status", 100); !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "more than 100 bytes") {
		t.Errorf("/proc/self/status (size 0, longer than the limit): %v, want %v", err, ErrTooLarge)
	}
	if _, err := ReadFile(filepath.Join(dir, "missing"), 1000); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing file: %v, want os.ErrNotExist", err)
	}
	for _, tt := range []struct {
		path string
		want error
		msg  string
	}{
		{big, ErrTooLarge, "2000 bytes, at most 1000"},
		{"/dev/null", ErrNotRegular, "a character device"},
		{"/dev/zero", ErrNotRegular, "a character device"}, // grew the process to 19.9 GB
		{fifo, ErrNotRegular, "a FIFO"},                    // hung forever
		{dir, ErrNotRegular, "a directory"},
	} {
		done := make(chan error, 1)
		go func() { _, err := ReadFile(tt.path, 1000); done <- err }()
		select {
		case err := <-done:
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.path) || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("%s: %v, want %v naming it (%s)", tt.path, err, tt.want, tt.msg)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: ReadFile hangs", tt.path)
		}
	}
}

// TestRefusedBeforeOpen: a path that stat shows is not a regular file is
// refused without being opened. A socket tells the two apart: open(2) on
// one fails with ENXIO, so a check made only after the open would report
// "no such device or address" instead of what the path is; a device's open
// can act (a watchdog's starts its timer).
func TestRefusedBeforeOpen(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := ReadFile(sock, KeyLimit); !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), "a socket") {
		t.Fatalf("ReadFile of a socket: %v", err)
	}
	if f, _, err := Open(sock); !errors.Is(err, ErrNotRegular) {
		if f != nil {
			f.Close()
		}
		t.Fatalf("Open of a socket: %v", err)
	}
}

// TestOpen: Open gives the regular file with its size, readable from its
// start; a missing file is fs.ErrNotExist.
func TestOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pack")
	if err := os.WriteFile(path, []byte("twelve bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, size, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil || size != 12 || string(b) != "twelve bytes" {
		t.Fatalf("size %d, read %q, %v", size, b, err)
	}
	if _, _, err := Open(path + ".none"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a missing file: %v", err)
	}
}
