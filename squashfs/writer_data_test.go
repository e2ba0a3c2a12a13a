package squashfs

import (
	"context"
	"fmt"
	"io/fs"
	"math/rand"
	"testing"
)

// TestFragmentCompressors: with more compressors than workers (squashfs
// pack runs two per worker) fragment blocks get a pool of one compressor
// per worker, as mksquashfs runs one fragment compressor thread per CPU, so
// a tree of small files (all fragment blocks) never has more than Workers
// blocks compressing at once: the codec made no more encoders than that.
// It had Compressors (four zstd-15 contexts taking turns on two CPUs). The
// image is the one a single shared pool writes.
func TestFragmentCompressors(t *testing.T) {
	for _, tc := range []struct{ workers, compressors, want int }{
		{1, 1, 1}, {1, 2, 1}, {2, 4, 2}, {2, 2, 2}, {4, 2, 2}, {3, 6, 3},
	} {
		if got := fragmentCompressors(tc.workers, tc.compressors); got != tc.want {
			t.Errorf("fragmentCompressors(%d, %d) = %d, want %d", tc.workers, tc.compressors, got, tc.want)
		}
	}

	rnd := rand.New(rand.NewSource(9))
	var es []Entry
	for i := range 600 {
		data := make([]byte, 1000+rnd.Intn(2500))
		for j := range data {
			data[j] = "abcdefgh \n"[rnd.Intn(10)] // compressible, no two alike
		}
		es = append(es, Entry{Path: fmt.Sprintf("/d%d/f%d", i%7, i), Mode: 0o644, Size: int64(len(data)), Open: opener(data)})
	}
	for i := range 7 {
		es = append(es, Entry{Path: fmt.Sprintf("/d%d", i), Mode: fs.ModeDir | 0o755})
	}
	opts := Options{Compression: Zstd, Level: 19, BlockSize: 4096, Workers: 2, Compressors: 2}
	want := sum(build(t, es, opts))
	for _, compressors := range []int{4, 6} {
		o := opts
		o.Compressors = compressors
		var m memFile
		w, err := NewWriter(&m, o)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			must(t, w.Add(e))
		}
		must(t, w.WriteData(context.Background()))
		if _, err := w.Finish(); err != nil {
			t.Fatal(err)
		}
		if n := len(w.codec.free); n > o.Workers {
			t.Errorf("%d compressors: %d fragment blocks compressed at once, want at most %d (Workers)", compressors, n, o.Workers)
		}
		if got := sum(m.b); got != want {
			t.Errorf("%d compressors: image %s, want %s (2 compressors)", compressors, got, want)
		}
	}
}
