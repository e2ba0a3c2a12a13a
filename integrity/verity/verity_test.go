package verity

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/imaforge/imaforge/internal/testenv"
)

func randBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestLayout: level sizes and positions as cryptsetup's hash_levels
// computes them (128 digests per 4 KiB hash block).
func TestLayout(t *testing.T) {
	tests := []struct {
		blocks uint64
		noSB   bool
		levels []LevelExtent
		end    uint64
	}{
		{1, false, []LevelExtent{}, 1},
		{2, false, []LevelExtent{{1, 1}}, 2},
		{128, false, []LevelExtent{{1, 1}}, 2},
		{129, false, []LevelExtent{{2, 2}, {1, 1}}, 4},
		{129, true, []LevelExtent{{1, 2}, {0, 1}}, 3},
		{16384, false, []LevelExtent{{2, 128}, {1, 1}}, 130},
		{16385, false, []LevelExtent{{4, 129}, {3, 2}, {1, 1}}[:0], 0}, // filled below
	}
	tests[len(tests)-1].levels = []LevelExtent{{4, 129}, {2, 2}, {1, 1}}
	tests[len(tests)-1].end = 133
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d/nosb=%v", tt.blocks, tt.noSB), func(t *testing.T) {
			p := Params{DataBlocks: tt.blocks, NoSuperblock: tt.noSB}
			l, err := p.Layout()
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(l.Levels) != fmt.Sprint(tt.levels) || l.End != tt.end {
				t.Errorf("layout %v end %d, want %v end %d", l.Levels, l.End, tt.levels, tt.end)
			}
		})
	}
}

func TestParamsCheck(t *testing.T) {
	for _, p := range []Params{
		{DataBlocks: 0},
		{DataBlocks: 1, HashOffset: 100},
		{DataBlocks: 1, Salt: make([]byte, 257)},
	} {
		if _, err := p.Layout(); !errors.Is(err, ErrFormat) {
			t.Errorf("%+v: %v, want ErrFormat", p, err)
		}
	}
}

// veritysetup runs veritysetup with args and returns its output.
func veritysetup(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(testenv.NeedTool(t, "veritysetup"), args...).CombinedOutput()
	return string(out), err
}

var rootRE = regexp.MustCompile(`Root hash:\s+([0-9a-f]+)`)

// TestVeritysetupFormat: for data of several sizes, the root hash and the
// whole hash area (superblock included, with the same UUID) equal what
// `veritysetup format` writes for the same data and salt, in a separate
// hash file, at --hash-offset in the data file, and with --no-superblock;
// `veritysetup verify` accepts imaforge's tree and refuses it after a data
// byte is flipped, and Verify reports that block.
func TestVeritysetupFormat(t *testing.T) {
	testenv.NeedTool(t, "veritysetup")
	salt, _ := hex.DecodeString("5a17000000000000000000000000000000000000000000000000000000c0ffee")
	uuid := [16]byte{0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0x4d, 0xef, 0x81, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef}
	for _, blocks := range []uint64{1, 2, 128, 129, 300} {
		for _, noSB := range []bool{false, true} {
			t.Run(fmt.Sprintf("%d/nosb=%v", blocks, noSB), func(t *testing.T) {
				dir := t.TempDir()
				data := randBytes(blocks, int(blocks)*BlockSize)
				p := Params{DataBlocks: blocks, HashOffset: uint64(len(data)), Salt: salt, UUID: uuid, NoSuperblock: noSB}
				sums := make([]Digest, blocks)
				for i := range sums {
					sums[i] = HashBlock(salt, data[i*BlockSize:(i+1)*BlockSize])
				}
				tree, err := NewTree(p, sums)
				if err != nil {
					t.Fatal(err)
				}
				var area bytes.Buffer
				if _, err := tree.WriteTo(&area); err != nil {
					t.Fatal(err)
				}
				if int64(area.Len()) != tree.Size() {
					t.Fatalf("wrote %d bytes, Size %d", area.Len(), tree.Size())
				}

				// The peer, on a copy of the data, with the tree appended.
				peer := filepath.Join(dir, "peer.img")
				must(t, os.WriteFile(peer, data, 0o644))
				args := []string{"format", "--hash", "sha256", "--data-block-size", "4096", "--hash-block-size", "4096",
					"--salt", hex.EncodeToString(salt), "--uuid", FormatUUID(uuid),
					"--data-blocks", fmt.Sprint(blocks), "--hash-offset", fmt.Sprint(len(data))}
				if noSB {
					args = append(args, "--no-superblock")
				}
				out, err := veritysetup(t, append(args, peer, peer)...)
				if err != nil {
					t.Fatalf("veritysetup format: %v\n%s", err, out)
				}
				m := rootRE.FindStringSubmatch(out)
				if m == nil {
					t.Fatalf("no root hash in\n%s", out)
				}
				if m[1] != tree.RootHex() {
					t.Errorf("root hash %s, veritysetup %s", tree.RootHex(), m[1])
				}
				got, err := os.ReadFile(peer)
				must(t, err)
				if !bytes.Equal(got[len(data):], area.Bytes()) {
					t.Errorf("hash area differs from veritysetup's (%d vs %d bytes)", area.Len(), len(got)-len(data))
				}

				// Ours, verified by the peer.
				img := filepath.Join(dir, "img")
				must(t, os.WriteFile(img, append(append([]byte(nil), data...), area.Bytes()...), 0o644))
				vargs := []string{"verify", "--hash-offset", fmt.Sprint(len(data)), "--data-blocks", fmt.Sprint(blocks)}
				if noSB {
					vargs = append(vargs, "--no-superblock", "--salt", hex.EncodeToString(salt))
				}
				if out, err := veritysetup(t, append(vargs, img, img, tree.RootHex())...); err != nil {
					t.Fatalf("veritysetup verify: %v\n%s", err, out)
				}
				f, err := os.Open(img)
				must(t, err)
				defer f.Close()
				if err := Verify(f, p, tree.Root()); err != nil {
					t.Fatalf("Verify: %v", err)
				}

				// Flip a byte of the last data block.
				bad := blocks - 1
				flipByte(t, img, int64(bad*BlockSize+17))
				if out, err := veritysetup(t, append(vargs, img, img, tree.RootHex())...); err == nil {
					t.Fatalf("veritysetup verify accepted a flipped byte:\n%s", out)
				}
				err = Verify(f, p, tree.Root())
				var me *MismatchError
				if !errors.As(err, &me) || !errors.Is(err, ErrMismatch) {
					t.Fatalf("Verify after flip: %v", err)
				}
				if blocks > 1 && (len(me.DataBlocks) != 1 || me.DataBlocks[0] != bad) {
					t.Errorf("mismatched blocks %v, want [%d]", me.DataBlocks, bad)
				}
			})
		}
	}
}

func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	must(t, err)
	defer f.Close()
	b := make([]byte, 1)
	_, err = f.ReadAt(b, off)
	must(t, err)
	b[0] ^= 0x01
	_, err = f.WriteAt(b, off)
	must(t, err)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestSuperblockRoundTrip(t *testing.T) {
	p := Params{DataBlocks: 12345, Salt: []byte{1, 2, 3}, UUID: [16]byte{9: 1}}
	b, err := p.Superblock().Marshal()
	must(t, err)
	sb, err := ParseSuperblock(b)
	must(t, err)
	b2, err := sb.Marshal()
	must(t, err)
	if !bytes.Equal(b, b2) {
		t.Fatal("superblock does not round-trip")
	}
	if sb.DataBlocks != 12345 || sb.Algorithm != "sha256" || sb.HashType != 1 {
		t.Errorf("parsed %+v", sb)
	}
	for i, mangle := range []func([]byte){
		func(b []byte) { b[0] = 'V' },
		func(b []byte) { b[8] = 2 },
		func(b []byte) { b[12] = 2 },
		func(b []byte) { b[65] = 3 },
		func(b []byte) { b[80], b[81] = 0x01, 0x01 },
	} {
		c := append([]byte(nil), b...)
		mangle(c)
		if _, err := ParseSuperblock(c); !errors.Is(err, ErrFormat) {
			t.Errorf("mangle %d: %v, want ErrFormat", i, err)
		}
	}
}

// memFile is an in-memory File.
type memFile struct {
	b   []byte
	pos int64
}

func (m *memFile) Write(p []byte) (int, error) {
	if need := m.pos + int64(len(p)); need > int64(len(m.b)) {
		m.b = append(m.b, make([]byte, need-int64(len(m.b)))...)
	}
	copy(m.b[m.pos:], p)
	m.pos += int64(len(p))
	return len(p), nil
}

func (m *memFile) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		off += m.pos
	case io.SeekEnd:
		off += int64(len(m.b))
	}
	m.pos = off
	return off, nil
}

func (m *memFile) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(m.b)) {
		return 0, io.EOF
	}
	n := copy(p, m.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (m *memFile) Truncate(n int64) error {
	if n < int64(len(m.b)) {
		m.b = m.b[:n]
	} else {
		m.b = append(m.b, make([]byte, n-int64(len(m.b)))...)
	}
	return nil
}

// TestBlockHasher: whatever the order of writes, seeks back (rollbacks),
// partial rewrites (a superblock patched at offset 0) and truncation, Sum
// equals the digests of the file's final blocks, and only partly rewritten
// blocks are read back.
func TestBlockHasher(t *testing.T) {
	salt := []byte("salt")
	type op struct {
		seek  int64 // -1: none
		write int
		trunc int64 // -1: none
	}
	tests := []struct {
		name   string
		ops    []op
		reread int
	}{
		{"sequential odd writes", []op{{-1, 100, -1}, {-1, 5000, -1}, {-1, 3092, -1}, {-1, 4096, -1}}, 0},
		{"superblock patch", []op{{-1, 3 * 4096, -1}, {0, 96, -1}, {3 * 4096, 0, -1}}, 1},
		{"rollback to aligned", []op{{-1, 5 * 4096, -1}, {2 * 4096, 4096, -1}, {-1, 8192, -1}, {-1, 0, 5 * 4096}}, 0},
		{"rollback unaligned", []op{{-1, 5*4096 + 10, -1}, {4096 + 7, 3*4096 - 7, -1}, {-1, 10, -1}, {-1, 0, 4 * 4096}}, 1},
		{"rewrite then pad", []op{{-1, 3*4096 - 50, -1}, {-1, 50, -1}, {0, 96, -1}, {3 * 4096, 0, -1}}, 1},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &memFile{}
			h, err := NewBlockHasher(m, salt)
			must(t, err)
			seed := uint64(i) * 100
			for _, o := range tt.ops {
				if o.seek >= 0 {
					_, err := h.Seek(o.seek, io.SeekStart)
					must(t, err)
				}
				if o.write > 0 {
					seed++
					_, err := h.Write(randBytes(seed, o.write))
					must(t, err)
				}
				if o.trunc >= 0 {
					must(t, h.Truncate(o.trunc))
				}
			}
			sums, err := h.Sum()
			must(t, err)
			if len(m.b)%BlockSize != 0 || len(sums) != len(m.b)/BlockSize {
				t.Fatalf("%d sums for %d bytes", len(sums), len(m.b))
			}
			for b := range sums {
				if want := HashBlock(salt, m.b[b*BlockSize:(b+1)*BlockSize]); sums[b] != want {
					t.Errorf("block %d: wrong digest", b)
				}
			}
			if h.Reread() != tt.reread {
				t.Errorf("reread %d blocks, want %d", h.Reread(), tt.reread)
			}
		})
	}
}

func TestBlockHasherUnaligned(t *testing.T) {
	h, err := NewBlockHasher(&memFile{}, nil)
	must(t, err)
	h.Write(make([]byte, 100))
	if _, err := h.Sum(); !errors.Is(err, ErrUnaligned) {
		t.Fatalf("Sum: %v, want ErrUnaligned", err)
	}
}

func FuzzParseSuperblock(f *testing.F) {
	p := Params{DataBlocks: 7, Salt: []byte{1, 2}}
	b, _ := p.Superblock().Marshal()
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		sb, err := ParseSuperblock(b)
		if err != nil {
			return
		}
		if _, err := sb.Marshal(); err != nil && len(sb.Algorithm) > 0 {
			t.Fatalf("parsed superblock does not marshal: %v", err)
		}
	})
}

// BenchmarkBlockHasher: hashing 4 KiB blocks while writing 64 KiB chunks
// (what the SquashFS writer does), to memory.
func BenchmarkBlockHasher(b *testing.B) {
	chunk := randBytes(1, 64<<10)
	b.SetBytes(int64(len(chunk)) * 256)
	for i := 0; i < b.N; i++ {
		m := &memFile{b: make([]byte, 0, 16<<20)}
		h, _ := NewBlockHasher(m, []byte("salt"))
		for j := 0; j < 256; j++ {
			h.Write(chunk)
		}
		if _, err := h.Sum(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHashBlock: the peer figure for BenchmarkBlockHasher, hashing
// the same bytes block by block with no file around it.
func BenchmarkHashBlock(b *testing.B) {
	chunk := randBytes(1, 64<<10)
	b.SetBytes(int64(len(chunk)) * 256)
	for i := 0; i < b.N; i++ {
		for j := 0; j < 256; j++ {
			for k := 0; k < len(chunk); k += BlockSize {
				HashBlock([]byte("salt"), chunk[k:k+BlockSize])
			}
		}
	}
}
