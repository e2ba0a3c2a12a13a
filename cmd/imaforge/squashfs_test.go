package main

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/imaforge/imaforge/squashfs"
)

// TestPackOptions: with zstd, pack compresses data and fragment blocks in
// one pool of one compressor per worker, never more zstd contexts than
// workers (a pool of each had four zstd-15 contexts taking turns on two
// CPUs; the squashfs package's TestFragmentCompressors shows one pool never
// compresses more blocks at once than its compressors); the other codecs
// keep a data and a fragment block compressor per worker.
func TestPackOptions(t *testing.T) {
	for _, comp := range []squashfs.Compression{squashfs.Zstd, squashfs.Gzip, squashfs.XZ, squashfs.LZ4} {
		for _, workers := range []int{1, 2, 8} {
			o := packOptions(comp, 9, 128<<10, workers)
			frags := workers
			if comp == squashfs.Zstd {
				frags = 0
			}
			if o.Workers != workers || o.Compressors != workers || o.FragmentCompressors != frags {
				t.Errorf("%v, %d workers: %d workers, %d compressors, %d fragment compressors; want %d, %d and %d",
					comp, workers, o.Workers, o.Compressors, o.FragmentCompressors, workers, workers, frags)
			}
			if o.Compression != comp || o.Level != 9 || o.BlockSize != 128<<10 {
				t.Errorf("%v, %d workers: options %+v lost the compressor, level or block size", comp, workers, o)
			}
			// four fragment blocks per worker may wait for compression
			if o.FragmentsAhead != 4*workers+2 {
				t.Errorf("%v, %d workers: fragments ahead %d, want %d", comp, workers, o.FragmentsAhead, 4*workers+2)
			}
		}
	}
}

// TestPackHonoursUmask: pack creates its image with mode 0644 less what the
// umask clears, as mksquashfs does (under umask 077 the image is 0600, not
// readable by others).
func TestPackHonoursUmask(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "a"), []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, mask := range []int{0o077, 0o027, 0o022, 0o002} {
		out := filepath.Join(dir, fmt.Sprintf("%03o.sqsh", mask))
		old := unix.Umask(mask)
		_, stderr, code := runCLI(t, "squashfs", "pack", "-q", "--comp", "gzip", src, out)
		unix.Umask(old)
		if code != 0 {
			t.Fatalf("pack under umask %03o: exit %d: %s", mask, code, stderr)
		}
		st, err := os.Stat(out)
		if err != nil {
			t.Fatal(err)
		}
		if want := os.FileMode(0o644 &^ mask); st.Mode().Perm() != want {
			t.Errorf("pack under umask %03o: image mode %v, want %v", mask, st.Mode().Perm(), want)
		}
	}
}
