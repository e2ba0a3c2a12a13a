//go:build cgo

package xzdec

/*
#cgo CFLAGS: -I${SRCDIR}/upstream/src/liblzma/api -I${SRCDIR}/upstream/src/liblzma/common -I${SRCDIR}/upstream/src/liblzma/check
#cgo CFLAGS: -I${SRCDIR}/upstream/src/liblzma/lz -I${SRCDIR}/upstream/src/liblzma/lzma -I${SRCDIR}/upstream/src/liblzma/rangecoder
#cgo CFLAGS: -I${SRCDIR}/upstream/src/liblzma/delta -I${SRCDIR}/upstream/src/liblzma/simple -I${SRCDIR}/upstream/src/common
#include "xzdec_config.h"
#include "lzma.h"

// xzdec_job is one stream for xzdec_many: out is the length decoded into
// dst, or -1.
typedef struct {
	const void *src;
	size_t n;
	void *dst;
	size_t cap;
	long out;
} xzdec_job;

// xzdec_many decodes each job's stream, which must span all its n bytes and
// decode to at most cap bytes, with the decoder's memory limited to mem;
// flags are lzma_stream_buffer_decode's.
static void xzdec_many(uint64_t mem, uint32_t flags, xzdec_job *jobs, int k) {
	for (int i = 0; i < k; i++) {
		xzdec_job *j = &jobs[i];
		uint64_t m = mem;
		size_t in = 0, out = 0;
		lzma_ret r = lzma_stream_buffer_decode(&m, flags, NULL, j->src, &in, j->n, j->dst, &out, j->cap);
		j->out = (r == LZMA_OK && in == j->n) ? (long)out : -1;
	}
}

static const char *xzdec_version(void) { return lzma_version_string(); }
*/
import "C"

import (
	"runtime"
	"unsafe"
)

// Job is one .xz stream for DecodeAll.
type Job struct {
	Src []byte // the whole stream: trailing bytes are an error
	Dst []byte // decoded into, at most len(Dst) bytes
	N   int    // set by DecodeAll: the length decoded into Dst, or -1
}

// DecodeAll decodes every job's stream, in one call into C (a call per
// 128 KiB block, about 1 ms, is long enough for the Go scheduler to hand the
// caller's processor to another thread). A job's N is -1 when its stream is
// damaged, does not end at the end of Src, decodes to more than len(Dst)
// bytes or needs more than memLimit bytes of decoder memory. With
// ignoreCheck, the stream's check (CRC32, CRC64, SHA-256) is not computed
// or compared (the caller checks the output); the headers' and the index's
// CRC32s still are.
func DecodeAll(jobs []Job, memLimit uint64, ignoreCheck bool) {
	cj := make([]C.xzdec_job, 0, len(jobs))
	at := make([]int, 0, len(jobs))
	var pin runtime.Pinner // C reads Src and writes Dst through cj
	defer pin.Unpin()
	for i := range jobs {
		j := &jobs[i]
		j.N = -1
		if len(j.Src) == 0 || len(j.Dst) == 0 {
			continue
		}
		pin.Pin(&j.Src[0])
		pin.Pin(&j.Dst[0])
		cj = append(cj, C.xzdec_job{src: unsafe.Pointer(&j.Src[0]), n: C.size_t(len(j.Src)), dst: unsafe.Pointer(&j.Dst[0]), cap: C.size_t(len(j.Dst))})
		at = append(at, i)
	}
	if len(cj) == 0 {
		return
	}
	var flags C.uint32_t
	if ignoreCheck {
		flags = C.LZMA_IGNORE_CHECK
	}
	C.xzdec_many(C.uint64_t(memLimit), flags, &cj[0], C.int(len(cj)))
	for k, i := range at {
		if n := int(cj[k].out); n >= 0 && n <= len(jobs[i].Dst) {
			jobs[i].N = n
		}
	}
}

// Version is the vendored liblzma's version, "5.8.3".
func Version() string { return C.GoString(C.xzdec_version()) }
