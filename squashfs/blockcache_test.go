package squashfs

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"

	"github.com/ulikunitz/xz"
)

// mapCache is an in-memory BlockCache.
type mapCache struct {
	mu       sync.Mutex
	m        map[BlockKey]mapEntry
	rejected int
}

type mapEntry struct {
	stored []byte
	comp   bool
}

func (c *mapCache) Get(k BlockKey, dst []byte) ([]byte, bool, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok {
		return nil, false, false
	}
	return append(dst[:0], e.stored...), e.comp, true
}

func (c *mapCache) Put(k BlockKey, stored []byte, comp bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[BlockKey]mapEntry{}
	}
	c.m[k] = mapEntry{bytes.Clone(stored), comp}
}

func (c *mapCache) Reject(BlockKey) {
	c.mu.Lock()
	c.rejected++
	c.mu.Unlock()
}

// cacheEntries is sampleEntries plus compressible files: full blocks,
// tails and small files in fragments.
func cacheEntries() []Entry {
	es := sampleEntries()
	for i := range 12 {
		var b bytes.Buffer
		for j := 0; b.Len() < 1000+i*2500; j++ {
			fmt.Fprintf(&b, "line %d of file %d: the quick brown fox\n", j, i)
		}
		data := b.Bytes()
		es = append(es, Entry{Path: fmt.Sprintf("/text/%02d", i), Mode: 0o644, Size: int64(len(data)), Open: opener(data)})
	}
	return es
}

// buildStats packs entries (in the given order) and returns the image and
// its Stats.
func buildStats(t testing.TB, es []Entry, opts Options) ([]byte, Stats) {
	t.Helper()
	var m memFile
	w, err := NewWriter(&m, opts)
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
	return m.b, st
}

// TestBlockCacheSameImage: for every compressor, a build that fills the
// cache and one served from it give the cold build's bytes; a changed file
// recompresses only its own blocks.
func TestBlockCacheSameImage(t *testing.T) {
	for _, ci := range Compressors() {
		t.Run(ci.Name, func(t *testing.T) {
			es := cacheEntries()
			opts := Options{Compression: ci.Comp, BlockSize: 4096, ModTime: 1700000000, TailEnds: true}
			cold := build(t, es, opts)
			c := &mapCache{}
			opts.Cache = c
			fill, st := buildStats(t, es, opts)
			if !bytes.Equal(fill, cold) {
				t.Fatalf("image filling the cache differs from the cold build")
			}
			if ci.Comp == CompNone {
				if len(c.m) != 0 || st.CacheMisses != 0 {
					t.Fatalf("uncompressed image used the cache: %d entries, %+v", len(c.m), st)
				}
				return
			}
			// (blocks of duplicate files may hit already)
			if st.CacheMisses == 0 || len(c.m) == 0 || st.CacheMisses < len(c.m) {
				t.Fatalf("cold fill: %+v, %d entries", st, len(c.m))
			}
			warm, st2 := buildStats(t, es, opts)
			if !bytes.Equal(warm, cold) {
				t.Fatalf("image from the cache differs from the cold build")
			}
			if st2.CacheMisses != 0 || st2.CacheHits != st.CacheHits+st.CacheMisses {
				t.Fatalf("warm build: %+v after %+v", st2, st)
			}
			// one file changes: only its blocks and its fragment block miss
			es = cacheEntries()
			for i := range es {
				if es[i].Path == "/text/11" {
					data := bytes.Repeat([]byte("changed content, compressible\n"), 1000)
					es[i].Size, es[i].Open = int64(len(data)), opener(data)
				}
			}
			opts.Cache = nil
			cold2 := build(t, es, opts)
			opts.Cache = c
			warm2, st3 := buildStats(t, es, opts)
			if !bytes.Equal(warm2, cold2) {
				t.Fatalf("image after a change differs from its cold build")
			}
			if st3.CacheMisses == 0 || st3.CacheMisses > 12 || st3.CacheHits == 0 {
				t.Fatalf("after changing one file: %+v", st3)
			}
		})
	}
}

// TestBlockCacheWrongEntry: a cache entry that does not decompress to its
// block (well-formed, wrong content; or garbage; or stored "uncompressed"
// with other bytes) is rejected, compressed again and replaced; the image
// is the cold build's.
func TestBlockCacheWrongEntry(t *testing.T) {
	for _, ci := range Compressors() {
		if ci.Comp == CompNone {
			continue
		}
		t.Run(ci.Name, func(t *testing.T) {
			es := cacheEntries()
			opts := Options{Compression: ci.Comp, BlockSize: 4096, ModTime: 1700000000}
			cold := build(t, es, opts)
			c := &mapCache{}
			opts.Cache = c
			build(t, es, opts)
			// Swap every pair of entries (valid compressed blocks under
			// the wrong keys), damage one, and make one a wrong
			// uncompressed block.
			var keys []BlockKey
			for k := range c.m {
				keys = append(keys, k)
			}
			for i := 0; i+1 < len(keys); i += 2 {
				c.m[keys[i]], c.m[keys[i+1]] = c.m[keys[i+1]], c.m[keys[i]]
			}
			e := c.m[keys[0]]
			e.stored = bytes.Clone(e.stored)
			e.stored[len(e.stored)/2] ^= 0x40
			c.m[keys[0]] = e
			c.m[keys[len(keys)-1]] = mapEntry{bytes.Repeat([]byte{'x'}, 100), false}
			got, st := buildStats(t, es, opts)
			if !bytes.Equal(got, cold) {
				t.Fatalf("a wrong cache entry reached the image")
			}
			if st.CacheRejected < len(keys)-1 || c.rejected != st.CacheRejected {
				t.Fatalf("rejected %d of %d swapped entries (cache told %d): %+v", st.CacheRejected, len(keys), c.rejected, st)
			}
			// the replaced entries now serve
			got, st = buildStats(t, es, opts)
			if !bytes.Equal(got, cold) || st.CacheRejected != 0 || st.CacheMisses != 0 {
				t.Fatalf("after replacing: %+v", st)
			}
		})
	}
}

// TestCodecIdentity: the key changes with what changes the compressed bytes.
func TestCodecIdentity(t *testing.T) {
	id := func(o Options) string {
		w, err := NewWriter(&memFile{}, o)
		if err != nil {
			t.Fatal(err)
		}
		return w.CodecIdentity()
	}
	base := id(Options{Compression: Zstd})
	for _, o := range []Options{{Compression: Zstd, Level: 3}, {Compression: Zstd, BlockSize: 1 << 20}, {Compression: Gzip}, {Compression: XZ}, {Compression: LZ4, Level: 9}} {
		if id(o) == base {
			t.Errorf("%+v has the identity of zstd-15: %s", o, base)
		}
	}
	if base != id(Options{Compression: Zstd, Level: DefaultZstdLevel, NoFragments: true, Workers: 3}) {
		t.Errorf("the default level, fragments or workers changed the identity")
	}
	if !bytes.Contains([]byte(base), []byte("zstd")) {
		t.Errorf("identity %q does not name the implementation", base)
	}
}

// TestBlockCacheMetadata: metadata blocks (inode, directory, xattr tables)
// are cached too: an image of empty files with xattrs and no data block is
// served from the cache on the second build, with the cold build's bytes.
func TestBlockCacheMetadata(t *testing.T) {
	for _, comp := range []Compression{Zstd, XZ} {
		t.Run(comp.String(), func(t *testing.T) {
			var es []Entry
			for i := range 400 {
				es = append(es, Entry{Path: fmt.Sprintf("/d%02d/empty-file-%04d", i%7, i), Mode: 0o644,
					Xattrs: []Xattr{{Name: "security.ima", Value: bytes.Repeat([]byte{byte(i)}, 64)}}})
			}
			opts := Options{Compression: comp, ModTime: 1700000000}
			cold := build(t, es, opts)
			c := &mapCache{}
			opts.Cache = c
			fill, st := buildStats(t, es, opts)
			if !bytes.Equal(fill, cold) || st.CacheMisses < 3 || len(c.m) < 3 {
				t.Fatalf("fill: same image %v, %+v, %d entries (want the metadata blocks)", bytes.Equal(fill, cold), st, len(c.m))
			}
			warm, st2 := buildStats(t, es, opts)
			if !bytes.Equal(warm, cold) || st2.CacheMisses != 0 || st2.CacheHits != st.CacheMisses+st.CacheHits {
				t.Fatalf("warm: same image %v, %+v after %+v", bytes.Equal(warm, cold), st2, st)
			}
		})
	}
}

// TestXZCheckStrict: the block cache checks xz entries with liblzma and
// accepts only what sq_xz writes: one stream with a CRC32 check, spanning
// the entry, decoding to at most the block's length. A stream the pure-Go
// reader would accept (CRC64 check) is refused, and so are trailing bytes,
// truncation and a longer output.
func TestXZCheckStrict(t *testing.T) {
	if !cgoCompressors {
		t.Skip("no xz encoder without cgo") // nothing is checked either
	}
	raw := bytes.Repeat([]byte("integrity measurement architecture\n"), 300)
	c, err := newCodec(XZ, 0, 128<<10)
	if err != nil {
		t.Fatal(err)
	}
	good, comp, err := c.compress(nil, raw)
	if err != nil || !comp {
		t.Fatal(err, comp)
	}
	d, err := newDecompressor(XZ, nil)
	if err != nil {
		t.Fatal(err)
	}
	d.cxz = true
	if got, err := d.decompress(nil, good, len(raw)); err != nil || !bytes.Equal(got, raw) {
		t.Fatalf("sq_xz's own block: %v", err)
	}
	var crc64 bytes.Buffer
	xw, err := xz.WriterConfig{CheckSum: xz.CRC64}.NewWriter(&crc64)
	if err != nil {
		t.Fatal(err)
	}
	xw.Write(raw)
	xw.Close()
	pure, _ := newDecompressor(XZ, nil)
	if got, err := pure.decompress(nil, crc64.Bytes(), len(raw)); err != nil || !bytes.Equal(got, raw) {
		t.Fatalf("the CRC64 stream does not decode in pure Go (test is void): %v", err)
	}
	flipped := bytes.Clone(good)
	flipped[len(flipped)/2] ^= 1
	// The block's CRC32 is checked by cDecodeXZ, not liblzma: a stream
	// whose only damage is that field, and one of two blocks (whose first
	// block's check the single-block layout would not find), are refused.
	badCheck := bytes.Clone(good)
	indexSize := (int(binary.LittleEndian.Uint32(good[len(good)-8:])) + 1) * 4
	badCheck[len(good)-12-indexSize-1] ^= 0x80
	twoBlocks := xzTwoBlocks(t, raw)
	if got, err := cDecodeXZLiblzma(nil, twoBlocks, len(raw)); err != nil || !bytes.Equal(got, raw) {
		t.Fatalf("liblzma does not decode the two-block stream (test is void): %v", err)
	}
	for name, src := range map[string][]byte{
		"crc64 check":      crc64.Bytes(),
		"trailing bytes":   append(bytes.Clone(good), 0, 0, 0, 0),
		"truncated":        good[:len(good)-1],
		"flipped bit":      flipped,
		"empty":            nil,
		"block check":      badCheck,
		"two blocks":       twoBlocks,
		"index size":       append(bytes.Clone(good[:len(good)-8]), 0xff, 0xff, 0xff, 0x7f, 0, 1, 'Y', 'Z'),
		"footer only":      good[len(good)-12:],
		"header only":      good[:12],
		"header and index": append(bytes.Clone(good[:12]), good[len(good)-12-indexSize:]...),
	} {
		if got, err := d.decompress(nil, src, len(raw)); err == nil {
			t.Errorf("%s: accepted (%d bytes)", name, len(got))
		}
	}
	if _, err := d.decompress(nil, good, len(raw)-1); err == nil {
		t.Errorf("output longer than max: accepted")
	}
}

// xzTwoBlocks is raw as one xz stream of two blocks with CRC32 checks.
func xzTwoBlocks(t testing.TB, raw []byte) []byte {
	var b bytes.Buffer
	xw, err := xz.WriterConfig{CheckSum: xz.CRC32, DictCap: 64 << 10, BlockSize: int64(len(raw)/2 + 1)}.NewWriter(&b)
	if err != nil {
		t.Fatal(err)
	}
	xw.Write(raw)
	if err := xw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestBlockKey: the key is the same for the same block and codec (in
// another Writer) and changes with one byte of the block, its length and the
// codec; keys that collide (a cache that answers every key with the last
// entry stored) still give the cold build's image.
func TestBlockKey(t *testing.T) {
	use := func(o Options) *blockCacheUse {
		w, err := NewWriter(&memFile{}, o)
		if err != nil {
			t.Fatal(err)
		}
		u, err := newBlockCacheUse(&mapCache{}, w.codec)
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
	zstd, xz := use(Options{Compression: Zstd}), use(Options{Compression: XZ})
	raw := bytes.Repeat([]byte("some block content "), 300)
	k := zstd.key(raw)
	if use(Options{Compression: Zstd}).key(bytes.Clone(raw)) != k {
		t.Fatal("the key of the same block and codec differs between Writers")
	}
	flipped := bytes.Clone(raw)
	flipped[1000] ^= 1
	for name, other := range map[string]BlockKey{
		"one byte": zstd.key(flipped), "longer": zstd.key(append(bytes.Clone(raw), 0)),
		"shorter": zstd.key(raw[:len(raw)-1]), "codec": xz.key(raw),
	} {
		if other == k {
			t.Errorf("%s: same key %x", name, k)
		}
	}

	es := cacheEntries()
	opts := Options{Compression: XZ, BlockSize: 4096, ModTime: 1700000000}
	cold := build(t, es, opts)
	opts.Cache = &collidingCache{}
	got, st := buildStats(t, es, opts)
	if !bytes.Equal(got, cold) || st.CacheRejected == 0 {
		t.Fatalf("colliding keys: same image %v, %+v", bytes.Equal(got, cold), st)
	}
}

// collidingCache answers every key with the last entry stored: every key
// collides.
type collidingCache struct {
	mu   sync.Mutex
	last *mapEntry
}

func (c *collidingCache) Get(_ BlockKey, dst []byte) ([]byte, bool, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil {
		return nil, false, false
	}
	return append(dst[:0], c.last.stored...), c.last.comp, true
}

func (c *collidingCache) Put(_ BlockKey, stored []byte, comp bool) {
	c.mu.Lock()
	c.last = &mapEntry{bytes.Clone(stored), comp}
	c.mu.Unlock()
}

func (c *collidingCache) Reject(BlockKey) {}

// TestXZCheckStrictMany: cDecodeXZMany, the check of several xz hits in one
// call into liblzma, refuses each stream TestXZCheckStrict's cDecodeXZ
// refuses, whatever it is batched with, and decodes the good ones among
// them.
func TestXZCheckStrictMany(t *testing.T) {
	if !cgoCompressors {
		t.Skip("no xz encoder without cgo")
	}
	c, err := newCodec(XZ, 0, 128<<10)
	if err != nil {
		t.Fatal(err)
	}
	var raws, goods [][]byte
	for i := range 3 {
		raw := bytes.Repeat(fmt.Appendf(nil, "block %d of the batch\n", i), 200+100*i)
		good, comp, err := c.compress(nil, raw)
		if err != nil || !comp {
			t.Fatal(err, comp)
		}
		raws, goods = append(raws, raw), append(goods, good)
	}
	good := goods[0]
	flipped := bytes.Clone(good)
	flipped[len(flipped)/2] ^= 1
	badCheck := bytes.Clone(good)
	indexSize := (int(binary.LittleEndian.Uint32(good[len(good)-8:])) + 1) * 4
	badCheck[len(good)-12-indexSize-1] ^= 0x80
	for name, src := range map[string][]byte{
		"trailing bytes": append(bytes.Clone(good), 0, 0, 0, 0),
		"truncated":      good[:len(good)-1],
		"flipped bit":    flipped,
		"empty":          nil,
		"block check":    badCheck,
		"two blocks":     xzTwoBlocks(t, raws[0]),
		"other block":    goods[1], // decodes, to another length than max allows
	} {
		jobs := []xzJob{
			{src: goods[1], max: len(raws[1])},
			{src: src, max: len(raws[0])},
			{src: goods[2], max: len(raws[2])},
			{src: goods[0], max: len(raws[0]) - 1}, // longer than max
		}
		cDecodeXZMany(jobs)
		if jobs[1].err == nil {
			t.Errorf("%s: accepted (%d bytes)", name, len(jobs[1].out))
		}
		if jobs[3].err == nil {
			t.Errorf("%s: output longer than max accepted", name)
		}
		if jobs[0].err != nil || !bytes.Equal(jobs[0].out, raws[1]) || jobs[2].err != nil || !bytes.Equal(jobs[2].out, raws[2]) {
			t.Errorf("%s: the good blocks batched with it: %v, %v", name, jobs[0].err, jobs[2].err)
		}
	}
}

// TestCompressAll: blocks given to compressAll together (a compressor's
// batch: hits, wrong and damaged entries, uncompressed entries, misses and
// an empty block) come out as compress gives each alone, wrong entries are
// rejected and replaced, and the xz hits are checked in one call.
func TestCompressAll(t *testing.T) {
	for _, ci := range Compressors() {
		if ci.Comp == CompNone || (!cgoCompressors && ci.Comp != CompNone) {
			continue
		}
		t.Run(ci.Name, func(t *testing.T) {
			c, err := newCodec(ci.Comp, 0, 4096)
			if err != nil {
				t.Fatal(err)
			}
			var raws [][]byte
			for i := range 9 {
				raws = append(raws, bytes.Repeat(fmt.Appendf(nil, "line of block %d\n", i), 120)) // one length: a wrong entry decodes to as many bytes
			}
			raws = append(raws, bytes.Repeat([]byte{0x5a, 0xa5, 0x3c}, 5), nil) // stored uncompressed; empty
			mc := &mapCache{}
			u, err := newBlockCacheUse(mc, c)
			if err != nil {
				t.Fatal(err)
			}
			want := make([]blockJob, len(raws))
			for i, raw := range raws {
				want[i].out, want[i].comp, want[i].err = c.compress(nil, raw)
				if i < 8 || i == 9 {
					k := u.key(raw)
					mc.Put(k, want[i].out, want[i].comp)
				}
			}
			// raws[8] is a miss; entry 1 holds block 2's bytes, entry 3 is
			// damaged, entry 9 (uncompressed) is another block's content.
			k := func(i int) BlockKey { return u.key(raws[i]) }
			mc.m[k(1)] = mc.m[k(2)]
			e := mc.m[k(3)]
			e.stored = bytes.Clone(e.stored)
			e.stored[len(e.stored)-20] ^= 0xff
			mc.m[k(3)] = e
			mc.m[k(9)] = mapEntry{bytes.Repeat([]byte{1}, len(raws[9])), false}
			jobs := make([]blockJob, len(raws))
			for i, raw := range raws {
				jobs[i] = blockJob{dst: make([]byte, 0, 8192), raw: raw}
			}
			u.compressAll(c, jobs)
			for i := range jobs {
				if jobs[i].err != nil || jobs[i].comp != want[i].comp || !bytes.Equal(jobs[i].out, want[i].out) {
					t.Errorf("block %d: got %d bytes comp %v err %v, want %d bytes comp %v", i, len(jobs[i].out), jobs[i].comp, jobs[i].err, len(want[i].out), want[i].comp)
				}
			}
			if u.hits != 6 || u.rejections != 3 || u.misses != 4 || mc.rejected != 3 {
				t.Errorf("hits %d, rejections %d (cache told %d), misses %d; want 6, 3, 4", u.hits, u.rejections, mc.rejected, u.misses)
			}
			if wantCalls := map[bool]int{true: 1, false: 0}[ci.Comp == XZ]; u.xzCalls != wantCalls {
				t.Errorf("%d calls of cDecodeXZMany, want %d", u.xzCalls, wantCalls)
			}
			// the rejected entries were replaced: a second batch only hits
			for i := range jobs {
				jobs[i] = blockJob{dst: make([]byte, 0, 8192), raw: raws[i]}
			}
			u.compressAll(c, jobs)
			if u.hits != 6+10 || u.rejections != 3 {
				t.Errorf("second batch: hits %d, rejections %d", u.hits, u.rejections)
			}
		})
	}
}

// TestTakeQueued: a compressor takes what is queued, up to the batch size,
// never waiting, and leaves the other compressors their share.
func TestTakeQueued(t *testing.T) {
	for _, tc := range []struct{ queued, max, workers, want int }{
		{0, 4, 2, 1},
		{1, 4, 2, 1}, // the one left is the other worker's
		{2, 4, 2, 2},
		{5, 4, 2, 3},
		{20, 4, 2, 4},
		{3, 4, 1, 4},
		{2, 4, 1, 3},
		{20, 1, 2, 1},
	} {
		ch := make(chan int, 32)
		for i := range tc.queued {
			ch <- i + 1
		}
		got := takeQueued(ch, []int{0}, tc.max, tc.workers)
		if len(got) != tc.want || len(ch) != tc.queued-(tc.want-1) {
			t.Errorf("%d queued, max %d, %d workers: took %v, %d left; want %d in all", tc.queued, tc.max, tc.workers, got, len(ch), tc.want)
		}
		for i, v := range got {
			if v != i {
				t.Errorf("%d queued: took %v, not in queue order", tc.queued, got)
				break
			}
		}
	}
	ch := make(chan int, 4)
	ch <- 1
	close(ch)
	if got := takeQueued(ch, []int{0}, 4, 1); len(got) != 2 {
		t.Errorf("closed queue: took %v", got)
	}
}
