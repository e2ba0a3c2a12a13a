package boundedfile

import (
	"errors"
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
	for _, tt := range []struct {
		path string
		want error
		msg  string
	}{
		{big, ErrTooLarge, "2000 bytes, at most 1000"},
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
