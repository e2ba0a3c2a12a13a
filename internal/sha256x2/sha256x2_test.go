package sha256x2

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
)

// Known answers of FIPS 180-4's SHA-256 examples (NIST's "SHA256.pdf" and
// "SHA2_Additional.pdf" example values): the empty message, one block,
// two blocks (448 bits), the 896-bit message, and a million 'a'.
var knownAnswers = []struct {
	name, msg, sum string
}{
	{"empty", "", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
	{"abc", "abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
	{"448-bit", "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
	{"896-bit", "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu", "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
	{"million-a", strings.Repeat("a", 1000000), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"},
}

// modes runs f with this package's code, where the machine has it (newNative:
// whatever the self-test said, so that a fault shows as the wrong digest),
// and with the fallback to crypto/sha256, which forceStd selects for New.
func modes(t *testing.T, f func(t *testing.T, newDigest func() *Digest)) {
	t.Run("interleaved", func(t *testing.T) {
		if !haveCPU() {
			t.Skip("no interleaved code here: amd64, cgo and SHA-NI needed")
		}
		f(t, newNative)
	})
	t.Run("fallback", func(t *testing.T) {
		forceStd = true
		t.Cleanup(func() { forceStd = false })
		if Interleaved() || New().std == nil {
			t.Fatal("forceStd did not select crypto/sha256")
		}
		f(t, New)
	})
}

func checkSum(t *testing.T, what string, d hash.Hash, want string) {
	t.Helper()
	for i := range 2 {
		if got := hex.EncodeToString(d.Sum(nil)); got != want {
			t.Errorf("%s: Sum #%d = %s, want %s", what, i+1, got, want)
		}
	}
}

func TestKnownAnswers(t *testing.T) {
	modes(t, func(t *testing.T, newDigest func() *Digest) {
		for _, v := range knownAnswers {
			t.Run(v.name, func(t *testing.T) {
				msg := []byte(v.msg)
				d := newDigest()
				d.Write(msg)
				checkSum(t, "Write", d, v.sum)

				d.Reset()
				for i := 0; i < len(msg); i += 1000 {
					d.Write(msg[i:min(i+1000, len(msg))])
				}
				checkSum(t, "Write in 1000-byte pieces", d, v.sum)

				// Write2 on each side, beside a stream of another length.
				other := bytes.Repeat([]byte{0x5a}, 3*blockSize+17)
				wantOther := sha256.Sum256(other)
				a, b := newDigest(), newDigest()
				Write2(a, msg, b, other)
				checkSum(t, "Write2 a", a, v.sum)
				checkSum(t, "Write2 b (other)", b, hex.EncodeToString(wantOther[:]))
				a.Reset()
				b.Reset()
				Write2(a, other, b, msg)
				checkSum(t, "Write2 b", b, v.sum)
				checkSum(t, "Write2 a (other)", a, hex.EncodeToString(wantOther[:]))
			})
		}
	})
}

// TestInterleavedHere: where cgo and the CPU allow it, the self-test must
// pass; a fault in the interleaved code shows here as well as in the
// digests.
func TestInterleavedHere(t *testing.T) {
	if !haveCPU() {
		t.Skip("no SHA-NI, SSSE3 and SSE4.1 with cgo on amd64 here")
	}
	if !Interleaved() {
		t.Fatal("the CPU has the SHA extensions but Interleaved is false: the self-test failed")
	}
}

// TestSelfTestFailsClosed: a compression that gives wrong hash values
// fails the self-test, which makes Interleaved false.
func TestSelfTestFailsClosed(t *testing.T) {
	if !haveCPU() {
		t.Skip("no interleaved code here")
	}
	if !selfTest() {
		t.Fatal("selfTest false with the correct code")
	}
	corruptForTest = true
	defer func() { corruptForTest = false }()
	if selfTest() {
		t.Fatal("selfTest true with a compression that flips a bit")
	}
}

// runOps writes p and q to two Digests in pieces, a random mix of Write2
// and Write with random lengths (ops from seed), checking Sum against
// crypto/sha256 along the way and at the end.
func runOps(t *testing.T, newDigest func() *Digest, p, q []byte, seed uint64) {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d))
	a, b := newDigest(), newDigest()
	sa, sb := sha256.New(), sha256.New()
	piece := func(s []byte) (head, rest []byte) {
		n := 0
		if len(s) > 0 {
			switch r.IntN(4) {
			case 0: // a few bytes, to leave some buffered
				n = r.IntN(min(len(s), 70) + 1)
			case 1: // whole blocks
				n = min(len(s), blockSize*r.IntN(8))
			default:
				n = r.IntN(len(s) + 1)
			}
		}
		return s[:n], s[n:]
	}
	for step := 0; len(p) > 0 || len(q) > 0 || step == 0; step++ {
		var x, y []byte
		x, p = piece(p)
		y, q = piece(q)
		switch r.IntN(5) {
		case 0:
			a.Write(x)
			b.Write(y)
		case 1:
			Write2(b, y, a, x)
		default:
			Write2(a, x, b, y)
		}
		sa.Write(x)
		sb.Write(y)
		if r.IntN(4) == 0 || (len(p) == 0 && len(q) == 0) {
			for i := range 2 {
				if got, want := a.Sum(nil), sa.Sum(nil); !bytes.Equal(got, want) {
					t.Fatalf("step %d: a.Sum #%d = %x, want %x", step, i+1, got, want)
				}
				if got, want := b.Sum(nil), sb.Sum(nil); !bytes.Equal(got, want) {
					t.Fatalf("step %d: b.Sum #%d = %x, want %x", step, i+1, got, want)
				}
			}
		}
	}
}

func randomBytes(r *rand.Rand, n int) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(r.Uint32())
	}
	return p
}

func TestWrite2Differential(t *testing.T) {
	lengths := []int{0, 1, 55, 56, 63, 64, 65, 127, 128, 129, 1000, 4096, 65536 + 13, 128 << 10}
	modes(t, func(t *testing.T, newDigest func() *Digest) {
		r := rand.New(rand.NewPCG(1, 2))
		seed := uint64(0)
		for _, m := range lengths {
			for _, n := range lengths {
				p, q := randomBytes(r, m), randomBytes(r, n)
				for range 3 {
					seed++
					runOps(t, newDigest, p, q, seed)
				}
			}
		}
		for range 200 {
			seed++
			runOps(t, newDigest, randomBytes(r, r.IntN(5000)), randomBytes(r, r.IntN(5000)), seed)
		}
	})
}

// TestWrite2Mixed: Write2 of a Digest on this package's code and one on
// crypto/sha256's (made while forceStd was set) is two Writes.
func TestWrite2Mixed(t *testing.T) {
	if !Interleaved() {
		t.Skip("no interleaved code here")
	}
	a := New()
	forceStd = true
	b := New()
	forceStd = false
	p, q := bytes.Repeat([]byte("p"), 1000), bytes.Repeat([]byte("q"), 3000)
	Write2(a, p, b, q)
	Write2(b, p, a, q)
	wantA := sha256.Sum256(append(append([]byte{}, p...), q...))
	wantB := sha256.Sum256(append(append([]byte{}, q...), p...))
	checkSum(t, "a", a, hex.EncodeToString(wantA[:]))
	checkSum(t, "b", b, hex.EncodeToString(wantB[:]))
}

// TestZeroDigest: the zero Digest is an empty message, as New's is.
func TestZeroDigest(t *testing.T) {
	var a, b, c Digest
	checkSum(t, "zero", &c, knownAnswers[0].sum)
	Write2(&a, []byte("abc"), &b, []byte(knownAnswers[2].msg))
	checkSum(t, "a", &a, knownAnswers[1].sum)
	checkSum(t, "b", &b, knownAnswers[2].sum)
}

func TestWrite2SameDigest(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Write2(d, p, d, q) did not panic")
		}
	}()
	d := New()
	Write2(d, []byte("p"), d, []byte("q"))
}

// TestWrite2Concurrent hashes on several goroutines at once, each its own
// pair of Digests (make race runs it).
func TestWrite2Concurrent(t *testing.T) {
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 7))
			p, q := randomBytes(r, 100000+g), randomBytes(r, 70000)
			runOps(t, New, p, q, uint64(g))
		})
	}
	wg.Wait()
}

func FuzzWrite2(f *testing.F) {
	f.Add([]byte{}, []byte{}, uint64(0))
	f.Add([]byte("abc"), []byte(knownAnswers[3].msg), uint64(1))
	f.Add(bytes.Repeat([]byte{1}, 1000), bytes.Repeat([]byte{2}, 129), uint64(2))
	newDigest := New
	if haveCPU() {
		newDigest = newNative
	}
	f.Fuzz(func(t *testing.T, p, q []byte, seed uint64) {
		runOps(t, newDigest, p, q, seed)
	})
}

// The benchmarks compare with crypto/sha256, the rate to beat: Write on
// one 128 KiB buffer, and Write2 on two against two crypto/sha256 Writes
// one after the other (MB/s counts the bytes of both).
var benchSizes = 128 << 10

func BenchmarkWrite(b *testing.B) {
	p := randomBytes(rand.New(rand.NewPCG(1, 1)), benchSizes)
	for _, c := range []struct {
		name string
		h    hash.Hash
	}{{"crypto-sha256", sha256.New()}, {"sha256x2", New()}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(p)))
			for b.Loop() {
				c.h.Write(p)
			}
		})
	}
}

func BenchmarkWrite2(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	p, q := randomBytes(r, benchSizes), randomBytes(r, benchSizes)
	b.Run("crypto-sha256", func(b *testing.B) {
		x, y := sha256.New(), sha256.New()
		b.SetBytes(int64(len(p) + len(q)))
		for b.Loop() {
			x.Write(p)
			y.Write(q)
		}
	})
	b.Run("sha256x2", func(b *testing.B) {
		if !Interleaved() {
			b.Skip("no interleaved code here")
		}
		x, y := New(), New()
		b.SetBytes(int64(len(p) + len(q)))
		for b.Loop() {
			Write2(x, p, y, q)
		}
	})
}

// TestNoAllocs: Write, Write2 and Sum into room allocate nothing (the
// cgo call's pointers do not escape: #cgo noescape).
func TestNoAllocs(t *testing.T) {
	if !Interleaved() {
		t.Skip("no interleaved code here")
	}
	a, b := New(), New()
	p := make([]byte, 1000)
	sum := make([]byte, 0, size)
	if n := testing.AllocsPerRun(100, func() {
		a.Write(p)
		Write2(a, p, b, p[:999])
		sum = b.Sum(sum[:0])
	}); n != 0 {
		t.Errorf("%v allocations per Write, Write2 and Sum, want 0", n)
	}
}
