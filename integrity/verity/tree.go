package verity

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
)

// Digest is a sha256 digest of one block.
type Digest = [DigestSize]byte

// HashBlock returns sha256(salt || block), the format 1 hash of a data or
// hash block.
func HashBlock(salt, block []byte) Digest {
	h := sha256.New()
	h.Write(salt)
	h.Write(block)
	var d Digest
	h.Sum(d[:0])
	return d
}

// Tree is a complete hash tree: its parameters, the hash blocks of every
// level and the root hash.
type Tree struct {
	Params Params
	Layout Layout
	// levels[i] holds level i's hash blocks, concatenated.
	levels [][]byte
	root   Digest
}

// Root returns the root hash.
func (t *Tree) Root() []byte { r := t.root; return r[:] }

// RootHex returns the root hash in lower-case hex, as veritysetup prints it
// and the kernel's table takes it.
func (t *Tree) RootHex() string { return hex.EncodeToString(t.root[:]) }

// Size is the size of the hash area WriteTo writes.
func (t *Tree) Size() int64 { return int64(t.Layout.End*BlockSize - t.Params.HashOffset) }

// NewTree builds the tree of p over the data blocks' digests (data[i] =
// HashBlock(p.Salt, data block i)); len(data) must be p.DataBlocks.
func NewTree(p Params, data []Digest) (*Tree, error) {
	if uint64(len(data)) != p.DataBlocks {
		return nil, fmt.Errorf("%w: %d digests for %d data blocks", ErrFormat, len(data), p.DataBlocks)
	}
	l, err := p.Layout()
	if err != nil {
		return nil, err
	}
	t := &Tree{Params: p, Layout: l, levels: make([][]byte, len(l.Levels))}
	if len(l.Levels) == 0 {
		t.root = data[0]
		return t, nil
	}
	const perBlock = 1 << hashPerBlockBits
	digests := data
	for i, ext := range l.Levels {
		blocks := make([]byte, ext.Blocks*BlockSize)
		for j, d := range digests {
			copy(blocks[j*DigestSize:], d[:])
		}
		t.levels[i] = blocks
		next := make([]Digest, ext.Blocks)
		for b := range next {
			next[b] = HashBlock(p.Salt, blocks[b*BlockSize:(b+1)*BlockSize])
		}
		if uint64((len(digests)+perBlock-1)/perBlock) != ext.Blocks {
			return nil, fmt.Errorf("verity: internal error: level %d has %d blocks for %d digests", i, ext.Blocks, len(digests))
		}
		digests = next
	}
	t.root = digests[0]
	return t, nil
}

// WriteTo writes the hash area: the superblock (unless NoSuperblock) in its
// own block, then the levels from the highest down.
func (t *Tree) WriteTo(w io.Writer) (int64, error) {
	var n int64
	if !t.Params.NoSuperblock {
		sb, err := t.Params.Superblock().Marshal()
		if err != nil {
			return 0, err
		}
		blk := make([]byte, BlockSize)
		copy(blk, sb)
		m, err := w.Write(blk)
		n += int64(m)
		if err != nil {
			return n, err
		}
	}
	for i := len(t.levels) - 1; i >= 0; i-- {
		m, err := w.Write(t.levels[i])
		n += int64(m)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
