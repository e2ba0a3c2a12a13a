package verify_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/squashfs"
	"github.com/imaforge/imaforge/verify"
)

// benchImage is a zstd image of IMAFORGE_VERIFY_BENCH_MB MiB of file data
// (default 64) in 1 MiB files, each signed by the manufacturer key, built
// once per run.
var (
	benchOnce  sync.Once
	benchImg   []byte
	benchBytes int64
)

func benchSetup(b *testing.B) []byte {
	fx := shared(b)
	benchOnce.Do(func() {
		mb := 64
		if s := os.Getenv("IMAFORGE_VERIFY_BENCH_MB"); s != "" {
			mb, _ = strconv.Atoi(s)
		}
		r := rand.New(rand.NewPCG(1, 2))
		var entries []squashfs.Entry
		for i := range mb {
			data := make([]byte, 1<<20)
			for j := range data {
				data[j] = byte(r.IntN(16)) // compresses about 2:1
			}
			d := sha256.Sum256(data)
			v, err := fx.mfrS.SignDigest(imasig.SHA256, d[:])
			check(b, err)
			entries = append(entries, squashfs.Entry{
				Path: fmt.Sprintf("/data/f%04d", i), Mode: 0o755, Size: int64(len(data)),
				Open:   func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
				Xattrs: []squashfs.Xattr{{Name: imasig.XattrName, Value: v}},
			})
			benchBytes += int64(len(data))
		}
		f, err := os.CreateTemp(fxRoot, "bench")
		check(b, err)
		defer f.Close()
		w, err := squashfs.NewWriter(f, squashfs.Options{Compression: squashfs.Zstd, Level: 3, BlockSize: 128 << 10})
		check(b, err)
		for _, e := range entries {
			check(b, w.Add(e))
		}
		check(b, w.Close())
		benchImg, err = os.ReadFile(f.Name())
		check(b, err)
	})
	return benchImg
}

// BenchmarkVerify verifies the whole image (hash, signature, chain, scope)
// with one worker per CPU.
func BenchmarkVerify(b *testing.B) {
	img := benchSetup(b)
	ts := shared(b).trust(b, nil)
	b.SetBytes(benchBytes)
	b.ResetTimer()
	defer reportCPU(b)()
	for b.Loop() {
		rep, err := verify.Image(context.Background(), bytes.NewReader(img), int64(len(img)), verify.Options{Trust: ts})
		if err != nil || !rep.OK {
			b.Fatalf("%v %+v", err, rep.Summary)
		}
	}
}

// BenchmarkReadHash is the floor Verify is measured against: read every
// file with the same reader and SHA-256 it, one worker per CPU, nothing else.
func BenchmarkReadHash(b *testing.B) {
	img := benchSetup(b)
	b.SetBytes(benchBytes)
	b.ResetTimer()
	defer reportCPU(b)()
	for b.Loop() {
		z, err := squashfs.NewReader(bytes.NewReader(img), int64(len(img)))
		check(b, err)
		names := make(chan string)
		var wg sync.WaitGroup
		for range runtime.GOMAXPROCS(0) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := range names {
					f, err := z.Open(n)
					if err != nil {
						panic(err)
					}
					h := sha256.New()
					if _, err := io.Copy(h, f); err != nil {
						panic(err)
					}
					f.Close()
				}
			}()
		}
		ents, err := z.ReadDir("data")
		check(b, err)
		for _, e := range ents {
			names <- "data/" + e.Name()
		}
		close(names)
		wg.Wait()
	}
}

// reportCPU reports the process CPU time (user+system) per operation, which
// on a shared machine compares two benchmarks better than wall time does.
func reportCPU(b *testing.B) func() {
	start := cpuTime()
	return func() {
		b.ReportMetric((cpuTime()-start).Seconds()/float64(b.N), "cpu-s/op")
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
