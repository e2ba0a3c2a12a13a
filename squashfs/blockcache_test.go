package squashfs

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
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
