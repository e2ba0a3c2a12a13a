//go:build cgo

package squashfs

/*
#cgo LDFLAGS: -ldeflate -llzma -llz4
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <libdeflate.h>
#include <lzma.h>
#include <lz4.h>
#include <lz4hc.h>

// sq_deflate compresses one block into a zlib stream (RFC 1950, what
// squashfs-tools' gzip_wrapper.c writes and every squashfs reader inflates)
// with libdeflate's compressor c (one whole buffer in one call, no stream
// state to reset); returns the length, or 0 when it does not fit in cap
// (incompressible).
static long sq_deflate(struct libdeflate_compressor *c, const void *src, size_t n, void *dst, size_t cap) {
	return (long)libdeflate_zlib_compress(c, src, n, dst, cap);
}

// sq_deflate_version is libdeflate's version from its header: libdeflate
// (1.14) has no call that reports the version of the library loaded.
static const char *sq_deflate_version(void) { return LIBDEFLATE_VERSION_STRING; }

// sq_xz_cache keeps the memory liblzma frees at the end of one block's
// encoding for the next block of the same encoder (an lzma_allocator whose
// opaque it is). lzma_stream_buffer_encode allocates its whole encoder per
// call (about 1.6 MiB for a 128 KiB dictionary) and frees it on return;
// with malloc's own allocator each block got fresh pages from the kernel
// (glibc returns a thread arena's top to it with madvise): 13% of the CPU
// of xz, in page faults and zeroing, for mksquashfs as much as for us.
// liblzma asks for the same sizes for every block and zeroes what it needs
// zeroed itself (lzma_alloc_zero), so the bytes it writes do not depend on
// where its memory comes from. One encoder uses it at a time.
#define SQ_XZ_KEEP 32
typedef struct {
	lzma_allocator a;
	int n;
	size_t size[SQ_XZ_KEEP];
	void *mem[SQ_XZ_KEEP];
} sq_xz_cache;

// Every block carries its size in a 16-byte header (malloc's alignment).
static void *sq_xz_alloc(void *opaque, size_t nmemb, size_t size) {
	sq_xz_cache *c = opaque;
	if (size != 0 && nmemb > ((size_t)-1 - 16) / size) return NULL;
	size_t want = nmemb * size;
	for (int i = c->n - 1; i >= 0; i--) {
		if (c->size[i] == want) {
			void *m = c->mem[i];
			c->n--;
			c->size[i] = c->size[c->n];
			c->mem[i] = c->mem[c->n];
			return (char *)m + 16;
		}
	}
	size_t *m = malloc(want + 16);
	if (m == NULL) return NULL;
	m[0] = want;
	return (char *)m + 16;
}

static void sq_xz_free(void *opaque, void *ptr) {
	sq_xz_cache *c = opaque;
	if (ptr == NULL) return;
	size_t *m = (size_t *)((char *)ptr - 16);
	if (c->n == SQ_XZ_KEEP) { free(m); return; }
	c->size[c->n] = m[0];
	c->mem[c->n] = m;
	c->n++;
}

static sq_xz_cache *sq_xz_cache_new(void) {
	sq_xz_cache *c = calloc(1, sizeof *c);
	if (c == NULL) return NULL;
	c->a.alloc = sq_xz_alloc;
	c->a.free = sq_xz_free;
	c->a.opaque = c;
	return c;
}

static void sq_xz_cache_free(sq_xz_cache *c) {
	for (int i = 0; i < c->n; i++) free(c->mem[i]);
	free(c);
}

// sq_xz compresses one block as squashfs-tools' xz_wrapper.c does by default:
// one .xz stream, LZMA2 at preset 6 with the dictionary set to dict, CRC32;
// liblzma's memory comes from cache (NULL: malloc).
static long sq_xz(sq_xz_cache *cache, uint32_t dict, const void *src, size_t n, void *dst, size_t cap) {
	lzma_options_lzma opt;
	if (lzma_lzma_preset(&opt, LZMA_PRESET_DEFAULT)) return -1;
	opt.dict_size = dict;
	lzma_filter filters[2] = {{ .id = LZMA_FILTER_LZMA2, .options = &opt }, { .id = LZMA_VLI_UNKNOWN, .options = NULL }};
	size_t pos = 0;
	lzma_ret r = lzma_stream_buffer_encode(filters, LZMA_CHECK_CRC32, cache != NULL ? &cache->a : NULL, src, n, dst, &pos, cap);
	if (r == LZMA_OK) return (long)pos;
	if (r == LZMA_BUF_ERROR) return 0;
	return -1;
}

// sq_lz4 makes a raw LZ4 block as lz4_wrapper.c does: LZ4_compress_default,
// or, when hc > 0, LZ4_compress_HC at level hc. Returns 0 when it does not
// fit. For HC, hcState is the encoder's own LZ4_streamHC_t
// (sq_lz4_hc_state_new): LZ4_compress_HC is LZ4_compress_HC_extStateHC on
// a state it allocates (256 KiB, malloc'd and freed per call) and resets
// first, so keeping the state gives the same bytes without the allocation.
static long sq_lz4(int hc, void *hcState, const void *src, int n, void *dst, int cap) {
	if (hc > 0) return LZ4_compress_HC_extStateHC(hcState, src, dst, n, cap, hc);
	return LZ4_compress_default(src, dst, n, cap);
}

// sq_lz4_hc_state_new allocates an LZ4 HC state (malloc's alignment is the
// alignment LZ4_initStreamHC asks for).
static void *sq_lz4_hc_state_new(void) { return malloc((size_t)LZ4_sizeofStateHC()); }

// ZSTD_versionNumber is libzstd's (zstd.h), linked in by github.com/DataDog/zstd.
unsigned ZSTD_versionNumber(void);

static unsigned sq_zstd_version(void) { return ZSTD_versionNumber(); }

// sq_object names the object (the executable, or a shared library) that
// holds the code at fn, to tell a statically linked library from a shared one.
static const char *sq_object(const void *fn) {
	Dl_info info;
	if (dladdr(fn, &info) == 0 || info.dli_fname == NULL) return "";
	return info.dli_fname;
}

static const char *sq_object_of(int lib) {
	switch (lib) {
	case 0: return sq_object((const void *)sq_object);
	case 1: return sq_object((const void *)libdeflate_zlib_compress);
	case 2: return sq_object((const void *)ZSTD_versionNumber);
	case 3: return sq_object((const void *)lzma_version_string);
	case 4: return sq_object((const void *)LZ4_versionString);
	}
	return "";
}
*/
import "C"

import (
	"errors"
	"fmt"
	"hash/crc32"
	"path/filepath"
	"runtime"
	"unsafe"

	datadog "github.com/DataDog/zstd"

	"github.com/imaforge/imaforge/internal/xzdec"
)

// With cgo, blocks are compressed by C libraries: the ones mksquashfs uses
// (liblzma, and libzstd bundled with github.com/DataDog/zstd, so no system
// zstd package is needed; liblz4), with mksquashfs's settings, so at the same
// level the images are as small as mksquashfs's; and for gzip libdeflate,
// whose zlib streams are smaller than zlib's (mksquashfs's) at each level
// and take less than half the time. The pure-Go compressors
// (klauspost/compress, ulikunitz/xz; used without cgo) make larger images.
// Reading images is pure Go in both builds; only the block cache's check of
// its own xz entries uses liblzma: the decoder of liblzma 5.8.3 vendored in
// internal/xzdec (cDecodeXZ), not the system's, which compresses.
const cgoCompressors = true

// EncoderOf names the C library that compresses comp's blocks, its version
// as the library reports it at run time, and whether it is linked into the
// executable or loaded from a shared library. CompNone gives the zero
// Encoder.
func EncoderOf(comp Compression) (Encoder, error) {
	var e Encoder
	var lib C.int
	switch comp {
	case CompNone:
		return Encoder{}, nil
	case Gzip:
		e, lib = Encoder{Library: "libdeflate", Version: C.GoString(C.sq_deflate_version())}, 1
	case Zstd:
		v := uint(C.sq_zstd_version())
		e, lib = Encoder{Library: "libzstd", Version: fmt.Sprintf("%d.%d.%d", v/10000, v/100%100, v%100)}, 2
	case XZ:
		e, lib = Encoder{Library: "liblzma", Version: C.GoString(C.lzma_version_string())}, 3
	case LZ4:
		e, lib = Encoder{Library: "liblz4", Version: C.GoString(C.LZ4_versionString())}, 4
	default:
		return Encoder{}, fmt.Errorf("%w: %v", ErrUnsupportedCompression, comp)
	}
	e.Linkage = "static"
	if obj := C.GoString(C.sq_object_of(lib)); obj != C.GoString(C.sq_object_of(0)) {
		e.Linkage = "shared " + filepath.Base(obj)
	}
	return e, nil
}

type cZstdEncoder struct {
	ctx   datadog.Ctx
	level int
}

func newZstdEncoder(level, blockSize int) (blockEncoder, error) {
	return &cZstdEncoder{ctx: datadog.NewCtx(), level: level}, nil
}

func (e *cZstdEncoder) encode(dst, src []byte) ([]byte, error) {
	return e.ctx.CompressLevel(dst, src, e.level)
}

// cDeflateEncoder writes zlib streams with libdeflate at its level: on the
// Go tree, the 50,000 small files and the large files, at levels 1, 6 and 9,
// 0.39-0.60 times the CPU of zlib's deflate (deflateInit2 as mksquashfs
// calls it), and 0.16-5.1% fewer bytes (docs/build.md). Its compressor is
// freed when the encoder is collected.
type cDeflateEncoder struct {
	c *C.struct_libdeflate_compressor
}

func newGzipEncoder(level int) (blockEncoder, error) {
	c := C.libdeflate_alloc_compressor(C.int(level))
	if c == nil {
		return nil, errors.New("libdeflate: cannot allocate a compressor")
	}
	e := &cDeflateEncoder{c: c}
	runtime.AddCleanup(e, func(c *C.struct_libdeflate_compressor) { C.libdeflate_free_compressor(c) }, c)
	return e, nil
}

func (e *cDeflateEncoder) encode(dst, src []byte) ([]byte, error) {
	if cap(dst) < len(src) {
		dst = make([]byte, len(src))
	}
	dst = dst[:len(src)]
	n := C.sq_deflate(e.c, unsafe.Pointer(&src[0]), C.size_t(len(src)), unsafe.Pointer(&dst[0]), C.size_t(len(dst)))
	runtime.KeepAlive(e)
	if n <= 0 {
		return src, nil // does not shrink: stored
	}
	return dst[:n], nil
}

// cXZEncoder keeps liblzma's memory from one block to the next
// (sq_xz_cache), freed when the encoder is collected.
type cXZEncoder struct {
	dict  int
	cache *C.sq_xz_cache
}

func newXZBlockEncoder(blockSize int) (blockEncoder, error) {
	c := C.sq_xz_cache_new()
	if c == nil {
		return nil, errors.New("xz: out of memory")
	}
	e := &cXZEncoder{dict: blockSize, cache: c}
	runtime.AddCleanup(e, func(c *C.sq_xz_cache) { C.sq_xz_cache_free(c) }, c)
	return e, nil
}

func (e *cXZEncoder) encode(dst, src []byte) ([]byte, error) {
	if cap(dst) < len(src) {
		dst = make([]byte, len(src))
	}
	dst = dst[:len(src)]
	n := C.sq_xz(e.cache, C.uint32_t(e.dict), unsafe.Pointer(&src[0]), C.size_t(len(src)), unsafe.Pointer(&dst[0]), C.size_t(len(dst)))
	runtime.KeepAlive(e)
	switch {
	case n < 0:
		return nil, errors.New("xz: lzma_stream_buffer_encode failed")
	case n == 0:
		return src, nil
	}
	return dst[:n], nil
}

// cLZ4Encoder compresses with LZ4_compress_default (hc 0) or at HC level
// hc in its own HC state (kept from one block to the next, freed when the
// encoder is collected).
type cLZ4Encoder struct {
	hc    int
	state unsafe.Pointer // LZ4_streamHC_t, when hc > 0
}

func newLZ4BlockEncoder(level int) (blockEncoder, error) {
	e := &cLZ4Encoder{hc: level} // 0: LZ4_compress_default
	if level > 0 {
		if e.state = C.sq_lz4_hc_state_new(); e.state == nil {
			return nil, errors.New("lz4: out of memory")
		}
		runtime.AddCleanup(e, func(p unsafe.Pointer) { C.free(p) }, e.state)
	}
	return e, nil
}

func (e *cLZ4Encoder) encode(dst, src []byte) ([]byte, error) {
	if cap(dst) < len(src) {
		dst = make([]byte, len(src))
	}
	dst = dst[:len(src)]
	n := C.sq_lz4(C.int(e.hc), e.state, unsafe.Pointer(&src[0]), C.int(len(src)), unsafe.Pointer(&dst[0]), C.int(len(dst)))
	runtime.KeepAlive(e)
	if n <= 0 {
		return src, nil // does not shrink: stored
	}
	return dst[:n], nil
}

// cDecodeXZ decompresses one xz block with internal/xzdec (liblzma 5.8.3's
// decoder; 5.4.1's was 3-4 times faster than ulikunitz/xz, 5.8.3's 1.5
// times faster than 5.4.1's) into dst[:0]: the whole of src must be one
// stream of one block with a CRC32 check that gives at most max bytes.
// Used by the block cache to check its hits. liblzma checks the stream's
// headers, its index against the block and the index's own CRC32; the
// block's CRC32 is checked here with hash/crc32 (carry-less multiplication
// on amd64 and arm64), which takes a tenth of the time liblzma's
// table-driven lzma_crc32 takes (2% of the CPU of an xz rebuild from the
// cache; the vendored decoder is built without its CLMUL CRC code).
func cDecodeXZ(dst, src []byte, max int) ([]byte, error) {
	check, ok := xzSingleBlockCRC32(src)
	if !ok {
		return nil, errXZDecode
	}
	out, err := unxz(dst, src, max, true)
	if err != nil {
		return nil, err
	}
	if crc32.ChecksumIEEE(out) != check {
		return nil, errXZDecode
	}
	return out, nil
}

// cDecodeXZMany is cDecodeXZ of every job, all in one call into C. A call
// of cDecodeXZ for each xz hit of the block cache (2 ms for a 128 KiB block)
// was long enough for the Go scheduler to hand its P to another thread
// (sysmon's retake, after 20 us), and back when it returned: thousands of
// hand-offs and thread wake-ups per rebuild, and sysmon polling every 20 us
// all along. One call for several blocks makes as many fewer.
func cDecodeXZMany(jobs []xzJob) {
	xj := make([]xzdec.Job, 0, len(jobs))
	checks := make([]uint32, 0, len(jobs))
	idx := make([]int, 0, len(jobs))
	for i := range jobs {
		j := &jobs[i]
		j.out, j.err = nil, errXZDecode
		check, ok := xzSingleBlockCRC32(j.src)
		if !ok || j.max <= 0 {
			continue
		}
		if cap(j.dst) < j.max {
			j.dst = make([]byte, j.max)
		}
		j.dst = j.dst[:j.max]
		xj = append(xj, xzdec.Job{Src: j.src, Dst: j.dst})
		checks = append(checks, check)
		idx = append(idx, i)
	}
	if len(xj) == 0 {
		return
	}
	xzdec.DecodeAll(xj, xzMemLimit, true)
	for k, i := range idx {
		j := &jobs[i]
		if n := xj[k].N; n >= 0 && crc32.ChecksumIEEE(j.dst[:n]) == checks[k] {
			j.out, j.err = j.dst[:n], nil
		}
	}
}

// xzMemLimit bounds the decoder's memory: a block's dictionary is at most
// MaxBlockSize, and the decoder needs about that plus its fixed state.
const xzMemLimit = 4 * MaxBlockSize

// cDecodeXZLiblzma is cDecodeXZ with liblzma checking the block's CRC32 as
// well (the tests compare the two).
func cDecodeXZLiblzma(dst, src []byte, max int) ([]byte, error) {
	return unxz(dst, src, max, false)
}

func unxz(dst, src []byte, max int, ignoreCheck bool) ([]byte, error) {
	if len(src) == 0 || max <= 0 {
		return nil, errXZDecode
	}
	if cap(dst) < max {
		dst = make([]byte, max)
	}
	j := [1]xzdec.Job{{Src: src, Dst: dst[:max]}}
	xzdec.DecodeAll(j[:], xzMemLimit, ignoreCheck)
	if j[0].N < 0 {
		return nil, errXZDecode
	}
	return dst[:j[0].N], nil
}

// cachedBlocks is how many blocks of liblzma memory e keeps for its next
// block (tests).
func (e *cXZEncoder) cachedBlocks() int { return int(e.cache.n) }
