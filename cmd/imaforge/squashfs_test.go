package main

import (
	"testing"

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
