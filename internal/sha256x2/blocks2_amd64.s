//go:build amd64 && !purego

#include "textflag.h"

// Two-lane SHA-256 with the Intel SHA extensions (FIPS 180-4, section 6.2;
// Intel, "Intel SHA Extensions", 2013). Each lane keeps its state as two
// registers, ABEF and CDGH (A in the top dword), the form sha256rnds2 takes,
// and its message schedule in four registers of four words each. In each of
// the 16 groups of four rounds the sha256rnds2 of lane A and lane B alternate;
// the lanes have no data in common, so the core overlaps A's dependent chain
// with B's. (Running a whole group of A before the group of B measured about
// 8% slower.)
//
// sha256rnds2 reads W+K from X0, which both lanes share; register renaming
// makes each write to X0 a new register. The states at the start of a block
// go to the stack: 2 x (2 + 4) state and schedule registers, X0 and two
// temporaries take fifteen of the sixteen XMM registers, and X15 (the zero
// register of Go's internal ABI) is left alone.

// Lane A.
#define A0 X1 // ABEF
#define A1 X2 // CDGH
#define AM0 X3
#define AM1 X4
#define AM2 X5
#define AM3 X6
#define AT X13
// Lane B.
#define B0 X7
#define B1 X8
#define BM0 X9
#define BM1 X10
#define BM2 X11
#define BM3 X12
#define BT X14

// Load h[0..7] (a..h, h[0] lowest) from ptr as ABEF in s0 and CDGH in s1.
#define LOADSTATE(ptr, s0, s1, t) \
	MOVOU   (ptr), t;       /* d c b a (top to bottom) */ \
	MOVOU   16(ptr), s1;    /* h g f e */ \
	PSHUFD  $0xb1, t, t;    /* c d a b */ \
	PSHUFD  $0x1b, s1, s1;  /* e f g h */ \
	MOVO    t, s0; \
	PALIGNR $8, s1, s0;     /* a b e f */ \
	PBLENDW $0xf0, t, s1    /* c d g h */

// Store ABEF in s0 and CDGH in s1 back to h[0..7] at ptr.
#define STORESTATE(ptr, s0, s1, t) \
	PSHUFD  $0x1b, s0, s0;  /* f e b a */ \
	PSHUFD  $0xb1, s1, s1;  /* h g d c */ \
	MOVO    s0, t; \
	PBLENDW $0xf0, s1, s0;  /* d c b a */ \
	PALIGNR $8, t, s1;      /* h g f e */ \
	MOVOU   s0, (ptr); \
	MOVOU   s1, 16(ptr)

// Four rounds of each lane, lane A with message words ma (W[4g..4g+3]) and
// lane B with mb, constants at koff(AX). W+K goes to the temporaries first, so
// that the sha256rnds2 of the two lanes alternate in program order.
#define ROUNDS(ma, mb, koff) \
	MOVO        ma, AT; \
	MOVO        mb, BT; \
	PADDD       koff(AX), AT; \
	PADDD       koff(AX), BT; \
	MOVO        AT, X0; \
	SHA256RNDS2 X0, A0, A1; \
	MOVO        BT, X0; \
	SHA256RNDS2 X0, B0, B1; \
	PSHUFD      $0x0e, AT, X0; \
	SHA256RNDS2 X0, A1, A0; \
	PSHUFD      $0x0e, BT, X0; \
	SHA256RNDS2 X0, B1, B0

// next, which holds W[t-16..t-13] + sigma0(W[t-15..t-12]), becomes
// W[t..t+3] = that + W[t-7..t-4] + sigma1(W[t-2..t+1]), where cur is
// W[t-4..t-1] and prev W[t-8..t-5].
#define SCHEDULE2(cur, prev, next, t) \
	MOVO       cur, t; \
	PALIGNR    $4, prev, t; \
	PADDD      t, next; \
	SHA256MSG2 cur, next

// prev (W[t-8..t-5]) gains sigma0(W[t-7..t-4]), cur being W[t-4..t-1].
#define SCHEDULE1(cur, prev) \
	SHA256MSG1 cur, prev

// func blocks2(ha, hb *[8]uint32, pa, pb []byte)
TEXT ·blocks2(SB), NOSPLIT, $64-64
	MOVQ ha+0(FP), DI
	MOVQ hb+8(FP), SI
	MOVQ pa_base+16(FP), R8
	MOVQ pa_len+24(FP), DX
	MOVQ pb_base+40(FP), R9
	SHRQ $6, DX
	JZ   done
	LEAQ k256<>(SB), AX

	LOADSTATE(DI, A0, A1, AT)
	LOADSTATE(SI, B0, B1, BT)

loop:
	// The state at the start of the block, added back at its end.
	MOVOU A0, 0(SP)
	MOVOU A1, 16(SP)
	MOVOU B0, 32(SP)
	MOVOU B1, 48(SP)

	// W[0..15] of both lanes, big-endian words.
	MOVO   bswap32<>(SB), AT
	MOVOU  0(R8), AM0
	MOVOU  16(R8), AM1
	MOVOU  32(R8), AM2
	MOVOU  48(R8), AM3
	MOVOU  0(R9), BM0
	MOVOU  16(R9), BM1
	MOVOU  32(R9), BM2
	MOVOU  48(R9), BM3
	PSHUFB AT, AM0
	PSHUFB AT, AM1
	PSHUFB AT, AM2
	PSHUFB AT, AM3
	PSHUFB AT, BM0
	PSHUFB AT, BM1
	PSHUFB AT, BM2
	PSHUFB AT, BM3

	// Rounds 0-3.
	ROUNDS(AM0, BM0, 0)

	// Rounds 4-7.
	ROUNDS(AM1, BM1, 16)
	SCHEDULE1(AM1, AM0)
	SCHEDULE1(BM1, BM0)

	// Rounds 8-11.
	ROUNDS(AM2, BM2, 32)
	SCHEDULE1(AM2, AM1)
	SCHEDULE1(BM2, BM1)

	// Rounds 12-15.
	ROUNDS(AM3, BM3, 48)
	SCHEDULE2(AM3, AM2, AM0, AT)
	SCHEDULE1(AM3, AM2)
	SCHEDULE2(BM3, BM2, BM0, BT)
	SCHEDULE1(BM3, BM2)

	// Rounds 16-19.
	ROUNDS(AM0, BM0, 64)
	SCHEDULE2(AM0, AM3, AM1, AT)
	SCHEDULE1(AM0, AM3)
	SCHEDULE2(BM0, BM3, BM1, BT)
	SCHEDULE1(BM0, BM3)

	// Rounds 20-23.
	ROUNDS(AM1, BM1, 80)
	SCHEDULE2(AM1, AM0, AM2, AT)
	SCHEDULE1(AM1, AM0)
	SCHEDULE2(BM1, BM0, BM2, BT)
	SCHEDULE1(BM1, BM0)

	// Rounds 24-27.
	ROUNDS(AM2, BM2, 96)
	SCHEDULE2(AM2, AM1, AM3, AT)
	SCHEDULE1(AM2, AM1)
	SCHEDULE2(BM2, BM1, BM3, BT)
	SCHEDULE1(BM2, BM1)

	// Rounds 28-31.
	ROUNDS(AM3, BM3, 112)
	SCHEDULE2(AM3, AM2, AM0, AT)
	SCHEDULE1(AM3, AM2)
	SCHEDULE2(BM3, BM2, BM0, BT)
	SCHEDULE1(BM3, BM2)

	// Rounds 32-35.
	ROUNDS(AM0, BM0, 128)
	SCHEDULE2(AM0, AM3, AM1, AT)
	SCHEDULE1(AM0, AM3)
	SCHEDULE2(BM0, BM3, BM1, BT)
	SCHEDULE1(BM0, BM3)

	// Rounds 36-39.
	ROUNDS(AM1, BM1, 144)
	SCHEDULE2(AM1, AM0, AM2, AT)
	SCHEDULE1(AM1, AM0)
	SCHEDULE2(BM1, BM0, BM2, BT)
	SCHEDULE1(BM1, BM0)

	// Rounds 40-43.
	ROUNDS(AM2, BM2, 160)
	SCHEDULE2(AM2, AM1, AM3, AT)
	SCHEDULE1(AM2, AM1)
	SCHEDULE2(BM2, BM1, BM3, BT)
	SCHEDULE1(BM2, BM1)

	// Rounds 44-47.
	ROUNDS(AM3, BM3, 176)
	SCHEDULE2(AM3, AM2, AM0, AT)
	SCHEDULE1(AM3, AM2)
	SCHEDULE2(BM3, BM2, BM0, BT)
	SCHEDULE1(BM3, BM2)

	// Rounds 48-51.
	ROUNDS(AM0, BM0, 192)
	SCHEDULE2(AM0, AM3, AM1, AT)
	SCHEDULE1(AM0, AM3)
	SCHEDULE2(BM0, BM3, BM1, BT)
	SCHEDULE1(BM0, BM3)

	// Rounds 52-55.
	ROUNDS(AM1, BM1, 208)
	SCHEDULE2(AM1, AM0, AM2, AT)
	SCHEDULE2(BM1, BM0, BM2, BT)

	// Rounds 56-59.
	ROUNDS(AM2, BM2, 224)
	SCHEDULE2(AM2, AM1, AM3, AT)
	SCHEDULE2(BM2, BM1, BM3, BT)

	// Rounds 60-63.
	ROUNDS(AM3, BM3, 240)

	MOVOU 0(SP), AT
	MOVOU 16(SP), BT
	PADDD AT, A0
	PADDD BT, A1
	MOVOU 32(SP), AT
	MOVOU 48(SP), BT
	PADDD AT, B0
	PADDD BT, B1

	ADDQ $64, R8
	ADDQ $64, R9
	DECQ DX
	JNZ  loop

	STORESTATE(DI, A0, A1, AT)
	STORESTATE(SI, B0, B1, BT)

done:
	RET

// func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)
TEXT ·cpuid(SB), NOSPLIT, $0-24
	MOVL eaxArg+0(FP), AX
	MOVL ecxArg+4(FP), CX
	CPUID
	MOVL AX, eax+8(FP)
	MOVL BX, ebx+12(FP)
	MOVL CX, ecx+16(FP)
	MOVL DX, edx+20(FP)
	RET

// PSHUFB mask reversing the bytes of each dword.
DATA bswap32<>+0(SB)/8, $0x0405060700010203
DATA bswap32<>+8(SB)/8, $0x0c0d0e0f08090a0b
GLOBL bswap32<>(SB), RODATA|NOPTR, $16

// K[0..63] (FIPS 180-4, 4.2.2), four words for each group of four rounds.
// PADDD reads them as aligned 16-byte operands; the linker aligns a 256-byte
// symbol to 32 bytes.
DATA k256<>+0x00(SB)/8, $0x71374491428a2f98
DATA k256<>+0x08(SB)/8, $0xe9b5dba5b5c0fbcf
DATA k256<>+0x10(SB)/8, $0x59f111f13956c25b
DATA k256<>+0x18(SB)/8, $0xab1c5ed5923f82a4
DATA k256<>+0x20(SB)/8, $0x12835b01d807aa98
DATA k256<>+0x28(SB)/8, $0x550c7dc3243185be
DATA k256<>+0x30(SB)/8, $0x80deb1fe72be5d74
DATA k256<>+0x38(SB)/8, $0xc19bf1749bdc06a7
DATA k256<>+0x40(SB)/8, $0xefbe4786e49b69c1
DATA k256<>+0x48(SB)/8, $0x240ca1cc0fc19dc6
DATA k256<>+0x50(SB)/8, $0x4a7484aa2de92c6f
DATA k256<>+0x58(SB)/8, $0x76f988da5cb0a9dc
DATA k256<>+0x60(SB)/8, $0xa831c66d983e5152
DATA k256<>+0x68(SB)/8, $0xbf597fc7b00327c8
DATA k256<>+0x70(SB)/8, $0xd5a79147c6e00bf3
DATA k256<>+0x78(SB)/8, $0x1429296706ca6351
DATA k256<>+0x80(SB)/8, $0x2e1b213827b70a85
DATA k256<>+0x88(SB)/8, $0x53380d134d2c6dfc
DATA k256<>+0x90(SB)/8, $0x766a0abb650a7354
DATA k256<>+0x98(SB)/8, $0x92722c8581c2c92e
DATA k256<>+0xa0(SB)/8, $0xa81a664ba2bfe8a1
DATA k256<>+0xa8(SB)/8, $0xc76c51a3c24b8b70
DATA k256<>+0xb0(SB)/8, $0xd6990624d192e819
DATA k256<>+0xb8(SB)/8, $0x106aa070f40e3585
DATA k256<>+0xc0(SB)/8, $0x1e376c0819a4c116
DATA k256<>+0xc8(SB)/8, $0x34b0bcb52748774c
DATA k256<>+0xd0(SB)/8, $0x4ed8aa4a391c0cb3
DATA k256<>+0xd8(SB)/8, $0x682e6ff35b9cca4f
DATA k256<>+0xe0(SB)/8, $0x78a5636f748f82ee
DATA k256<>+0xe8(SB)/8, $0x8cc7020884c87814
DATA k256<>+0xf0(SB)/8, $0xa4506ceb90befffa
DATA k256<>+0xf8(SB)/8, $0xc67178f2bef9a3f7
GLOBL k256<>(SB), RODATA|NOPTR, $256
