package blockcache

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imaforge/imaforge/internal/testenv"
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

// distinct is a tree none of whose blocks another variant has.
func distinct(variant int) []squashfs.Entry {
	es := tree(0)
	for i := range es[1:] {
		var b bytes.Buffer
		for j := 0; b.Len() < 3000+i*900; j++ {
			fmt.Fprintf(&b, "line %d of file %d of variant %d\n", j, i, variant)
		}
		data := b.Bytes()
		es[i+1].Size = int64(len(data))
		es[i+1].Open = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }
	}
	return es
}

// mkImage writes the image of es to a file and returns its bytes.
func mkImage(t testing.TB, es []squashfs.Entry, comp squashfs.Compression, cache squashfs.BlockCache) ([]byte, squashfs.Stats) {
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

// build packs es with a cache opened on dir and closes the cache.
func build(t *testing.T, dir string, es []squashfs.Entry, max int64, warn func(string)) ([]byte, squashfs.Stats, Stats) {
	t.Helper()
	c := Open(dir, max, warn)
	img, st := mkImage(t, es, squashfs.Zstd, c)
	if _, err := c.Close(); err != nil {
		t.Fatal(err)
	}
	return img, st, c.Stats()
}

// packs returns the pack files in dir's cache.
func packs(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "blocks", "*"+PackExt))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestColdWarm: for every compressor, an image served from the on-disk
// cache is the cold build's, byte for byte, and takes every block from it;
// a build that stores nothing writes no pack.
func TestColdWarm(t *testing.T) {
	for _, ci := range squashfs.Compressors() {
		if ci.Comp == squashfs.CompNone {
			continue
		}
		t.Run(ci.Name, func(t *testing.T) {
			dir := t.TempDir()
			var warn warnings
			cold, _ := mkImage(t, tree(0), ci.Comp, nil)
			c := Open(dir, 0, warn.add)
			fill, st := mkImage(t, tree(0), ci.Comp, c)
			if !bytes.Equal(fill, cold) || st.CacheMisses == 0 {
				t.Fatalf("filling: equal %v, %+v", bytes.Equal(fill, cold), st)
			}
			kept, err := c.Close()
			if err != nil || kept == 0 || len(packs(t, dir)) != 1 {
				t.Fatalf("kept %d, %v, packs %q", kept, err, packs(t, dir))
			}
			c = Open(dir, 0, warn.add)
			warm, st := mkImage(t, tree(0), ci.Comp, c)
			if !bytes.Equal(warm, cold) {
				t.Fatal("the warm image differs from the cold one")
			}
			if cs := c.Stats(); st.CacheMisses != 0 || cs.Hits == 0 || cs.Misses != 0 || cs.Stored != 0 {
				t.Fatalf("warm: %+v, cache %+v", st, cs)
			}
			if k2, err := c.Close(); err != nil || k2 != kept || len(packs(t, dir)) != 1 {
				t.Fatalf("after the warm build: kept %d (was %d), %v, packs %q", k2, kept, err, packs(t, dir))
			}
			if warn.String() != "" {
				t.Fatalf("warnings: %s", warn.String())
			}
		})
	}
}

// mangle rewrites the only pack in dir's cache with f and, when fixCRC,
// recomputes the index CRC (a well-formed pack with wrong content).
func mangle(t *testing.T, dir string, fixCRC bool, f func(b []byte, p *pack) []byte) string {
	t.Helper()
	ps := packs(t, dir)
	if len(ps) != 1 {
		t.Fatalf("packs %q", ps)
	}
	b, err := os.ReadFile(ps[0])
	if err != nil {
		t.Fatal(err)
	}
	p, err := parsePack(ps[0], bytes.NewReader(b), int64(len(b)))
	if err != nil || p.n < 4 {
		t.Fatalf("%v, %d records", err, p.n)
	}
	b = f(bytes.Clone(b), p)
	if fixCRC {
		binary.LittleEndian.PutUint32(b[20:], indexCRC(b[:20], b[p.end:]))
	}
	if err := os.WriteFile(ps[0], b, 0o644); err != nil {
		t.Fatal(err)
	}
	return ps[0]
}

// TestDamagedEntry: an entry whose bytes are damaged, cut off, or another
// entry's (a well-formed pack: only the squashfs Writer's check finds it) is
// not used, reported with its pack and offset, and replaced: the next build
// takes every block from the cache, without a warning.
func TestDamagedEntry(t *testing.T) {
	damage := map[string]struct {
		fix bool
		f   func(b []byte, p *pack) []byte
	}{
		"flipped byte": {false, func(b []byte, p *pack) []byte {
			r, _ := p.record(p.n / 2)
			b[r.Off+uint64(r.Len)/2] ^= 0xff
			return b
		}},
		"crc": {true, func(b []byte, p *pack) []byte { b[p.end+int64(p.n/2)*recordSize+44] ^= 1; return b }},
		"flag": {true, func(b []byte, p *pack) []byte {
			// the entry of a compressed block said to be stored as is
			for i := range p.n {
				if r, _ := p.record(i); r.Compressed {
					b[p.end+int64(i)*recordSize+48] = 0
					return b
				}
			}
			t.Fatal("no compressed entry")
			return nil
		}},
		"another entry's bytes": {true, func(b []byte, p *pack) []byte {
			i, j := p.n/2, p.n/2+1
			copy(b[p.end+int64(i)*recordSize+32:p.end+int64(i+1)*recordSize], b[p.end+int64(j)*recordSize+32:])
			return b
		}},
	}
	for name, d := range damage {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			cold, _ := mkImage(t, tree(0), squashfs.Zstd, nil)
			build(t, dir, tree(0), 0, nil)
			path := mangle(t, dir, d.fix, d.f)
			var warn warnings
			got, st, cs := build(t, dir, tree(0), 0, warn.add)
			if !bytes.Equal(got, cold) {
				t.Fatal("a damaged entry reached the image")
			}
			if cs.Damaged != 1 || st.CacheMisses != 1 || cs.Stored != 1 {
				t.Fatalf("stats %+v, cache %+v", st, cs)
			}
			if !strings.Contains(warn.String(), path+": entry at offset ") {
				t.Fatalf("warning %q does not name the entry in %s", warn.String(), path)
			}
			var again warnings
			got, st, cs = build(t, dir, tree(0), 0, again.add)
			if !bytes.Equal(got, cold) || st.CacheMisses != 0 || cs.Damaged != 0 || again.String() != "" {
				t.Fatalf("the damaged entry was not replaced: %+v %+v %s", st, cs, again.String())
			}
		})
	}
}

// TestDamagedPack: a pack whose header or index is damaged, or that is cut
// short, is reported, not used (every block compressed again, the cold
// image) and removed; the pack of the blocks compressed again serves the
// next build.
func TestDamagedPack(t *testing.T) {
	damage := map[string]func(b []byte, p *pack) []byte{
		"magic":            func(b []byte, _ *pack) []byte { b[3] ^= 0xff; return b },
		"index offset":     func(b []byte, _ *pack) []byte { b[8]++; return b },
		"count":            func(b []byte, _ *pack) []byte { b[16]++; return b },
		"index crc":        func(b []byte, _ *pack) []byte { b[21] ^= 1; return b },
		"reserved":         func(b []byte, _ *pack) []byte { b[30] = 1; return b },
		"record key":       func(b []byte, p *pack) []byte { b[p.end+5] ^= 1; return b },
		"cut short":        func(b []byte, _ *pack) []byte { return b[:len(b)-1] },
		"trailing byte":    func(b []byte, _ *pack) []byte { return append(b, 0) },
		"header only":      func(b []byte, _ *pack) []byte { return b[:packHeader] },
		"empty":            func(b []byte, _ *pack) []byte { return nil },
		"values cut short": func(b []byte, p *pack) []byte { return append(b[:packHeader], b[p.end:]...) },
	}
	for name, f := range damage {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			cold, _ := mkImage(t, tree(0), squashfs.Zstd, nil)
			_, _, filled := build(t, dir, tree(0), 0, nil)
			path := mangle(t, dir, false, f)
			var warn warnings
			got, st, cs := build(t, dir, tree(0), 0, warn.add)
			if !bytes.Equal(got, cold) || cs.Hits != 0 || cs.Stored != filled.Stored || st.CacheHits != 0 {
				t.Fatalf("equal %v, %+v, cache %+v", bytes.Equal(got, cold), st, cs)
			}
			if !strings.Contains(warn.String(), path) || !strings.Contains(warn.String(), "not a valid block cache pack") {
				t.Fatalf("warning %q does not name %s", warn.String(), path)
			}
			if _, err := os.Stat(path); err == nil {
				t.Fatal("the damaged pack was kept")
			}
			var again warnings
			got, st, _ = build(t, dir, tree(0), 0, again.add)
			if !bytes.Equal(got, cold) || st.CacheMisses != 0 || again.String() != "" {
				t.Fatalf("the next build: %+v, %s", st, again.String())
			}
		})
	}
}

// TestNotAFile: a FIFO or a directory under a pack's name is reported as
// not a regular file (the FIFO not waited on: before O_NONBLOCK the build
// hung in open), not used, and removed; the cold image.
func TestNotAFile(t *testing.T) {
	cold, _ := mkImage(t, tree(0), squashfs.Zstd, nil)
	for name, mk := range map[string]func(string) error{
		"fifo":      func(p string) error { return syscall.Mkfifo(p, 0o644) },
		"directory": func(p string) error { return os.Mkdir(p, 0o755) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			os.MkdirAll(filepath.Join(dir, "blocks"), 0o755)
			path := filepath.Join(dir, "blocks", "0000000000000000-00000000"+PackExt)
			if err := mk(path); err != nil {
				t.Fatal(err)
			}
			var warn warnings
			got, _, cs := build(t, dir, tree(0), 0, warn.add)
			if !bytes.Equal(got, cold) || cs.Damaged != 1 || len(warn.msgs) != 1 ||
				!strings.Contains(warn.msgs[0], path+": not a valid block cache pack: not a regular file") {
				t.Fatalf("equal %v, %+v, warnings %q", bytes.Equal(got, cold), cs, warn.msgs)
			}
			if _, err := os.Lstat(path); err == nil {
				t.Fatal("kept")
			}
		})
	}
}

// TestConcurrentBuilds: builds of two different trees share one cache
// directory at the same time, repeatedly (as two processes would: separate
// Caches, each writing and merging packs), and each gives its cold image.
func TestConcurrentBuilds(t *testing.T) {
	dir := t.TempDir()
	want := [2][]byte{}
	for v := range 2 {
		want[v], _ = mkImage(t, tree(v), squashfs.Zstd, nil)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for round := range 6 {
		for v := range 2 {
			for range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					c := Open(dir, 0, func(m string) { errs <- m })
					got, _ := mkImage(t, tree(v+2*(round%3)), squashfs.Zstd, c)
					if _, err := c.Close(); err != nil {
						errs <- err.Error()
					}
					if round%3 == 0 && !bytes.Equal(got, want[v]) {
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
	if n := len(packs(t, dir)); n > 2*maxPacks {
		t.Errorf("%d packs left", n)
	}
	_, st, _ := build(t, dir, tree(0), 0, nil)
	if st.CacheMisses != 0 {
		t.Errorf("after the concurrent builds: %+v", st)
	}
}

// TestUnwritable: a cache that cannot be created, or whose writes fail
// (ENOTDIR, and a real ENOSPC: a tmpfs of 8 KiB filled part way through
// the pack), gives one warning naming the directory and the cause, and the
// cold image; a pack cut short by ENOSPC is removed and not counted as
// stored.
func TestUnwritable(t *testing.T) {
	cold, _ := mkImage(t, tree(0), squashfs.Zstd, nil)
	t.Run("not a directory", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		os.WriteFile(file, nil, 0o644)
		var warn warnings
		got, _, _ := build(t, filepath.Join(file, "cache"), tree(0), 0, warn.add)
		if !bytes.Equal(got, cold) || len(warn.msgs) != 1 || !strings.Contains(warn.msgs[0], "not a directory; building without storing") {
			t.Fatalf("equal %v, warnings %q", bytes.Equal(got, cold), warn.msgs)
		}
	})
	t.Run("writes fail", func(t *testing.T) {
		dir := t.TempDir()
		var warn warnings
		c := Open(dir, 0, warn.add)
		os.Remove(filepath.Join(dir, "blocks"))
		os.WriteFile(filepath.Join(dir, "blocks"), nil, 0o644)
		got, _ := mkImage(t, tree(0), squashfs.Zstd, c)
		if _, err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, cold) || len(warn.msgs) != 1 || !strings.Contains(warn.String(), "without storing") {
			t.Fatalf("equal %v, warnings %q", bytes.Equal(got, cold), warn.msgs)
		}
		if c.Stats().Stored != 0 {
			t.Fatalf("stored %d", c.Stats().Stored)
		}
	})
	t.Run("full", func(t *testing.T) {
		dir := testenv.Tmpfs(t, 8<<10)
		var warn warnings
		got, _, cs := build(t, dir, distinct(3), 0, warn.add)
		want, _ := mkImage(t, distinct(3), squashfs.Zstd, nil)
		if !bytes.Equal(got, want) || len(warn.msgs) != 1 ||
			!strings.HasPrefix(warn.msgs[0], "block cache "+filepath.Join(dir, "blocks")+": ") || !strings.Contains(warn.msgs[0], "no space left on device") {
			t.Fatalf("equal %v, warnings %q", bytes.Equal(got, want), warn.msgs)
		}
		if cs.Stored != 0 {
			t.Fatalf("stored %d entries of a pack that was not kept", cs.Stored)
		}
		if left, _ := os.ReadDir(filepath.Join(dir, "blocks")); len(left) != 0 {
			t.Fatalf("left %v", left)
		}
	})
}

// TestEvict: over the limit, Close keeps at most three quarters of it,
// the entries the build used first; too many packs are merged.
func TestEvict(t *testing.T) {
	dir := t.TempDir()
	var sizes []int64
	for v := range 12 {
		_, _, cs := build(t, dir, distinct(v), 0, nil)
		if cs.Stored == 0 {
			t.Fatalf("variant %d stored nothing", v)
		}
		if n := len(packs(t, dir)); n > maxPacks {
			t.Fatalf("after %d builds: %d packs", v+1, n)
		}
		var total int64
		for _, p := range packs(t, dir) {
			fi, _ := os.Stat(p)
			total += fi.Size()
		}
		sizes = append(sizes, total)
	}
	// every variant is still there
	for v := range 12 {
		if _, st, _ := build(t, dir, distinct(v), 0, nil); st.CacheMisses != 0 {
			t.Fatalf("variant %d: %+v", v, st)
		}
	}
	// a limit below what the packs take: the last build's blocks stay
	limit := sizes[len(sizes)-1] / 2
	c := Open(dir, limit, nil)
	mkImage(t, distinct(5), squashfs.Zstd, c)
	kept, err := c.Close()
	if err != nil || kept > limit/4*3 || kept == 0 {
		t.Fatalf("kept %d (limit %d): %v", kept, limit, err)
	}
	if _, st, _ := build(t, dir, distinct(5), limit, nil); st.CacheMisses != 0 {
		t.Fatalf("the blocks the last build used were dropped: %+v", st)
	}
	dropped := 0
	for v := range 12 {
		c := Open(dir, limit, nil)
		_, st := mkImage(t, distinct(v), squashfs.Zstd, c)
		if st.CacheMisses != 0 {
			dropped++
		}
		// not closed: the cache stays as it was for the next variant
	}
	if dropped == 0 {
		t.Fatal("nothing was dropped")
	}
}

// TestStale: version 2 entries (one file per block in fan-out directories)
// are never read and are removed; a temporary pack a killed build left is
// removed after a day.
func TestStale(t *testing.T) {
	dir := t.TempDir()
	cold, _ := mkImage(t, tree(0), squashfs.Zstd, nil)
	build(t, dir, tree(0), 0, nil)
	// a version 2 entry under a current key's name, well-formed
	p := filepath.Join(dir, "blocks", "ab", "ab"+strings.Repeat("0", 62))
	os.MkdirAll(filepath.Dir(p), 0o755)
	os.WriteFile(p, append([]byte("IMFBLK2\n"), make([]byte, 100)...), 0o644)
	old := time.Now().Add(-48 * time.Hour)
	stale := filepath.Join(dir, "blocks", tmpPrefix+"123"+PackExt)
	fresh := filepath.Join(dir, "blocks", tmpPrefix+"456"+PackExt)
	os.WriteFile(stale, []byte("x"), 0o644)
	os.WriteFile(fresh, []byte("x"), 0o644)
	os.Chtimes(stale, old, old)
	got, st, cs := build(t, dir, tree(0), 0, nil)
	if !bytes.Equal(got, cold) || st.CacheMisses != 0 || cs.Damaged != 0 {
		t.Fatalf("%+v %+v", st, cs)
	}
	for _, gone := range []string{filepath.Dir(p), stale} {
		if _, err := os.Stat(gone); err == nil {
			t.Errorf("%s was kept", gone)
		}
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("a temporary pack of a running build was removed: %v", err)
	}
}

// FuzzParsePack: parsePack never panics; a pack it accepts has every entry
// inside the values, and reading an entry fails or returns its length.
func FuzzParsePack(f *testing.F) {
	dir := f.TempDir()
	for v := range 2 {
		c := Open(dir, 0, nil)
		mkImage(f, tree(v), squashfs.Zstd, c)
		if _, err := c.Close(); err != nil {
			f.Fatal(err)
		}
	}
	w, err := createPack(filepath.Join(dir, "blocks"))
	if err != nil {
		f.Fatal(err)
	}
	if _, err := w.finish(); err != nil { // no entries
		f.Fatal(err)
	}
	seeds, _ := filepath.Glob(filepath.Join(dir, "blocks", "*"+PackExt))
	if len(seeds) != 3 {
		f.Fatalf("seeds %q", seeds)
	}
	for _, s := range seeds {
		b, _ := os.ReadFile(s)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := parsePack("fuzz", bytes.NewReader(b), int64(len(b)))
		if err != nil {
			if !errors.Is(err, ErrBadPack) {
				t.Fatalf("error %v does not wrap ErrBadPack", err)
			}
			return
		}
		for i := range p.n {
			r, _ := p.record(i)
			if r.Off+uint64(r.Len) > uint64(p.end) || p.find(r.Key) != i {
				t.Fatalf("record %d: %+v", i, r)
			}
			if got, _, err := p.read(i, nil); err == nil && len(got) != int(r.Len) {
				t.Fatalf("record %d: read %d bytes", i, len(got))
			}
		}
	})
}

// TestStoredCountsEntries: Stored counts the entries the kept pack holds,
// not the Puts (a key put twice, as two workers compressing one block of
// two identical files may, is one entry), and after a pack a write failure
// dropped, none of its entries.
func TestStoredCountsEntries(t *testing.T) {
	dir := t.TempDir()
	c := Open(dir, 0, nil)
	var a, b squashfs.BlockKey
	a[0], b[0] = 1, 2
	c.Put(a, []byte("block a"), false)
	c.Put(a, []byte("block a"), false)
	c.Put(b, []byte("block b"), true)
	if got := c.Stats().Stored; got != 2 {
		t.Fatalf("3 Puts of 2 keys: Stored %d, want 2", got)
	}
	if _, err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = Open(dir, 0, nil)
	defer c.Close()
	for _, k := range []squashfs.BlockKey{a, b} {
		if _, _, ok := c.Get(k, nil); !ok {
			t.Fatalf("key %x not in the pack", k[0])
		}
	}
}
