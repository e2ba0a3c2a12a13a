package blockcache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imaforge/imaforge/squashfs"
)

// tree is a small tree with full blocks, tails and fragments, compressible.
func tree(variant int) []squashfs.Entry {
	es := []squashfs.Entry{{Path: "/", Mode: 0o755 | os.ModeDir}}
	for i := range 20 {
		var b bytes.Buffer
		for j := 0; b.Len() < 500+i*1700; j++ {
			fmt.Fprintf(&b, "line %d of file %d\n", j, i)
		}
		if i == 7 {
			fmt.Fprintf(&b, "variant %d\n", variant)
		}
		data := b.Bytes()
		es = append(es, squashfs.Entry{Path: fmt.Sprintf("/f%02d", i), Mode: 0o644, Size: int64(len(data)),
			Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }})
	}
	return es
}

// pack writes the image of es to a file and returns its bytes.
func pack(t *testing.T, es []squashfs.Entry, comp squashfs.Compression, cache squashfs.BlockCache) ([]byte, squashfs.Stats) {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "img")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := squashfs.NewWriter(f, squashfs.Options{Compression: comp, BlockSize: 4096, ModTime: 1, Cache: cache})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if err := w.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.WriteData(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	return b, st
}

type warnings struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnings) add(m string) { w.mu.Lock(); w.msgs = append(w.msgs, m); w.mu.Unlock() }
func (w *warnings) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.msgs, "\n")
}

// TestColdWarm: for every compressor, an image served from the on-disk
// cache is the cold build's, byte for byte, and takes every block from it.
func TestColdWarm(t *testing.T) {
	for _, ci := range squashfs.Compressors() {
		if ci.Comp == squashfs.CompNone {
			continue
		}
		t.Run(ci.Name, func(t *testing.T) {
			dir := t.TempDir()
			var warn warnings
			cold, _ := pack(t, tree(0), ci.Comp, nil)
			c := Open(dir, 0, warn.add)
			fill, st := pack(t, tree(0), ci.Comp, c)
			if !bytes.Equal(fill, cold) || st.CacheMisses == 0 {
				t.Fatalf("filling: equal %v, %+v", bytes.Equal(fill, cold), st)
			}
			c = Open(dir, 0, warn.add)
			warm, st := pack(t, tree(0), ci.Comp, c)
			if !bytes.Equal(warm, cold) {
				t.Fatal("the warm image differs from the cold one")
			}
			if cs := c.Stats(); st.CacheMisses != 0 || cs.Hits == 0 || cs.Misses != 0 || cs.Stored != 0 {
				t.Fatalf("warm: %+v, cache %+v", st, cs)
			}
			if warn.String() != "" {
				t.Fatalf("warnings: %s", warn.String())
			}
		})
	}
}

// TestDamagedEntry: a damaged file (a flipped byte, a truncation, a file
// copied under another key's name) is detected, not used, reported, and
// replaced; the image is the cold build's.
func TestDamagedEntry(t *testing.T) {
	damage := map[string]func(p string, b []byte) []byte{
		"flipped byte": func(_ string, b []byte) []byte { b[len(b)-3] ^= 1; return b },
		"truncated":    func(_ string, b []byte) []byte { return b[:len(b)-1] },
		"header only":  func(_ string, b []byte) []byte { return b[:headerSize] },
		"empty":        func(_ string, b []byte) []byte { return nil },
		"flag":         func(_ string, b []byte) []byte { b[48] ^= 1; return b },
		"crc":          func(_ string, b []byte) []byte { b[41] ^= 1; return b },
	}
	for name, f := range damage {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			cold, _ := pack(t, tree(0), squashfs.Zstd, nil)
			pack(t, tree(0), squashfs.Zstd, Open(dir, 0, nil))
			files := entries(t, dir)
			p := files[len(files)/2]
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, f(p, bytes.Clone(b)), 0o644); err != nil {
				t.Fatal(err)
			}
			var warn warnings
			c := Open(dir, 0, warn.add)
			got, st := pack(t, tree(0), squashfs.Zstd, c)
			if !bytes.Equal(got, cold) {
				t.Fatal("a damaged entry reached the image")
			}
			if cs := c.Stats(); cs.Damaged != 1 || st.CacheMisses != 1 || cs.Stored != 1 {
				t.Fatalf("stats %+v, cache %+v", st, c.Stats())
			}
			if !strings.Contains(warn.String(), p) {
				t.Fatalf("warning %q does not name %s", warn.String(), p)
			}
			if nb, _ := os.ReadFile(p); !bytes.Equal(nb, b) {
				t.Fatal("the damaged entry was not replaced")
			}
		})
	}
	t.Run("moved", func(t *testing.T) {
		dir := t.TempDir()
		cold, _ := pack(t, tree(0), squashfs.Zstd, nil)
		pack(t, tree(0), squashfs.Zstd, Open(dir, 0, nil))
		files := entries(t, dir)
		b, _ := os.ReadFile(files[0])
		if err := os.WriteFile(files[1], b, 0o644); err != nil {
			t.Fatal(err)
		}
		c := Open(dir, 0, nil)
		got, _ := pack(t, tree(0), squashfs.Zstd, c)
		if !bytes.Equal(got, cold) || c.Stats().Damaged != 1 {
			t.Fatalf("equal %v, %+v", bytes.Equal(got, cold), c.Stats())
		}
	})
}

func entries(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "blocks", "*", "*"))
	if err != nil || len(files) < 2 {
		t.Fatalf("cache entries: %v %v", files, err)
	}
	return files
}

// TestConcurrentBuilds: builds of two different trees share one cache
// directory at the same time, repeatedly (as two processes would: separate
// Caches), and each gives its cold image.
func TestConcurrentBuilds(t *testing.T) {
	dir := t.TempDir()
	want := [2][]byte{}
	for v := range 2 {
		want[v], _ = pack(t, tree(v), squashfs.Zstd, nil)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 16)
	for round := range 3 {
		for v := range 2 {
			for range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c := Open(dir, 0, func(m string) { errs <- m })
					got, _ := pack(t, tree(v), squashfs.Zstd, c)
					if !bytes.Equal(got, want[v]) {
						errs <- fmt.Sprintf("round %d variant %d: image differs", round, v)
					}
				}()
			}
		}
		wg.Wait()
	}
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

// TestUnwritable: a cache that cannot be created, or whose writes fail
// (ENOTDIR here, as ENOSPC would), gives one warning and the cold image.
func TestUnwritable(t *testing.T) {
	cold, _ := pack(t, tree(0), squashfs.Zstd, nil)
	t.Run("not a directory", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		os.WriteFile(file, nil, 0o644)
		var warn warnings
		c := Open(filepath.Join(file, "cache"), 0, warn.add)
		got, _ := pack(t, tree(0), squashfs.Zstd, c)
		if !bytes.Equal(got, cold) || len(warn.msgs) != 1 || !strings.Contains(warn.msgs[0], "not a directory; building without storing") {
			t.Fatalf("equal %v, warnings %q", bytes.Equal(got, cold), warn.msgs)
		}
	})
	t.Run("writes fail", func(t *testing.T) {
		dir := t.TempDir()
		var warn warnings
		c := Open(dir, 0, warn.add)
		for i := range 256 { // every fan-out directory is a file
			os.WriteFile(filepath.Join(dir, "blocks", fmt.Sprintf("%02x", i)), nil, 0o644)
		}
		got, _ := pack(t, tree(0), squashfs.Zstd, c)
		if !bytes.Equal(got, cold) || len(warn.msgs) < 1 || !strings.Contains(warn.String(), "without storing") {
			t.Fatalf("equal %v, warnings %q", bytes.Equal(got, cold), warn.msgs)
		}
		if c.Stats().Stored != 0 {
			t.Fatalf("stored %d", c.Stats().Stored)
		}
	})
}

// TestTrim: Trim removes the least recently used entries first, down to
// the limit, and keeps the ones a build just used.
func TestTrim(t *testing.T) {
	dir := t.TempDir()
	pack(t, tree(0), squashfs.Zstd, Open(dir, 0, nil))
	files := entries(t, dir)
	var total int64
	old := time.Now().Add(-48 * time.Hour)
	for i, p := range files {
		fi, _ := os.Stat(p)
		total += fi.Size()
		ts := old.Add(time.Duration(i) * time.Minute)
		os.Chtimes(p, ts, ts)
	}
	os.WriteFile(filepath.Join(dir, "blocks", ".tmp-stale"), []byte("x"), 0o644)
	os.Chtimes(filepath.Join(dir, "blocks", ".tmp-stale"), old, old)
	c := Open(dir, total/2, nil)
	kept, err := c.Trim()
	if err != nil || kept > total/2 || kept == 0 {
		t.Fatalf("kept %d of %d (limit %d): %v", kept, total, total/2, err)
	}
	if _, err := os.Stat(files[0]); err == nil {
		t.Error("the oldest entry was kept")
	}
	if _, err := os.Stat(files[len(files)-1]); err != nil {
		t.Error("the newest entry was removed")
	}
	if _, err := os.Stat(filepath.Join(dir, "blocks", ".tmp-stale")); err == nil {
		t.Error("a stale temporary file was kept")
	}
	// a hit refreshes an entry older than an hour (its last use, for the
	// next Trim)
	last := files[len(files)-1]
	pack(t, tree(0), squashfs.Zstd, c)
	if fi, err := os.Stat(last); err != nil || time.Since(fi.ModTime()) > time.Hour {
		t.Errorf("%s, used by the last build, was not refreshed: %v", last, err)
	}
}

func FuzzDecode(f *testing.F) {
	e := Entry{Compressed: true, Stored: []byte("stored bytes")}
	f.Add(e.AppendTo(nil))
	e = Entry{Stored: bytes.Repeat([]byte{1}, 4096)}
	f.Add(e.AppendTo(nil))
	if seeds, _ := filepath.Glob("testdata/*.blk"); len(seeds) > 0 {
		for _, s := range seeds {
			b, _ := os.ReadFile(s)
			f.Add(b)
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Decode(b)
		if err != nil {
			return
		}
		if got := e.AppendTo(nil); !bytes.Equal(got, b) {
			t.Fatalf("decode/encode changed the bytes")
		}
	})
}

// TestVersion1Entry: an entry in the format of version 1 (magic "IMFBLK1",
// SHA-256 checksum) is never read as version 2, even under the name of a
// current key: it is a damaged entry, compressed again and replaced.
func TestVersion1Entry(t *testing.T) {
	dir := t.TempDir()
	cold, _ := pack(t, tree(0), squashfs.Zstd, nil)
	pack(t, tree(0), squashfs.Zstd, Open(dir, 0, nil))
	p := entries(t, dir)[0]
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	e, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	// version 1: magic, key, SHA-256 of the stored bytes, length, flags
	v1 := append([]byte("IMFBLK1\n"), e.Key[:]...)
	sum := sha256.Sum256(e.Stored)
	v1 = append(v1, sum[:]...)
	v1 = binary.LittleEndian.AppendUint32(v1, uint32(len(e.Stored)))
	v1 = append(v1, 1, 0, 0, 0)
	v1 = append(v1, e.Stored...)
	if err := os.WriteFile(p, v1, 0o644); err != nil {
		t.Fatal(err)
	}
	c := Open(dir, 0, nil)
	got, _ := pack(t, tree(0), squashfs.Zstd, c)
	if !bytes.Equal(got, cold) || c.Stats().Damaged != 1 || c.Stats().Stored != 1 {
		t.Fatalf("same image %v, %+v", bytes.Equal(got, cold), c.Stats())
	}
	if nb, _ := os.ReadFile(p); !bytes.Equal(nb, b) {
		t.Fatal("the version 1 entry was not replaced")
	}
}
