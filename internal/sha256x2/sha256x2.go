// Package sha256x2 is a streaming SHA-256 whose WriteBoth hashes two
// independent messages at once on one core.
//
// A SHA-256 block is a chain of 32 dependent sha256rnds2 instructions, so a
// single stream leaves the SHA unit idle between them: on the AMD Zen 5 of
// the build machine a dependent chain costs 1.20 ns per instruction and two
// interleaved chains 0.74 ns. WriteBoth runs the 64-byte blocks that two
// digests have in common through an amd64 routine (blocks2_amd64.s) that
// interleaves the rounds of both, and the rest one digest at a time.
//
// No Go package found did this for two streams: crypto/sha256 hashes one
// stream; minio/sha256-simd dropped its AVX-512 multi-buffer code;
// prysmaticlabs/gohashtree hashes many 64-byte pairs (Merkle nodes), not a
// stream; isa-l_crypto is not packaged in Debian 12 and Intel's ipsec-mb job
// API hashes whole messages, not a stream of 128 KiB pieces.
//
// One-lane blocks (a lone Write, the blocks a digest has beyond the other's,
// any CPU without SHA-NI, SSSE3 and SSE4.1, every other architecture) go to
// crypto/sha256: the state moves in and out of a crypto/sha256 digest through
// its BinaryAppender and BinaryUnmarshaler encoding, so its results are
// crypto/sha256's by construction. That costs about 30 ns a call: a 64-byte
// Write takes 72 ns against crypto/sha256's 44 ns, and from 1 KiB up the two
// are not separated (BenchmarkWrite).
package sha256x2

import (
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"hash"
)

// Size is the length of a SHA-256 sum in bytes.
const Size = sha256.Size

// BlockSize is SHA-256's block length in bytes.
const BlockSize = sha256.BlockSize

// crypto/sha256's binary encoding of a digest: magic, the eight state words
// big-endian, the 64-byte buffer, the message length big-endian.
const (
	magic         = "sha\x03"
	marshaledSize = len(magic) + 8*4 + BlockSize + 8
)

// init256 is SHA-256's initial state (FIPS 180-4, 5.3.3).
var init256 = [8]uint32{
	0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
	0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
}

// Digest is a streaming SHA-256; it implements hash.Hash with the same sums
// as crypto/sha256. The zero Digest is not ready for use: call New. A Digest
// is not safe for concurrent use.
type Digest struct {
	h   [8]uint32       // chaining state, h[0] is a
	x   [BlockSize]byte // bytes not yet hashed
	nx  int             // how many of x are in use
	len uint64          // message length so far, in bytes

	one hash.Hash           // crypto/sha256 digest for one-lane blocks, made on first use
	buf [marshaledSize]byte // its encoding, kept here so that no call allocates
}

// New returns a SHA-256 digest.
func New() *Digest {
	d := new(Digest)
	d.Reset()
	return d
}

// Reset returns d to its initial state.
func (d *Digest) Reset() {
	d.h = init256
	d.nx = 0
	d.len = 0
}

// Size returns Size.
func (d *Digest) Size() int { return Size }

// BlockSize returns BlockSize.
func (d *Digest) BlockSize() int { return BlockSize }

// Write adds p to the message; it never fails.
func (d *Digest) Write(p []byte) (int, error) {
	d.len += uint64(len(p))
	d.rest(d.fill(p))
	return len(p), nil
}

// Sum appends the digest of the message so far to b; d is unchanged.
func (d *Digest) Sum(b []byte) []byte {
	d.load(d.x[:d.nx], d.len)
	return d.one.Sum(b)
}

// WriteBoth has the effect of a.Write(pa) followed by b.Write(pb): the whole
// 64-byte blocks that both have in common are hashed two lanes at once, the
// rest one lane at a time.
func WriteBoth(a, b *Digest, pa, pb []byte) {
	if a == b || !useAsm {
		a.Write(pa)
		b.Write(pb)
		return
	}
	a.len += uint64(len(pa))
	b.len += uint64(len(pb))
	pa, pb = a.fill(pa), b.fill(pb)
	switch {
	case a.nx == BlockSize && b.nx == BlockSize:
		blocks2(&a.h, &b.h, a.x[:], b.x[:])
		a.nx, b.nx = 0, 0
	case a.nx == BlockSize:
		a.block1(a.x[:])
		a.nx = 0
	case b.nx == BlockSize:
		b.block1(b.x[:])
		b.nx = 0
	}
	// A digest whose buffer is still partly filled has used up its input,
	// so from here on pa and pb start on a block boundary.
	if n := min(len(pa), len(pb)) &^ (BlockSize - 1); n > 0 {
		blocks2(&a.h, &b.h, pa[:n], pb[:n])
		pa, pb = pa[n:], pb[n:]
	}
	a.rest(pa)
	b.rest(pb)
}

// fill tops up a partly filled buffer from p and returns what is left of p.
// A buffer filled to BlockSize is left for the caller to hash.
func (d *Digest) fill(p []byte) []byte {
	if d.nx == 0 {
		return p
	}
	n := copy(d.x[d.nx:], p)
	d.nx += n
	return p[n:]
}

// rest hashes a full buffer and the whole blocks of p one lane at a time and
// keeps the tail of p in the buffer. p is empty unless the buffer is empty
// or full.
func (d *Digest) rest(p []byte) {
	if d.nx == BlockSize {
		d.block1(d.x[:])
		d.nx = 0
	}
	if n := len(p) &^ (BlockSize - 1); n > 0 {
		d.block1(p[:n])
		p = p[n:]
	}
	if len(p) > 0 {
		d.nx = copy(d.x[:], p)
	}
}

// block1 hashes the whole blocks of p into d.h with crypto/sha256.
func (d *Digest) block1(p []byte) {
	d.load(nil, 0)
	d.one.Write(p)
	b, err := d.one.(encoding.BinaryAppender).AppendBinary(d.buf[:0])
	if err != nil || len(b) != marshaledSize {
		panic("sha256x2: crypto/sha256 state encoding changed")
	}
	for i := range d.h {
		d.h[i] = binary.BigEndian.Uint32(b[len(magic)+4*i:])
	}
}

// load sets d.one to d.h with buffer x and message length n.
func (d *Digest) load(x []byte, n uint64) {
	if d.one == nil {
		d.one = sha256.New()
	}
	b := append(d.buf[:0], magic...)
	for _, v := range d.h {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	b = append(b, x...)
	b = append(b, make([]byte, BlockSize-len(x))...)
	b = binary.BigEndian.AppendUint64(b, n)
	if err := d.one.(encoding.BinaryUnmarshaler).UnmarshalBinary(b); err != nil {
		panic("sha256x2: crypto/sha256 state encoding changed: " + err.Error())
	}
}
