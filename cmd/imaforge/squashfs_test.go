package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSquashfsPack: the command packs a tree reproducibly (same bytes from a
// copy made with other mtimes), never packs its own output, and reports bad
// flags as usage errors.
func TestSquashfsPack(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	for i, name := range []string{"a", "sub/b", "sub/c"} {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, bytes.Repeat([]byte{byte('x' + i)}, 1000*i), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out1, out2 := filepath.Join(dir, "1.sqsh"), filepath.Join(src, "inside.sqsh")
	if code, _, stderr := run(t, "squashfs", "pack", "--comp", "gzip", "--epoch", "7", "--all-root", src, out1); code != 0 {
		t.Fatalf("pack: exit %d: %s", code, stderr)
	}
	// the output inside DIR is left out of the image, so both are equal
	if code, stdout, stderr := run(t, "squashfs", "pack", "--comp", "gzip", "--epoch", "7", "--all-root", src, out2); code != 0 || !strings.Contains(stdout, "5 inodes") {
		t.Fatalf("pack into DIR: exit %d: %s %s", code, stdout, stderr)
	}
	a, _ := os.ReadFile(out1)
	b, _ := os.ReadFile(out2)
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Errorf("image written inside DIR differs (%d vs %d bytes)", len(a), len(b))
	}
	for _, args := range [][]string{
		{"squashfs", "pack", src},
		{"squashfs", "pack", "--comp", "lzo", src, out1},
		{"squashfs", "pack", "--block-size", "3K", src, out1},
		{"squashfs", "pack", "--comp", "xz", "--level", "3", src, out1},
		{"squashfs", "pack", "--epoch", "soon", src, out1},
	} {
		if code, _, _ := run(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}
