package sha256x2

import (
	"bytes"
	"crypto/sha256"
)

// corruptForTest, set by a test, flips a bit of the hash value after each
// compression, so that the test sees the self-test fail closed.
var corruptForTest bool

// selfTest reports whether this package's code gives crypto/sha256's
// digests: for FIPS 180-4's example messages, and for pseudo-random
// messages of lengths around the block and padding boundaries written in
// pieces through Write and both sides of Write2, with buffered bytes
// before the interleaved blocks. It runs once, at the first Interleaved.
func selfTest() bool {
	vectors := [][]byte{
		nil,
		[]byte("abc"),
		[]byte("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
		[]byte("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"),
	}
	// A deterministic xorshift fill: the self-test must not depend on an
	// entropy source.
	data := make([]byte, 4096+3*blockSize)
	x := uint64(0x9e3779b97f4a7c15)
	for i := range data {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		data[i] = byte(x)
	}
	for _, n := range []int{1, 55, 56, 63, 64, 65, 119, 120, 128, 1000, 4096 + 3*blockSize} {
		vectors = append(vectors, data[:n])
	}
	for i, p := range vectors {
		q := vectors[(i+5)%len(vectors)]
		if !selfTestPair(p, q) || !selfTestPair(q, p) {
			return false
		}
	}
	return true
}

// selfTestPair hashes p and q with Write and with Write2 (p's first 1 and
// q's first 7 bytes written alone, so Write2 meets buffered bytes) and
// checks each Sum, taken twice, against crypto/sha256.
func selfTestPair(p, q []byte) bool {
	wantP, wantQ := sha256.Sum256(p), sha256.Sum256(q)
	one := newNative()
	one.Write(p)
	a, b := newNative(), newNative()
	i, j := min(1, len(p)), min(7, len(q))
	a.Write(p[:i])
	b.Write(q[:j])
	Write2(a, p[i:], b, q[j:])
	for range 2 {
		if !bytes.Equal(one.Sum(nil), wantP[:]) || !bytes.Equal(a.Sum(nil), wantP[:]) || !bytes.Equal(b.Sum(nil), wantQ[:]) {
			return false
		}
	}
	return true
}
