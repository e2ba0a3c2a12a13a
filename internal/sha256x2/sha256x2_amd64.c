//go:build cgo

// SHA-256 block compression (FIPS 180-4, section 6.2.2) with the Intel SHA
// extensions, for one stream or two interleaved. Every function that uses
// them carries SHA_TARGET, so nothing else in the binary is compiled for
// SHA-NI; sha256x2_cpu says whether the CPU has them.
//
// The state of a stream lives in two registers as the sha256rnds2
// instruction wants it: abef holds the working variables a, b, e, f in
// dwords 3, 2, 1, 0 and cdgh holds c, d, g, h the same way. sha256rnds2
// performs two rounds: from cdgh, abef and two message-plus-constant words
// in dwords 0 and 1 it returns the new abef, while the old abef becomes
// the new cdgh.

#include <stddef.h>
#include <stdint.h>
#include <cpuid.h>
#include <immintrin.h>

#define SHA_TARGET __attribute__((target("sha,ssse3,sse4.1")))
#define INLINE static inline __attribute__((always_inline))

// The round constants K0..K63 of FIPS 180-4 section 4.2.2: the first 32
// bits of the fractional parts of the cube roots of the first 64 primes.
static const uint32_t sha256x2_k[64] __attribute__((aligned(16))) = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

// sha256x2_cpu returns 1 if the CPU has SSSE3 and SSE4.1 (cpuid leaf 1, ECX
// bits 9 and 19) and the SHA extensions (leaf 7, subleaf 0, EBX bit 29).
int sha256x2_cpu(void) {
	unsigned int a, b, c, d;
	if (!__get_cpuid(1, &a, &b, &c, &d))
		return 0;
	if (!(c & (1u << 9)) || !(c & (1u << 19)))
		return 0;
	if (__get_cpuid_max(0, NULL) < 7)
		return 0;
	__cpuid_count(7, 0, a, b, c, d);
	return (b & (1u << 29)) != 0;
}

typedef struct {
	__m128i abef, cdgh;
} lane;

SHA_TARGET INLINE lane lane_load(const uint32_t h[8]) {
	lane s;
	// _mm_set_epi32 takes dword 3 first: H0..H7 are a..h.
	s.abef = _mm_set_epi32((int)h[0], (int)h[1], (int)h[4], (int)h[5]);
	s.cdgh = _mm_set_epi32((int)h[2], (int)h[3], (int)h[6], (int)h[7]);
	return s;
}

SHA_TARGET INLINE void lane_store(uint32_t h[8], lane s) {
	uint32_t x[4], y[4];
	_mm_storeu_si128((__m128i *)x, s.abef); // x[3..0] = a, b, e, f
	_mm_storeu_si128((__m128i *)y, s.cdgh); // y[3..0] = c, d, g, h
	h[0] = x[3], h[1] = x[2], h[2] = y[3], h[3] = y[2];
	h[4] = x[1], h[5] = x[0], h[6] = y[1], h[7] = y[0];
}

// load_words returns message words 4i..4i+3 of the block at p: SHA-256
// reads its words big-endian (section 3.1), so each dword's bytes are
// reversed.
SHA_TARGET INLINE __m128i load_words(const uint8_t *p, int i) {
	const __m128i swap = _mm_set_epi8(12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3);
	return _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(p + 16 * i)), swap);
}

// SCHEDULE makes message words 4i..4i+3 (section 6.2.2 step 1, i >= 4) in
// w[i&3], which holds words 4i-16..4i-13 until then; w[(i+1)&3],
// w[(i+2)&3] and w[(i+3)&3] hold the three groups after those. sha256msg1
// adds sigma0 of words t-15 to words t-16, the alignr supplies words t-7,
// and sha256msg2 adds sigma1 of words t-2 (its last two from the group it is
// computing).
#define SCHEDULE(w, i)                                                                 \
	(w)[(i)&3] = _mm_sha256msg2_epu32(                                             \
		_mm_add_epi32(_mm_sha256msg1_epu32((w)[(i)&3], (w)[((i) + 1) & 3]),    \
			      _mm_alignr_epi8((w)[((i) + 3) & 3], (w)[((i) + 2) & 3], 4)), \
		(w)[((i) + 3) & 3])

// ROUNDS4 performs rounds 4i..4i+3 (section 6.2.2 step 3) on lane s with
// message words wi. After the first sha256rnds2 s.cdgh holds the new a, b,
// e, f; the second puts them back in s.abef.
#define ROUNDS4(s, wi, i)                                                                    \
	do {                                                                                 \
		__m128i wk = _mm_add_epi32((wi), _mm_load_si128((const __m128i *)&sha256x2_k[4 * (i)])); \
		(s).cdgh = _mm_sha256rnds2_epu32((s).cdgh, (s).abef, wk);                      \
		(s).abef = _mm_sha256rnds2_epu32((s).abef, (s).cdgh, _mm_shuffle_epi32(wk, 0x0e)); \
	} while (0)

// block1 compresses one block p into lane s.
SHA_TARGET INLINE void block1(lane *s, const uint8_t *p) {
	lane s0 = *s;
	__m128i w[4];
	for (int i = 0; i < 4; i++)
		w[i] = load_words(p, i);
#pragma GCC unroll 16
	for (int i = 0; i < 16; i++) {
		if (i >= 4)
			SCHEDULE(w, i);
		ROUNDS4(*s, w[i & 3], i);
	}
	// Step 4: add the working variables to the previous hash value.
	s->abef = _mm_add_epi32(s->abef, s0.abef);
	s->cdgh = _mm_add_epi32(s->cdgh, s0.cdgh);
}

// block2 compresses block p into lane s and block q into lane t, the two
// dependency chains interleaved: one stream's sha256rnds2 waits for the
// previous one's result, so the other stream's fill the gap.
SHA_TARGET INLINE void block2(lane *s, const uint8_t *p, lane *t, const uint8_t *q) {
	lane s0 = *s, t0 = *t;
	__m128i w[4], v[4];
	for (int i = 0; i < 4; i++) {
		w[i] = load_words(p, i);
		v[i] = load_words(q, i);
	}
#pragma GCC unroll 16
	for (int i = 0; i < 16; i++) {
		if (i >= 4) {
			SCHEDULE(w, i);
			SCHEDULE(v, i);
		}
		ROUNDS4(*s, w[i & 3], i);
		ROUNDS4(*t, v[i & 3], i);
	}
	s->abef = _mm_add_epi32(s->abef, s0.abef);
	s->cdgh = _mm_add_epi32(s->cdgh, s0.cdgh);
	t->abef = _mm_add_epi32(t->abef, t0.abef);
	t->cdgh = _mm_add_epi32(t->cdgh, t0.cdgh);
}

// A stream's blocks: head (if not NULL) and then n blocks at p.
typedef struct {
	const uint8_t *head, *p, *cur;
	size_t left;
} blocks;

INLINE blocks blocks_init(const uint8_t *head, const uint8_t *p, size_t n) {
	blocks b = {head, p, head ? head : p, n + (head != NULL)};
	return b;
}

INLINE void blocks_next(blocks *b) {
	b->cur = b->cur == b->head ? b->p : b->cur + 64;
	b->left--;
}

// sha256x2_blocks compresses into state ha the 64-byte block heada (if not
// NULL) and then the na blocks at pa, and, if hb is not NULL, into state hb
// headb and the nb blocks at pb; while both streams have blocks left they
// are compressed interleaved. A state is H0..H7 (section 6.2.2).
SHA_TARGET void sha256x2_blocks(uint32_t *ha, const uint8_t *heada, const uint8_t *pa, size_t na,
				uint32_t *hb, const uint8_t *headb, const uint8_t *pb, size_t nb) {
	lane a = lane_load(ha);
	blocks ba = blocks_init(heada, pa, na);
	if (hb != NULL) {
		lane b = lane_load(hb);
		blocks bb = blocks_init(headb, pb, nb);
		for (; ba.left > 0 && bb.left > 0; blocks_next(&ba), blocks_next(&bb))
			block2(&a, ba.cur, &b, bb.cur);
		for (; bb.left > 0; blocks_next(&bb))
			block1(&b, bb.cur);
		lane_store(hb, b);
	}
	for (; ba.left > 0; blocks_next(&ba))
		block1(&a, ba.cur);
	lane_store(ha, a);
}
