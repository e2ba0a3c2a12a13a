package squashfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// streamInput is 18 MiB of text-like data, compressible but not trivially:
// three jobs for libzstd's threads at level 3 (jobs of 4 windows, 8 MiB).
func streamInput() []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"func ", "return ", "if err != nil {\n", "}\n", "package ", "import ", "\t", "x", "y := ", "0x1f", "// comment\n"}
	var b bytes.Buffer
	for b.Len() < 18<<20 {
		b.WriteString(words[rng.IntN(len(words))])
		if rng.IntN(50) == 0 {
			var r [16]byte
			for i := range r {
				r[i] = byte(rng.Uint32())
			}
			b.Write(r[:])
		}
	}
	return b.Bytes()
}

// compressStream compresses data through NewZstdStream in writes of the
// given sizes (cycled; 0: one write).
func compressStream(t *testing.T, data []byte, level, threads int, sizes ...int) []byte {
	t.Helper()
	var out bytes.Buffer
	z, err := NewZstdStream(&out, level, threads)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; len(data) > 0; i++ {
		n := len(data)
		if len(sizes) > 0 && sizes[i%len(sizes)] > 0 {
			n = min(n, sizes[i%len(sizes)])
		}
		if k, err := z.Write(data[:n]); k != n || err != nil {
			t.Fatalf("write: %d, %v", k, err)
		}
		data = data[n:]
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestZstdStream: one frame with the content checksum and no content size
// that decodes to the input; the bytes depend on the level only, not on
// how the input is split into writes, and with libzstd's threads not on how
// many there are (threads=0, in the caller's thread, is a framing of its
// own).
func TestZstdStream(t *testing.T) {
	if !cgoCompressors {
		_, err := NewZstdStream(io.Discard, 3, 0)
		if !errors.Is(err, ErrNoEncoder) || !bytes.Contains([]byte(err.Error()), []byte("tar.zst needs the cgo build")) {
			t.Fatalf("without cgo: %v, want ErrNoEncoder naming tar.zst", err)
		}
		return
	}
	data := streamInput()
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	for _, threads := range []int{0, 1} {
		ref := compressStream(t, data, 3, threads)
		// Frame header (RFC 8878 3.1.1.1): magic, then the descriptor:
		// no content size field (bits 7-6 0, single segment 0), checksum (bit 2).
		if binary.LittleEndian.Uint32(ref) != 0xFD2FB528 || ref[4]&0xC4 != 0x04 || ref[4]&0x20 != 0 {
			t.Errorf("threads %d: frame header % x, want the checksum flag and no content size", threads, ref[:6])
		}
		got, err := dec.DecodeAll(ref, nil)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("threads %d: does not decode to the input (%v)", threads, err)
		}
		if len(ref) >= len(data)/2 {
			t.Errorf("threads %d: %d bytes from %d: not compressed", threads, len(ref), len(data))
		}
		variants := map[string][]byte{
			"512-byte writes": compressStream(t, data, 3, threads, 512),
			"uneven writes":   compressStream(t, data, 3, threads, 1, 700, 128<<10, 3<<20, 13),
			"1 MiB writes":    compressStream(t, data, 3, threads, 1<<20),
		}
		if threads > 0 {
			variants["2 threads"] = compressStream(t, data, 3, 2, 4096)
			variants["4 threads"] = compressStream(t, data, 3, 4, 100<<10, 9)
		}
		for name, b := range variants {
			if !bytes.Equal(b, ref) {
				t.Errorf("threads %d: %s give other bytes (%d, want %d)", threads, name, len(b), len(ref))
			}
		}
	}
	if b := compressStream(t, data[:1<<20], 1, 0); bytes.Equal(b, compressStream(t, data[:1<<20], 3, 0)) {
		t.Error("level 1 gives the bytes of level 3")
	}
	for _, level := range []int{0, 23, -1} {
		if _, err := NewZstdStream(io.Discard, level, 0); err == nil {
			t.Errorf("level %d accepted", level)
		}
	}
	// An empty stream is one empty frame.
	if b := compressStream(t, nil, 3, 1); len(b) == 0 {
		t.Error("empty stream: no frame")
	} else if got, err := dec.DecodeAll(b, nil); err != nil || len(got) != 0 {
		t.Errorf("empty stream: %d bytes, %v", len(got), err)
	}
}

// failWriter fails every write.
type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// TestZstdStreamWriteError: the destination's error comes back from Write
// or Close and stays.
func TestZstdStreamWriteError(t *testing.T) {
	if !cgoCompressors {
		t.Skip("no zstd stream without cgo (TestZstdStream)")
	}
	z, err := NewZstdStream(failWriter{}, 3, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, werr := z.Write(streamInput())
	cerr := z.Close()
	if werr == nil || cerr == nil || cerr.Error() != "disk full" {
		t.Fatalf("write %v, close %v; want disk full", werr, cerr)
	}
}
