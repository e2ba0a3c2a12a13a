//go:build cgo

package squashfs

/*
#include <stddef.h>

// libzstd's streaming API (zstd.h, stable since 1.4.0; the numbers are its
// enum values), linked in by github.com/DataDog/zstd as in compress_cgo.go.
typedef struct ZSTD_CCtx_s ZSTD_CCtx;
typedef struct { const void *src; size_t size; size_t pos; } ZSTD_inBuffer;
typedef struct { void *dst; size_t size; size_t pos; } ZSTD_outBuffer;
ZSTD_CCtx *ZSTD_createCCtx(void);
size_t ZSTD_freeCCtx(ZSTD_CCtx *cctx);
size_t ZSTD_CCtx_setParameter(ZSTD_CCtx *cctx, int param, int value);
size_t ZSTD_compressStream2(ZSTD_CCtx *cctx, ZSTD_outBuffer *out, ZSTD_inBuffer *in, int endOp);
unsigned ZSTD_isError(size_t code);
const char *ZSTD_getErrorName(size_t code);

enum {
	sq_c_compressionLevel = 100, // ZSTD_c_compressionLevel
	sq_c_checksumFlag = 201,     // ZSTD_c_checksumFlag
	sq_c_nbWorkers = 400,        // ZSTD_c_nbWorkers
	sq_e_continue = 0,           // ZSTD_e_continue
	sq_e_end = 2,                // ZSTD_e_end
};

// sq_zstd_stream_new makes a compression context for one frame at level,
// with the content checksum, on workers threads of libzstd's own (0: in the
// caller's thread). It returns NULL and the error code in *err on failure.
static ZSTD_CCtx *sq_zstd_stream_new(int level, int workers, size_t *err) {
	ZSTD_CCtx *c = ZSTD_createCCtx();
	if (c == NULL) { *err = (size_t)-1; return NULL; }
	size_t r = ZSTD_CCtx_setParameter(c, sq_c_compressionLevel, level);
	if (!ZSTD_isError(r)) r = ZSTD_CCtx_setParameter(c, sq_c_checksumFlag, 1);
	if (!ZSTD_isError(r) && workers > 0) r = ZSTD_CCtx_setParameter(c, sq_c_nbWorkers, workers);
	if (ZSTD_isError(r)) { ZSTD_freeCCtx(c); *err = r; return NULL; }
	return c;
}

// sq_zstd_stream is one ZSTD_compressStream2 call on src[*in_pos:n] into
// dst[0:cap]; it advances *in_pos and sets *out_len. It returns what
// ZSTD_compressStream2 returns (an error code, or for sq_e_end the bytes
// still to flush).
static size_t sq_zstd_stream(ZSTD_CCtx *c, const void *src, size_t n, size_t *in_pos,
		void *dst, size_t cap, size_t *out_len, int end) {
	ZSTD_inBuffer in = { src, n, *in_pos };
	ZSTD_outBuffer out = { dst, cap, 0 };
	size_t r = ZSTD_compressStream2(c, &out, &in, end ? sq_e_end : sq_e_continue);
	*in_pos = in.pos;
	*out_len = out.pos;
	return r;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"unsafe"
)

// zstdStreamOut is the output buffer: at least ZSTD_CStreamOutSize (a
// block and its header), so each call can flush a whole block. zstdStreamIn
// is the input buffer: writes are copied into it, since cgo may not be
// handed memory that holds Go pointers (archive/tar writes its header
// blocks from inside its Writer), and small writes (tar headers) make one
// call per buffer rather than one each.
const (
	zstdStreamOut = 256 << 10
	zstdStreamIn  = 256 << 10
)

// zstdStream is a NewZstdStream writer over libzstd's ZSTD_compressStream2.
type zstdStream struct {
	w       io.Writer
	ctx     *C.ZSTD_CCtx
	in, out []byte
	err     error
}

// newZstdStream returns the writer of NewZstdStream in the cgo build.
func newZstdStream(w io.Writer, level, threads int) (io.WriteCloser, error) {
	var code C.size_t
	ctx := C.sq_zstd_stream_new(C.int(level), C.int(threads), &code)
	if ctx == nil {
		return nil, fmt.Errorf("squashfs: zstd stream: %s", zstdErrorName(code))
	}
	z := &zstdStream{w: w, ctx: ctx, in: make([]byte, 0, zstdStreamIn), out: make([]byte, zstdStreamOut)}
	// A stream that is never closed (a failed build) still frees its
	// context and stops libzstd's threads.
	runtime.SetFinalizer(z, (*zstdStream).free)
	return z, nil
}

func zstdErrorName(code C.size_t) string {
	if code == ^C.size_t(0) {
		return "out of memory"
	}
	return C.GoString(C.ZSTD_getErrorName(code))
}

// compress passes the buffered input to libzstd (and ends the frame when
// end is set), writing what it makes to the destination, until libzstd has
// taken all of it (and, when end is set, flushed the frame).
func (z *zstdStream) compress(end bool) error {
	e := C.int(0)
	if end {
		e = 1
	}
	in := z.in
	var src unsafe.Pointer
	if len(in) > 0 {
		src = unsafe.Pointer(unsafe.SliceData(in))
	}
	pos := C.size_t(0)
	for {
		var n C.size_t
		r := C.sq_zstd_stream(z.ctx, src, C.size_t(len(in)), &pos, unsafe.Pointer(unsafe.SliceData(z.out)), C.size_t(len(z.out)), &n, e)
		if C.ZSTD_isError(r) != 0 {
			return fmt.Errorf("squashfs: zstd stream: %s", zstdErrorName(r))
		}
		if n > 0 {
			if _, err := z.w.Write(z.out[:n]); err != nil {
				return err
			}
		}
		if int(pos) == len(in) && (!end || r == 0) {
			break
		}
	}
	z.in = z.in[:0]
	runtime.KeepAlive(z)
	return nil
}

func (z *zstdStream) Write(p []byte) (int, error) {
	if z.err != nil {
		return 0, z.err
	}
	written := 0
	for len(p) > 0 {
		n := min(len(p), cap(z.in)-len(z.in))
		z.in = append(z.in, p[:n]...)
		p, written = p[n:], written+n
		if len(z.in) == cap(z.in) {
			if z.err = z.compress(false); z.err != nil {
				return written, z.err
			}
		}
	}
	return written, nil
}

// errStreamClosed marks a write to a closed stream.
var errStreamClosed = errors.New("squashfs: zstd stream closed")

// Close ends the frame (its checksum), writes the rest and frees the
// context. The buffered input goes first as input to continue with: a
// first call that ends the frame would make libzstd compress in one go and
// record the content size, which a longer stream's frame has not.
func (z *zstdStream) Close() error {
	defer z.free()
	if z.err == errStreamClosed {
		return nil
	}
	if z.err == nil && len(z.in) > 0 {
		z.err = z.compress(false)
	}
	if z.err == nil {
		z.err = z.compress(true)
	}
	if z.err != nil {
		return z.err
	}
	z.err = errStreamClosed
	return nil
}

func (z *zstdStream) free() {
	if z.ctx != nil {
		C.ZSTD_freeCCtx(z.ctx)
		z.ctx = nil
	}
}
