package sha256x2

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"math/rand/v2"
	"strings"
	"testing"
)

var _ hash.Hash = (*Digest)(nil)

// paths runs f once with the two-lane assembly (where the CPU has it) and
// once with the one-lane fallback.
func paths(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	asm := useAsm
	t.Cleanup(func() { useAsm = asm })
	for _, on := range []bool{true, false} {
		name := "fallback"
		if on {
			name = "twolane"
			if !asm {
				t.Log("no two-lane routine on this CPU: only the fallback runs")
				continue
			}
		}
		useAsm = on
		t.Run(name, f)
	}
	useAsm = asm
}

// Known answers: FIPS 180-4's examples (NIST CSRC, SHA256.pdf and
// SHA2_Additional.pdf), the empty string and 1 MiB of 'a' (the last as
// coreutils sha256sum prints it).
var vectors = []struct {
	name, in, sum string
}{
	{"empty", "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
	{"abc", "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
	{"448 bits", "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
		"248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
	{"896 bits", "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
		"cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
	{"million a", strings.Repeat("a", 1000000),
		"cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
	{"1 MiB a", strings.Repeat("a", 1<<20),
		"9bc1b2a288b26af7257a36277ae3816a7d4f16e89c1e7e77d0a5c48bad62b360"},
}

func TestKnownAnswers(t *testing.T) {
	paths(t, func(t *testing.T) {
		for _, v := range vectors {
			t.Run(v.name, func(t *testing.T) {
				// Alone, and as either lane of WriteBoth beside every other vector.
				d := New()
				d.Write([]byte(v.in))
				if got := hex.EncodeToString(d.Sum(nil)); got != v.sum {
					t.Errorf("Write: %s, want %s", got, v.sum)
				}
				for _, w := range vectors {
					a, b := New(), New()
					WriteBoth(a, b, []byte(v.in), []byte(w.in))
					if got := hex.EncodeToString(a.Sum(nil)); got != v.sum {
						t.Errorf("WriteBoth lane a beside %s: %s, want %s", w.name, got, v.sum)
					}
					if got := hex.EncodeToString(b.Sum(nil)); got != w.sum {
						t.Errorf("WriteBoth lane b beside %s: %s, want %s", v.name, got, w.sum)
					}
				}
			})
		}
	})
}

// TestVectorsAreCryptoSHA256 keeps the table honest.
func TestVectorsAreCryptoSHA256(t *testing.T) {
	for _, v := range vectors {
		if got := fmt.Sprintf("%x", sha256.Sum256([]byte(v.in))); got != v.sum {
			t.Errorf("%s: crypto/sha256 says %s, table %s", v.name, got, v.sum)
		}
	}
}

// split cuts p at up to k random points.
func split(r *rand.Rand, p []byte, k int) [][]byte {
	var out [][]byte
	for i := 0; i < k && len(p) > 0; i++ {
		n := r.IntN(len(p) + 1)
		out = append(out, p[:n])
		p = p[n:]
	}
	return append(out, p)
}

// check feeds two messages through WriteBoth in pieces and compares both sums,
// the lengths and the intermediate sums with crypto/sha256.
func check(t *testing.T, r *rand.Rand, ma, mb []byte) {
	t.Helper()
	pa, pb := split(r, ma, r.IntN(8)), split(r, mb, r.IntN(8))
	a, b := New(), New()
	ra, rb := sha256.New(), sha256.New()
	for i := range max(len(pa), len(pb)) {
		var xa, xb []byte
		if i < len(pa) {
			xa = pa[i]
		}
		if i < len(pb) {
			xb = pb[i]
		}
		WriteBoth(a, b, xa, xb)
		ra.Write(xa)
		rb.Write(xb)
		if !bytes.Equal(a.Sum(nil), ra.Sum(nil)) || !bytes.Equal(b.Sum(nil), rb.Sum(nil)) {
			t.Fatalf("after piece %d of lengths %d and %d (messages %d and %d bytes): sums differ",
				i, len(xa), len(xb), len(ma), len(mb))
		}
	}
}

func TestWriteBothRandom(t *testing.T) {
	paths(t, func(t *testing.T) {
		r := rand.New(rand.NewPCG(1, 2))
		buf := make([]byte, 2*300<<10)
		for i := range buf {
			buf[i] = byte(r.Uint32())
		}
		n := 200
		if testing.Short() {
			n = 20
		}
		for range n {
			la, lb := r.IntN(300<<10+1), r.IntN(300<<10+1)
			if r.IntN(4) == 0 {
				lb = la // same lengths: every block in two lanes
			}
			check(t, r, buf[:la], buf[300<<10:300<<10+lb])
		}
		// Short messages around block boundaries.
		for la := range 200 {
			check(t, r, buf[:la], buf[1000:1000+r.IntN(200)])
		}
	})
}

// TestWriteBothSameDigest: WriteBoth(d, d, x, y) is d.Write(x); d.Write(y).
func TestWriteBothSameDigest(t *testing.T) {
	paths(t, func(t *testing.T) {
		x, y := bytes.Repeat([]byte("x"), 1000), bytes.Repeat([]byte("y"), 700)
		d := New()
		WriteBoth(d, d, x, y)
		want := sha256.Sum256(append(append([]byte{}, x...), y...))
		if !bytes.Equal(d.Sum(nil), want[:]) {
			t.Errorf("got %x, want %x", d.Sum(nil), want)
		}
	})
}

func TestReset(t *testing.T) {
	d := New()
	d.Write([]byte("some bytes that are thrown away, more than one block long, for sure: ....."))
	d.Reset()
	d.Write([]byte("abc"))
	if got := hex.EncodeToString(d.Sum(nil)); got != vectors[1].sum {
		t.Errorf("after Reset: %s, want %s", got, vectors[1].sum)
	}
	if d.Size() != 32 || d.BlockSize() != 64 {
		t.Errorf("Size, BlockSize = %d, %d", d.Size(), d.BlockSize())
	}
}

func FuzzWriteBoth(f *testing.F) {
	f.Add([]byte("abc"), []byte(""), uint16(0), uint16(0))
	f.Add(bytes.Repeat([]byte{1}, 200), bytes.Repeat([]byte{2}, 300), uint16(63), uint16(65))
	f.Add(bytes.Repeat([]byte{3}, 1024), bytes.Repeat([]byte{4}, 1024), uint16(64), uint16(128))
	f.Fuzz(func(t *testing.T, ma, mb []byte, ca, cb uint16) {
		// One cut point per message, so that the second WriteBoth starts with
		// partly filled buffers.
		ia, ib := int(ca)%(len(ma)+1), int(cb)%(len(mb)+1)
		a, b := New(), New()
		WriteBoth(a, b, ma[:ia], mb[:ib])
		WriteBoth(a, b, ma[ia:], mb[ib:])
		wa, wb := sha256.Sum256(ma), sha256.Sum256(mb)
		if !bytes.Equal(a.Sum(nil), wa[:]) || !bytes.Equal(b.Sum(nil), wb[:]) {
			t.Fatalf("sums differ for %d and %d bytes cut at %d and %d (two lanes: %v)",
				len(ma), len(mb), ia, ib, useAsm)
		}
	})
}

const benchBlock = 128 << 10

func benchData() (pa, pb []byte) {
	r := rand.New(rand.NewPCG(3, 4))
	buf := make([]byte, 2*benchBlock)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	return buf[:benchBlock], buf[benchBlock:]
}

// BenchmarkWriteBoth hashes two 128 KiB blocks a loop, two lanes at once;
// SetBytes counts both.
func BenchmarkWriteBoth(b *testing.B) {
	pa, pb := benchData()
	x, y := New(), New()
	b.SetBytes(2 * benchBlock)
	for b.Loop() {
		WriteBoth(x, y, pa, pb)
	}
}

// BenchmarkTwoSerial hashes the same two blocks with two crypto/sha256
// digests, one after the other.
func BenchmarkTwoSerial(b *testing.B) {
	pa, pb := benchData()
	x, y := sha256.New(), sha256.New()
	b.SetBytes(2 * benchBlock)
	for b.Loop() {
		x.Write(pa)
		y.Write(pb)
	}
}

// BenchmarkWrite is one Digest alone, whose blocks go through crypto/sha256
// and its state encoding, against crypto/sha256 itself, for writes of 64 B,
// 1 KiB and 128 KiB.
func BenchmarkWrite(b *testing.B) {
	pa, _ := benchData()
	for _, n := range []int{64, 1 << 10, benchBlock} {
		for _, h := range []struct {
			name string
			new  func() hash.Hash
		}{{"sha256x2", func() hash.Hash { return New() }}, {"crypto", sha256.New}} {
			b.Run(fmt.Sprintf("%s/%d", h.name, n), func(b *testing.B) {
				x := h.new()
				b.SetBytes(int64(n))
				for b.Loop() {
					x.Write(pa[:n])
				}
			})
		}
	}
}
