//go:build amd64 && cgo

package sha256x2

/*
#include <stddef.h>
#include <stdint.h>
#cgo noescape sha256x2_blocks
#cgo nocallback sha256x2_blocks
int sha256x2_cpu(void);
void sha256x2_blocks(uint32_t *ha, const uint8_t *heada, const uint8_t *pa, size_t na,
		     uint32_t *hb, const uint8_t *headb, const uint8_t *pb, size_t nb);
*/
import "C"

import "unsafe"

// haveCPU reports whether the CPU has SSSE3, SSE4.1 and the SHA extensions.
func haveCPU() bool { return C.sha256x2_cpu() != 0 }

// compress compresses into a's hash value headA (if not nil) and then the
// whole blocks of bodyA, and the same for b if it is not nil, in one cgo
// call: sha256x2_blocks (sha256x2_amd64.c) interleaves the two streams
// while both have blocks.
func compress(a *Digest, headA *[blockSize]byte, bodyA []byte, b *Digest, headB *[blockSize]byte, bodyB []byte) {
	var hb *C.uint32_t
	if b != nil {
		hb = (*C.uint32_t)(unsafe.Pointer(&b.h[0]))
	}
	C.sha256x2_blocks(
		(*C.uint32_t)(unsafe.Pointer(&a.h[0])), (*C.uint8_t)(unsafe.Pointer(headA)),
		(*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(bodyA))), C.size_t(len(bodyA)/blockSize),
		hb, (*C.uint8_t)(unsafe.Pointer(headB)),
		(*C.uint8_t)(unsafe.Pointer(unsafe.SliceData(bodyB))), C.size_t(len(bodyB)/blockSize))
	if corruptForTest {
		a.h[0] ^= 1
	}
}
