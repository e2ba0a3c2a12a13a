package squashfs

import (
	"bytes"
	"errors"
	"math/rand"
	"testing"
)

func TestCodecRoundTrip(t *testing.T) {
	rnd := rand.New(rand.NewSource(1))
	random := make([]byte, 70000)
	rnd.Read(random)
	text := bytes.Repeat([]byte("integrity measurement architecture\n"), 3000)
	cases := []struct {
		comp  Compression
		level int
	}{
		{Gzip, 0}, {Gzip, 1}, {Zstd, 0}, {Zstd, 3}, {Zstd, 19}, {XZ, 0}, {LZ4, 0}, {LZ4, 9}, {LZ4, 12}, {CompNone, 0},
	}
	for _, tc := range cases {
		c, err := newCodec(tc.comp, tc.level, 131072)
		if err != nil {
			t.Fatal(err)
		}
		d, err := newDecompressor(c.id(), c.options())
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range [][]byte{text, random, {1}} {
			out, compressed, err := c.compress(nil, in)
			if err != nil {
				t.Fatalf("%v/%d: %v", tc.comp, tc.level, err)
			}
			if !compressed {
				if tc.comp != CompNone && bytes.Equal(in, text) {
					t.Errorf("%v/%d: text did not compress", tc.comp, tc.level)
				}
				if !bytes.Equal(out, in) {
					t.Errorf("%v/%d: stored block differs from input", tc.comp, tc.level)
				}
				continue
			}
			if len(out) >= len(in) {
				t.Errorf("%v/%d: compressed %d >= %d", tc.comp, tc.level, len(out), len(in))
			}
			back, err := d.decompress(nil, out, 131072)
			if err != nil {
				t.Fatalf("%v/%d: decompress: %v", tc.comp, tc.level, err)
			}
			if !bytes.Equal(back, in) {
				t.Errorf("%v/%d: round trip differs", tc.comp, tc.level)
			}
			if _, err := d.decompress(nil, out, len(in)-1); err == nil {
				t.Errorf("%v/%d: decompressing beyond max did not fail", tc.comp, tc.level)
			}
		}
	}
}

func TestCodecBadLevel(t *testing.T) {
	for _, tc := range []struct {
		comp  Compression
		level int
	}{{Gzip, 10}, {Zstd, 23}, {XZ, 3}, {LZ4, 13}, {CompNone, 1}, {LZO, 0}} {
		if _, err := newCodec(tc.comp, tc.level, 131072); err == nil {
			t.Errorf("%v level %d accepted", tc.comp, tc.level)
		}
	}
	if _, err := newCodec(LZO, 0, 4096); !errors.Is(err, ErrUnsupportedCompression) {
		t.Errorf("lzo: %v, want ErrUnsupportedCompression", err)
	}
}

// TestCompressorTableLevels: every level the table accepts makes a codec,
// the ones around the range do not, and level 0 is the table's default.
func TestCompressorTableLevels(t *testing.T) {
	for _, ci := range Compressors() {
		c, err := newCodec(ci.Comp, 0, 4096)
		if err != nil || c.level != ci.DefaultLevel {
			t.Errorf("%s default: level %v, %v; want %d", ci.Name, c, err, ci.DefaultLevel)
		}
		if !ci.TakesLevel() {
			if _, err := newCodec(ci.Comp, 1, 4096); err == nil || ci.CheckLevel(0) == nil {
				t.Errorf("%s takes no level but level 1 is accepted", ci.Name)
			}
			continue
		}
		for l := ci.MinLevel; l <= ci.MaxLevel; l++ {
			if l == 0 {
				continue // 0 is the default for the codec
			}
			if _, err := newCodec(ci.Comp, l, 4096); err != nil || ci.CheckLevel(l) != nil {
				t.Errorf("%s level %d: %v", ci.Name, l, err)
			}
		}
		if _, err := newCodec(ci.Comp, ci.MaxLevel+1, 4096); err == nil || ci.CheckLevel(ci.MaxLevel+1) == nil {
			t.Errorf("%s level %d accepted", ci.Name, ci.MaxLevel+1)
		}
		if ci.CheckLevel(ci.MinLevel-1) == nil {
			t.Errorf("%s level %d accepted", ci.Name, ci.MinLevel-1)
		}
	}
}

// TestLZ4LevelOneIsHighCompression: lz4 level 1 is the high-compression
// compressor, as the docs say (it was the fast one, like level 0), and the
// options record says so (LZ4HC flag, as mksquashfs -Xhc writes it).
func TestLZ4LevelOneIsHighCompression(t *testing.T) {
	rnd := rand.New(rand.NewSource(3))
	words := []string{"integrity ", "measurement ", "architecture ", "squashfs ", "kernel ", "appraisal "}
	var in []byte
	for len(in) < 128<<10 {
		in = append(in, words[rnd.Intn(len(words))]...)
	}
	out := map[int][]byte{}
	for _, level := range []int{0, 1, 9} {
		c, err := newCodec(LZ4, level, 128<<10)
		if err != nil {
			t.Fatal(err)
		}
		var o LZ4Options
		if _, err := o.decode(c.options(), 0); err != nil {
			t.Fatal(err)
		}
		if hc := o.Flags&LZ4HC != 0; hc != (level > 0) {
			t.Errorf("level %d: LZ4HC flag %v", level, hc)
		}
		b, ok, err := c.compress(nil, in)
		if err != nil || !ok {
			t.Fatalf("level %d: %v %v", level, ok, err)
		}
		out[level] = append([]byte(nil), b...)
	}
	if bytes.Equal(out[0], out[1]) {
		t.Error("lz4 level 1 gives the fast compressor's bytes")
	}
	if len(out[9]) >= len(out[0]) {
		t.Errorf("lz4 level 9 (%d bytes) not smaller than level 0 (%d)", len(out[9]), len(out[0]))
	}
}
