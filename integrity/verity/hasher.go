package verity

import (
	"errors"
	"fmt"
	"io"
	"sync"
)

// File is what a BlockHasher writes to: an *os.File, or anything that can be
// written, sought, read back and truncated.
type File interface {
	io.WriteSeeker
	io.ReaderAt
	Truncate(int64) error
}

// BlockHasher passes writes through to a file and hashes each 4 KiB block
// (sha256(salt || block)) as soon as it has been written in full, so a
// hash tree over what was written needs no second pass over the file.
//
// A writer that seeks back and rewrites (a SquashFS writer rolling back a
// duplicate file, then patching its superblock at offset 0) is handled: a
// block rewritten in full is hashed again; a block written only in part
// after a seek is marked stale and read back from the file by Sum, which
// for a SquashFS image is the superblock's block and the block each
// rollback lands in. It is safe for use by one goroutine at a time (calls
// are serialized).
type BlockHasher struct {
	mu    sync.Mutex
	f     File
	salt  []byte
	pos   int64    // current offset
	size  int64    // file size as written
	sums  []Digest // per block
	known []bool   // sums[i] is the hash of block i as it is now
	// buf holds block pos/BlockSize from its start to pos when bufOK.
	buf   []byte
	bufOK bool
	// Reread counts blocks Sum had to read back.
	reread int
}

// NewBlockHasher returns a BlockHasher writing to f from offset 0 (f is
// sought there).
func NewBlockHasher(f File, salt []byte) (*BlockHasher, error) {
	if len(salt) > MaxSaltSize {
		return nil, fmt.Errorf("%w: salt of %d bytes", ErrFormat, len(salt))
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	return &BlockHasher{f: f, salt: append([]byte(nil), salt...), buf: make([]byte, 0, BlockSize), bufOK: true}, nil
}

func (h *BlockHasher) grow(block int64) {
	for int64(len(h.sums)) <= block {
		h.sums = append(h.sums, Digest{})
		h.known = append(h.known, false)
	}
}

// Write writes p at the current offset and hashes the blocks it completes.
func (h *BlockHasher) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n, err := h.f.Write(p)
	h.feed(p[:n])
	return n, err
}

func (h *BlockHasher) feed(p []byte) {
	for len(p) > 0 {
		blk := h.pos / BlockSize
		h.grow(blk)
		room := BlockSize - int(h.pos%BlockSize)
		take := min(room, len(p))
		if h.bufOK {
			h.buf = append(h.buf, p[:take]...)
		}
		h.known[blk] = false
		h.pos += int64(take)
		p = p[take:]
		if h.pos%BlockSize == 0 {
			if h.bufOK {
				h.sums[blk] = HashBlock(h.salt, h.buf)
				h.known[blk] = true
			}
			h.buf, h.bufOK = h.buf[:0], true
		}
		h.size = max(h.size, h.pos)
	}
}

// Seek moves the write offset. A block left partly written stays stale
// until Sum reads it back.
func (h *BlockHasher) Seek(off int64, whence int) (int64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n, err := h.f.Seek(off, whence)
	if err != nil {
		return n, err
	}
	if n != h.pos {
		h.pos = n
		h.buf = h.buf[:0]
		h.bufOK = n%BlockSize == 0
	}
	return n, nil
}

// Truncate truncates the file to n bytes.
func (h *BlockHasher) Truncate(n int64) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.f.Truncate(n); err != nil {
		return err
	}
	blocks := (n + BlockSize - 1) / BlockSize
	if int64(len(h.sums)) > blocks {
		h.sums, h.known = h.sums[:blocks], h.known[:blocks]
	}
	if n%BlockSize != 0 && blocks > 0 {
		h.known[blocks-1] = false
	}
	h.size = n
	if h.pos > n {
		h.bufOK = false // writing past the end would leave a hole
	}
	return nil
}

// ReadAt reads from the underlying file.
func (h *BlockHasher) ReadAt(p []byte, off int64) (int, error) { return h.f.ReadAt(p, off) }

// Size returns the size of what has been written.
func (h *BlockHasher) Size() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.size
}

// Reread reports how many blocks Sum read back from the file.
func (h *BlockHasher) Reread() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.reread
}

// ErrUnaligned: the data written is not a whole number of blocks.
var ErrUnaligned = errors.New("data size is not a multiple of 4096")

// Sum returns the digests of all data blocks written, reading back the
// blocks whose last write was partial. The size written must be a multiple
// of BlockSize.
func (h *BlockHasher) Sum() ([]Digest, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.size%BlockSize != 0 {
		return nil, fmt.Errorf("verity: %d bytes: %w", h.size, ErrUnaligned)
	}
	blocks := h.size / BlockSize
	h.grow(blocks - 1)
	buf := make([]byte, BlockSize)
	for i := int64(0); i < blocks; i++ {
		if h.known[i] {
			continue
		}
		if _, err := h.f.ReadAt(buf, i*BlockSize); err != nil {
			return nil, fmt.Errorf("verity: reading back block %d: %w", i, err)
		}
		h.sums[i] = HashBlock(h.salt, buf)
		h.known[i] = true
		h.reread++
	}
	return append([]Digest(nil), h.sums[:blocks]...), nil
}
