package squashfs

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/imaforge/imaforge/internal/testenv"
)

// benchTree writes files of text-like content (compresses about 3:1, as
// source trees do): 48 files of 1 MiB and one of 32 MiB. It returns their
// contents for the hashing baseline.
func benchTree(b *testing.B, dir string) [][]byte {
	words := []string{"squashfs", "integrity", "measurement", "kernel", "func", "return", "err", "nil",
		"the", "image", "block", "fragment", "inode", "xattr", "signature", "digest", "{", "}", "\n\t", "if"}
	rnd := rand.New(rand.NewPCG(7, 7))
	gen := func(n int) []byte {
		var buf bytes.Buffer
		buf.Grow(n + 16)
		for buf.Len() < n {
			buf.WriteString(words[rnd.IntN(len(words))])
			buf.WriteByte(' ')
			if rnd.IntN(8) == 0 {
				fmt.Fprintf(&buf, "%x", rnd.Uint64())
			}
		}
		return buf.Bytes()[:n]
	}
	var all [][]byte
	for i := range 48 {
		d := gen(1 << 20)
		all = append(all, d)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d", i)), d, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	d := gen(32 << 20)
	all = append(all, d)
	if err := os.WriteFile(filepath.Join(dir, "big"), d, 0o644); err != nil {
		b.Fatal(err)
	}
	return all
}

// hashImage hashes every regular file of r with sha256, workers files at a
// time; each file is read with io.Copy, so through File.WriteTo, which
// itself decompresses blocks on all cores.
func hashImage(b *testing.B, r *Reader, workers int) int64 {
	var paths []string
	r.Walk(".", func(p string, fi fs.FileInfo, err error) error {
		if err != nil {
			b.Fatal(err)
		}
		if fi.Mode().IsRegular() {
			paths = append(paths, p)
		}
		return nil
	})
	var total int64
	var mu sync.Mutex
	ch := make(chan string)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for p := range ch {
				f, err := r.Open(p)
				if err != nil {
					b.Error(err)
					continue
				}
				h := sha256.New()
				n, err := io.Copy(h, f)
				f.Close()
				if err != nil {
					b.Error(err)
				}
				mu.Lock()
				total += n
				mu.Unlock()
			}
		})
	}
	for _, p := range paths {
		ch <- p
	}
	close(ch)
	wg.Wait()
	return total
}

// BenchmarkReadHash measures reading and hashing a whole image (about
// 80 MiB of content) against hashing the same bytes from memory, the upper
// bound. Run: go test -run '^$' -bench ReadHash ./squashfs
func BenchmarkReadHash(b *testing.B) {
	testenv.NeedTool(b, "mksquashfs")
	src := filepath.Join(b.TempDir(), "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		b.Fatal(err)
	}
	contents := benchTree(b, src)
	var size int64
	for _, c := range contents {
		size += int64(len(c))
	}
	b.Run("memory-sha256", func(b *testing.B) {
		b.SetBytes(size)
		for b.Loop() {
			var wg sync.WaitGroup
			ch := make(chan []byte)
			for range runtime.GOMAXPROCS(0) {
				wg.Go(func() {
					for c := range ch {
						sha256.Sum256(c)
					}
				})
			}
			for _, c := range contents {
				ch <- c
			}
			close(ch)
			wg.Wait()
		}
	})
	for _, comp := range []struct {
		name string
		args []string
	}{
		{"zstd", []string{"-comp", "zstd", "-Xcompression-level", "3"}},
		{"gzip", []string{"-comp", "gzip", "-Xcompression-level", "1"}},
		{"lz4", []string{"-comp", "lz4"}},
		{"xz", []string{"-comp", "xz"}},
	} {
		img := filepath.Join(b.TempDir(), comp.name+".sqsh")
		mksquashfs(b, src, img, comp.args...)
		rc, err := OpenReader(img)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(comp.name, func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				if n := hashImage(b, &rc.Reader, runtime.GOMAXPROCS(0)); n != size {
					b.Fatalf("hashed %d bytes, want %d", n, size)
				}
			}
		})
		b.Run(comp.name+"-bigfile-sequential", func(b *testing.B) {
			f, _ := rc.Open("big")
			b.SetBytes(f.(*File).Size())
			for b.Loop() {
				f.(*File).Seek(0, io.SeekStart)
				h := sha256.New()
				buf := make([]byte, 64<<10)
				if _, err := io.CopyBuffer(h, struct{ io.Reader }{f}, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(comp.name+"-bigfile-parallel", func(b *testing.B) {
			f, _ := rc.Open("big")
			b.SetBytes(f.(*File).Size())
			for b.Loop() {
				f.(*File).Seek(0, io.SeekStart)
				h := sha256.New()
				if _, err := io.Copy(h, f); err != nil {
					b.Fatal(err)
				}
			}
		})
		rc.Close()
	}
}
