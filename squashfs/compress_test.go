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
