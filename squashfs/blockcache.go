package squashfs

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"runtime/debug"
	"sync"
)

// BlockCache keeps the compressed form of data, fragment and metadata blocks
// across builds (Options.Cache), so a rebuild compresses only the blocks whose
// content changed. The Writer asks for a block by its BlockKey and checks
// every answer by decompressing it and comparing it with the block's
// content: an entry that does not decompress to exactly that content is
// never written into an image, it is compressed again and stored anew. A
// cache that fails (unreadable, unwritable, full) only makes the build
// cold: its methods return no errors, and the image never depends on them.
// Methods are called from several goroutines at once.
type BlockCache interface {
	// Get returns the stored bytes of the block, in dst's storage when
	// they fit, and whether they are compressed; ok is false on a miss.
	Get(key BlockKey, dst []byte) (stored []byte, compressed, ok bool)
	// Put stores what the block compressed to (stored is the content
	// itself when compressed is false). It may keep nothing.
	Put(key BlockKey, stored []byte, compressed bool)
	// Reject tells the cache that its entry for key did not decompress to
	// the block's content (the Writer then Puts a fresh one).
	Reject(key BlockKey)
}

// BlockKey names a block's compressed form: the block's CRC-32C, its
// CRC-32 (IEEE) and its length, then the first 20 bytes of the SHA-256 of
// the codec's identity (CodecIdentity), all little-endian.
//
// The key only finds an entry; it does not prove it. Every entry a key
// finds is decompressed and compared with the block byte for byte before it
// is used (blockCacheUse.check), so two blocks sharing a key (a collision of
// both CRCs at the same length, by chance or made on purpose) cost a
// compression and an overwritten entry, never a wrong image. A
// cryptographic hash of the content would add nothing but time: it was a
// SHA-256 of every block on top of the IMA SHA-256 of the same bytes, 3% of
// the CPU of a warm xz rebuild of the Go tree; the two CRCs (carry-less
// multiplication and the SSE4.2 instruction on amd64) take a tenth of that.
// The codec's identity is a SHA-256, computed once per Writer: entries of
// another compressor, level or library version are never even looked at.
type BlockKey [32]byte

// CodecIdentity is everything that decides the bytes a block compresses to:
// the compressor, its effective level, the block size, the options record
// and the implementation with its version (the cgo build's C libraries and
// the pure-Go build's packages compress differently).
func (w *Writer) CodecIdentity() string { return w.codec.identity() }

func (c *codec) identity() string {
	name := c.comp.String()
	if ci, ok := CompressorInfoOf(c.comp); ok {
		name = ci.Name
	}
	return fmt.Sprintf("%s level %d, block size %d, options %x, %s", name, c.level, c.blockSize, c.options(), codecImpl(c.comp))
}

// moduleVersion is the version of module path linked into this binary, ""
// if unknown.
func moduleVersion(path string) string {
	moduleVersions.once.Do(func() {
		moduleVersions.m = map[string]string{}
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, d := range bi.Deps {
				if d.Replace != nil {
					d = d.Replace
				}
				moduleVersions.m[d.Path] = d.Version + " " + d.Sum
			}
		}
	})
	return moduleVersions.m[path]
}

var moduleVersions struct {
	once sync.Once
	m    map[string]string
}

// blockCacheUse joins a Writer's codec with its BlockCache: it makes the
// keys and checks what the cache returns.
type blockCacheUse struct {
	cache  BlockCache
	ident  [20]byte // SHA-256("imaforge block v2\n" + identity)[:20]
	dec    *decompressor
	decBuf sync.Pool

	mu                       sync.Mutex
	hits, misses, rejections int
	xzCalls                  int // cDecodeXZMany calls (tests)
}

func newBlockCacheUse(cache BlockCache, c *codec) (*blockCacheUse, error) {
	if cache == nil || c.comp == CompNone {
		return nil, nil
	}
	dec, err := newDecompressor(c.comp, nil)
	if err != nil {
		return nil, err
	}
	dec.cxz = c.comp == XZ && cgoCompressors
	u := &blockCacheUse{cache: cache, dec: dec}
	id := sha256.Sum256([]byte("imaforge block v2\n" + c.identity()))
	copy(u.ident[:], id[:])
	u.decBuf.New = func() any { return make([]byte, 0, c.blockSize+1) }
	return u, nil
}

// castagnoli is the CRC-32C table (hash/crc32 uses the SSE4.2 or ARMv8
// CRC instructions for it where they exist).
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// key is raw's BlockKey (see there why CRCs suffice).
func (u *blockCacheUse) key(raw []byte) BlockKey {
	var k BlockKey
	binary.LittleEndian.PutUint32(k[0:], crc32.Checksum(raw, castagnoli))
	binary.LittleEndian.PutUint32(k[4:], crc32.ChecksumIEEE(raw))
	binary.LittleEndian.PutUint32(k[8:], uint32(len(raw)))
	copy(k[12:], u.ident[:])
	return k
}

// compress is codec.compress answered from the cache when it holds an entry
// that decompresses to raw. Data, fragment and metadata blocks (the inode,
// directory, xattr and lookup tables' 8 KiB units) all go through it. A nil
// u (no cache) is codec.compress.
func (u *blockCacheUse) compress(c *codec, dst, raw []byte) ([]byte, bool, error) {
	if u == nil || len(raw) == 0 {
		return c.compress(dst, raw)
	}
	j := [1]blockJob{{dst: dst, raw: raw}}
	u.compressAll(c, j[:])
	return j[0].out, j[0].comp, j[0].err
}

// blockJob is one block for compressAll: raw compressed (or answered from
// the cache) into dst's storage; out, comp and err are compress's results.
type blockJob struct {
	dst, raw []byte
	out      []byte
	comp     bool
	err      error

	key    BlockKey
	stored []byte // the cache's entry (found), checked when hit
	found  bool
	hit    bool
}

// maxBatch is how many blocks a compressor takes from its queue at once
// when batches says so (compressAll checks them in one call into liblzma).
const maxBatch = 4

// batches reports whether compressAll gains from several blocks at once:
// the xz checks of their hits go into C together (cDecodeXZMany).
func (u *blockCacheUse) batches() bool { return u != nil && u.dec.cxz }

// compressAll is compress of every job; the xz hits among them are checked
// in one call (cDecodeXZMany). Each job's results are those compress gives.
func (u *blockCacheUse) compressAll(c *codec, jobs []blockJob) {
	if u == nil {
		for i := range jobs {
			j := &jobs[i]
			j.out, j.comp, j.err = c.compress(j.dst, j.raw)
		}
		return
	}
	hits := 0
	for i := range jobs {
		j := &jobs[i]
		if len(j.raw) == 0 {
			continue
		}
		j.key = u.key(j.raw)
		var comp bool
		if j.stored, comp, j.found = u.cache.Get(j.key, j.dst); j.found {
			j.comp, j.hit = comp, true
			hits++
		}
	}
	if hits > 1 && u.dec.cxz {
		u.checkXZ(jobs)
	} else {
		for i := range jobs {
			if j := &jobs[i]; j.hit {
				j.hit = u.check(j.raw, j.stored, j.comp)
			}
		}
	}
	for i := range jobs {
		j := &jobs[i]
		switch {
		case len(j.raw) == 0:
			j.out, j.comp, j.err = c.compress(j.dst, j.raw)
			continue
		case j.hit:
			u.count(&u.hits)
			j.out = j.stored
			if !j.comp {
				j.out = j.raw
			}
			continue
		case j.found:
			u.cache.Reject(j.key)
			u.count(&u.rejections)
		}
		u.count(&u.misses)
		j.out, j.comp, j.err = c.compress(j.dst, j.raw)
		if j.err != nil {
			j.out, j.comp = nil, false
			continue
		}
		u.cache.Put(j.key, j.out, j.comp)
	}
}

// checkXZ is check of the jobs' hits with liblzma, in one call: each hit
// stays one only if its entry decompresses to its block.
func (u *blockCacheUse) checkXZ(jobs []blockJob) {
	xj := make([]xzJob, 0, len(jobs))
	at := make([]int, 0, len(jobs))
	for i := range jobs {
		j := &jobs[i]
		if !j.hit {
			continue
		}
		if !j.comp || len(j.stored) >= len(j.raw) {
			j.hit = u.check(j.raw, j.stored, j.comp)
			continue
		}
		xj = append(xj, xzJob{dst: u.decBuf.Get().([]byte), src: j.stored, max: len(j.raw)})
		at = append(at, i)
	}
	if len(xj) == 0 {
		return
	}
	cDecodeXZMany(xj)
	u.count(&u.xzCalls)
	for k, i := range at {
		j := &jobs[i]
		j.hit = xj[k].err == nil && bytes.Equal(xj[k].out, j.raw)
		buf := xj[k].dst
		if xj[k].err == nil {
			buf = xj[k].out
		}
		u.decBuf.Put(buf[:0])
	}
}

// check reports whether a cached block decompresses to raw (and is smaller
// than it, as a compressed block must be).
func (u *blockCacheUse) check(raw, stored []byte, comp bool) bool {
	if !comp {
		return bytes.Equal(stored, raw)
	}
	if len(stored) >= len(raw) {
		return false
	}
	buf := u.decBuf.Get().([]byte)
	got, err := u.dec.decompress(buf, stored, len(raw))
	ok := err == nil && bytes.Equal(got, raw)
	if err == nil {
		buf = got
	}
	u.decBuf.Put(buf[:0])
	return ok
}

func (u *blockCacheUse) count(n *int) {
	u.mu.Lock()
	*n++
	u.mu.Unlock()
}
