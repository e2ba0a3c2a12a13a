package squashfs

import (
	"context"
	"fmt"
	"math/rand"
	"testing"
)

// BenchmarkWriter packs an in-memory tree (200 files of 1-32 KiB, half
// random, half text-like, plus 2 files of 1 MiB) at each compressor's default
// level; b.SetBytes reports the content throughput. scripts/bench-squashfs.sh
// compares the whole command with mksquashfs on real trees.
func BenchmarkWriter(b *testing.B) {
	rnd := rand.New(rand.NewSource(5))
	var es []Entry
	var total int64
	words := []string{"integrity ", "measurement ", "architecture ", "squashfs ", "kernel ", "signature "}
	for i := range 202 {
		n := 1024 + rnd.Intn(31*1024)
		if i >= 200 {
			n = 1 << 20
		}
		data := make([]byte, n)
		if i%2 == 0 {
			rnd.Read(data)
		} else {
			for j := 0; j < n; {
				j += copy(data[j:], words[rnd.Intn(len(words))])
			}
		}
		total += int64(n)
		es = append(es, Entry{Path: fmt.Sprintf("/d%d/f%d", i%10, i), Mode: 0o644, Size: int64(n), Open: opener(data)})
	}
	for _, c := range []struct {
		comp  Compression
		level int
	}{{Zstd, 0}, {Zstd, 3}, {Gzip, 0}, {XZ, 0}, {LZ4, 0}} {
		b.Run(fmt.Sprintf("%v-%d", c.comp, c.level), func(b *testing.B) {
			b.SetBytes(total)
			for b.Loop() {
				var m memFile
				w, err := NewWriter(&m, Options{Compression: c.comp, Level: c.level})
				if err != nil {
					b.Fatal(err)
				}
				for _, e := range es {
					if err := w.Add(e); err != nil {
						b.Fatal(err)
					}
				}
				if err := w.WriteData(context.Background()); err != nil {
					b.Fatal(err)
				}
				st, err := w.Finish()
				if err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(float64(st.BytesUsed)/float64(total), "ratio")
			}
		})
	}
}
