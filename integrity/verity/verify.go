package verity

import (
	"bytes"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"io"
)

// MismatchError reports where a device does not match its root hash. It
// matches ErrMismatch with errors.Is.
type MismatchError struct {
	// DataBlocks lists data blocks whose hash differs from the stored hash
	// tree's (at most MaxReported of them), in order.
	DataBlocks []uint64
	// More counts mismatched data blocks beyond DataBlocks.
	More uint64
	// HashArea is true when the stored hash area (superblock aside) is not
	// the tree of the data, e.g. a hash block was rewritten.
	HashArea bool
	// Root is the root hash of the data as it is.
	Root string
}

// MaxReported caps MismatchError.DataBlocks.
const MaxReported = 64

func (e *MismatchError) Error() string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%v: root hash of the data is %s", ErrMismatch, e.Root)
	if n := uint64(len(e.DataBlocks)) + e.More; n > 0 {
		fmt.Fprintf(&b, "; %d data block(s) differ from the hash tree, first at byte %d", n, e.DataBlocks[0]*BlockSize)
	}
	if e.HashArea {
		b.WriteString("; the stored hash tree is not the data's")
	}
	return b.String()
}

func (e *MismatchError) Unwrap() error { return ErrMismatch }

// Compute reads the data blocks of p from r and returns the tree over them.
func Compute(r io.ReaderAt, p Params) (*Tree, error) {
	if err := p.Check(); err != nil {
		return nil, err
	}
	sums := make([]Digest, p.DataBlocks)
	const chunk = 256 // blocks per read
	buf := make([]byte, chunk*BlockSize)
	for b := uint64(0); b < p.DataBlocks; b += chunk {
		n := min(chunk, p.DataBlocks-b)
		if _, err := r.ReadAt(buf[:n*BlockSize], int64(b*BlockSize)); err != nil {
			return nil, fmt.Errorf("verity: reading data block %d: %w", b, err)
		}
		for i := uint64(0); i < n; i++ {
			sums[b+i] = HashBlock(p.Salt, buf[i*BlockSize:(i+1)*BlockSize])
		}
	}
	return NewTree(p, sums)
}

// Verify checks the data blocks and the stored hash area of p in r (one
// ReaderAt for both, the hash area at p.HashOffset) against root, as
// `veritysetup verify` does. A mismatch gives a *MismatchError naming the
// data blocks that differ from the stored tree.
func Verify(r io.ReaderAt, p Params, root []byte) error {
	t, err := Compute(r, p)
	if err != nil {
		return err
	}
	var stored bytes.Buffer
	if _, err := t.WriteTo(&stored); err != nil {
		return err
	}
	have := make([]byte, stored.Len())
	if _, err := r.ReadAt(have, int64(p.HashOffset)); err != nil {
		return fmt.Errorf("verity: reading the hash area at %d: %w", p.HashOffset, err)
	}
	want := stored.Bytes()
	skip := 0
	if !p.NoSuperblock {
		skip = BlockSize // the superblock is not covered by the root hash
	}
	rootOK := subtle.ConstantTimeCompare(t.Root(), root) == 1
	if rootOK && bytes.Equal(have[skip:], want[skip:]) {
		return nil
	}
	e := &MismatchError{Root: hex.EncodeToString(t.Root()), HashArea: !storedTreeOK(have, t.Layout, p, root)}
	if len(t.Layout.Levels) == 0 && !rootOK {
		e.DataBlocks = []uint64{0} // the root hash is the one data block's
	}
	if len(t.Layout.Levels) > 0 {
		l0 := t.Layout.Levels[0]
		off := int64(l0.Start*BlockSize - p.HashOffset)
		for i := uint64(0); i < p.DataBlocks; i++ {
			a := have[off+int64(i*DigestSize):][:DigestSize]
			b := want[off+int64(i*DigestSize):][:DigestSize]
			if !bytes.Equal(a, b) {
				if len(e.DataBlocks) < MaxReported {
					e.DataBlocks = append(e.DataBlocks, i)
				} else {
					e.More++
				}
			}
		}
	}
	return e
}

// storedTreeOK reports whether the stored hash area (have, from
// p.HashOffset) is a consistent tree for root: each level's blocks hash to
// the digests stored in the level above, the top block to root, and unused
// digest slots are zero. A data change leaves the stored tree consistent; a
// rewritten hash block does not.
func storedTreeOK(have []byte, l Layout, p Params, root []byte) bool {
	base := p.HashOffset / BlockSize
	block := func(abs uint64) []byte {
		off := (abs - base) * BlockSize
		return have[off : off+BlockSize]
	}
	n := len(l.Levels)
	if n == 0 {
		return true // no hash blocks
	}
	top := HashBlock(p.Salt, block(l.Levels[n-1].Start))
	if subtle.ConstantTimeCompare(top[:], root) != 1 {
		return false
	}
	entries := p.DataBlocks
	for i := 0; i < n; i++ {
		ext := l.Levels[i]
		for b := uint64(0); b < ext.Blocks; b++ {
			blk := block(ext.Start + b)
			if i+1 < n {
				d := HashBlock(p.Salt, blk)
				up := block(l.Levels[i+1].Start + b/128)
				if !bytes.Equal(up[(b%128)*DigestSize:][:DigestSize], d[:]) {
					return false
				}
			}
			// Slots past the last entry are zero.
			used := min(entries-b*128, 128)
			for _, c := range blk[used*DigestSize:] {
				if c != 0 {
					return false
				}
			}
		}
		entries = ext.Blocks
	}
	return true
}
