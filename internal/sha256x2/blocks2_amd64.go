//go:build amd64 && !purego

package sha256x2

// useAsm says whether WriteBoth uses blocks2; tests turn it off to run the
// one-lane path on the same machine.
var useAsm = hasSHANI()

// blocks2 hashes the whole 64-byte blocks of pa into ha and those of pb into
// hb, the rounds of both interleaved; len(pa) must equal len(pb).
//
//go:noescape
func blocks2(ha, hb *[8]uint32, pa, pb []byte)

// cpuid returns the registers CPUID leaves in EAX..EDX for leaf eax, subleaf ecx.
func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)

// hasSHANI reports whether the CPU has the SHA extensions, SSSE3 (PSHUFB)
// and SSE4.1 (PBLENDW). golang.org/x/sys/cpu has no bit for SHA.
func hasSHANI() bool {
	maxLeaf, _, _, _ := cpuid(0, 0)
	if maxLeaf < 7 {
		return false
	}
	_, _, ecx1, _ := cpuid(1, 0)
	_, ebx7, _, _ := cpuid(7, 0)
	const (
		ssse3 = 1 << 9  // leaf 1, ECX
		sse41 = 1 << 19 // leaf 1, ECX
		sha   = 1 << 29 // leaf 7, EBX
	)
	return ecx1&ssse3 != 0 && ecx1&sse41 != 0 && ebx7&sha != 0
}
