//go:build cgo

package squashfs

import (
	"bytes"
	"errors"
	"math/rand"
	"testing"

	"github.com/pierrec/lz4/v4"
)

// TestXZEncoderKeepsMemory: an xz encoder reuses liblzma's memory from one
// block to the next (it allocated ~1.6 MiB per block, faulted in fresh each
// time), and what it writes with reused memory equals what a fresh encoder
// writes, for blocks of every kind (full, a metadata block's 8 KiB, a short
// tail, incompressible) in any order.
func TestXZEncoderKeepsMemory(t *testing.T) {
	rnd := rand.New(rand.NewSource(7))
	random := make([]byte, 131072)
	rnd.Read(random)
	text := bytes.Repeat([]byte("extended verification module\n"), 4520)[:131072]
	blocks := [][]byte{text, text[:MetadataSize], random, text[:1000], random[:5000], text}
	reused, err := newXZBlockEncoder(131072)
	if err != nil {
		t.Fatal(err)
	}
	e := reused.(*cXZEncoder)
	kept := -1
	for i, b := range blocks {
		got, err := e.encode(make([]byte, 0, len(b)), b)
		if err != nil {
			t.Fatal(err)
		}
		fresh, err := newXZBlockEncoder(131072)
		if err != nil {
			t.Fatal(err)
		}
		want, err := fresh.encode(make([]byte, 0, len(b)), b)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("block %d (%d bytes): the encoder with kept memory wrote %d bytes unlike a fresh one's %d", i, len(b), len(got), len(want))
		}
		if bytes.Equal(got, b) {
			continue // stored: nothing to decode
		}
		back, err := cDecodeXZ(nil, got, len(b))
		if err != nil || !bytes.Equal(back, b) {
			t.Fatalf("block %d does not decode to its content: %v", i, err)
		}
		n := e.cachedBlocks()
		if n == 0 {
			t.Fatalf("block %d: liblzma's memory was not kept", i)
		}
		if kept >= 0 && n != kept {
			t.Fatalf("block %d: %d blocks of memory kept, %d after the first block (a new allocation per block)", i, n, kept)
		}
		kept = n
	}
}

// FuzzXZCheck: whatever the block cache's xz check (cDecodeXZ, the block's
// CRC32 checked in Go) accepts, liblzma checking the CRC32 itself accepts
// too, with the same output.
func FuzzXZCheck(f *testing.F) {
	raw := bytes.Repeat([]byte("integrity measurement architecture\n"), 300)
	c, err := newCodec(XZ, 0, 128<<10)
	if err != nil {
		f.Fatal(err)
	}
	good, _, err := c.compress(nil, raw)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(bytes.Clone(good), uint16(len(raw)))
	f.Add(xzTwoBlocks(f, raw), uint16(len(raw)))
	f.Add(bytes.Clone(good[len(good)-12:]), uint16(len(raw)))
	f.Fuzz(func(t *testing.T, src []byte, max uint16) {
		got, err := cDecodeXZ(nil, src, int(max))
		if err != nil {
			if !errors.Is(err, errXZDecode) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		want, err := cDecodeXZLiblzma(nil, src, int(max))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("accepted %d bytes that liblzma's own check refuses (%v) or decodes otherwise", len(src), err)
		}
	})
}

// TestLZ4HCEncoderKeepsState: an LZ4 HC encoder compresses every block in
// the one LZ4_streamHC_t it allocated (LZ4_compress_HC allocated and freed
// 256 KiB per call), and what it writes after earlier blocks equals what a
// fresh encoder writes and decodes to the block, at the lowest, the default
// -Xhc (9) and the highest level, for blocks of every kind in any order.
func TestLZ4HCEncoderKeepsState(t *testing.T) {
	rnd := rand.New(rand.NewSource(8))
	random := make([]byte, 131072)
	rnd.Read(random)
	text := bytes.Repeat([]byte("extended verification module\n"), 4520)[:131072]
	blocks := [][]byte{text, text[:MetadataSize], random, text[:1000], random[:5000], text[7:], text}
	for _, level := range []int{1, 9, 12} {
		reused, err := newLZ4BlockEncoder(level)
		if err != nil {
			t.Fatal(err)
		}
		e := reused.(*cLZ4Encoder)
		state := e.state
		if state == nil {
			t.Fatalf("level %d: no HC state", level)
		}
		for i, b := range blocks {
			got, err := e.encode(make([]byte, 0, len(b)), b)
			if err != nil {
				t.Fatal(err)
			}
			if e.state != state {
				t.Fatalf("level %d, block %d: the encoder's HC state changed", level, i)
			}
			fresh, err := newLZ4BlockEncoder(level)
			if err != nil {
				t.Fatal(err)
			}
			want, err := fresh.encode(make([]byte, 0, len(b)), b)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("level %d, block %d (%d bytes): the encoder with a kept state wrote %d bytes unlike a fresh one's %d", level, i, len(b), len(got), len(want))
			}
			if bytes.Equal(got, b) {
				continue // stored
			}
			back := make([]byte, len(b))
			if n, err := lz4.UncompressBlock(got, back); err != nil || !bytes.Equal(back[:n], b) {
				t.Fatalf("level %d, block %d does not decode to its content: %v", level, i, err)
			}
		}
	}
	fast, err := newLZ4BlockEncoder(0)
	if err != nil {
		t.Fatal(err)
	}
	if fast.(*cLZ4Encoder).state != nil {
		t.Error("the fast compressor (level 0) allocated an HC state")
	}
}
