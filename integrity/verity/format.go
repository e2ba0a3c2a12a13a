// Package verity writes and checks dm-verity hash trees (format 1, as the
// kernel's drivers/md/dm-verity-target.c reads them and as cryptsetup's
// veritysetup writes them: lib/verity/verity.c, verity_hash.c; kernel
// Documentation/admin-guide/device-mapper/verity.rst).
//
// The data device is split into data blocks; each is hashed as
// sha256(salt || block) (format 1 puts the salt first; format 0, Chrome OS,
// puts it last and is not written here). The digests are packed into hash
// blocks, each digest in a slot of the next power of two of the digest
// size (32 bytes for sha256, so no gap), the rest of the block zero. The
// hash blocks of one level are hashed the same way to make the level above,
// until one block remains; its hash is the root hash. On disk the levels are
// stored top first:
//
//	hash offset   superblock (512 bytes, padded to a hash block; absent with NoSuperblock)
//	              level L-1 (one block) | level L-2 | ... | level 0
//
// With one data block there is no hash block and the root hash is that
// block's hash. imaforge appends the hash area to the image file, so the
// image is both the data and the hash device (veritysetup --hash-offset).
// RAUC's verity bundles use the same tree without a superblock and with a
// 32-byte salt (rauc src/verity_hash.c).
package verity

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// Sizes and constants of the format.
const (
	// BlockSize is the data and hash block size imaforge writes (4 KiB, the
	// page size, which the kernel requires data blocks not to exceed).
	BlockSize = 4096
	// DigestSize is the size of a sha256 digest, the only hash written.
	DigestSize = 32
	// HashName is the superblock's algorithm name.
	HashName = "sha256"
	// SuperblockSize is the size of struct verity_sb.
	SuperblockSize = 512
	// MaxSaltSize is the size of the superblock's salt field.
	MaxSaltSize = 256
	// maxLevels is cryptsetup's VERITY_MAX_LEVELS.
	maxLevels = 63
)

// Signature is the magic at the start of the superblock.
var Signature = [8]byte{'v', 'e', 'r', 'i', 't', 'y', 0, 0}

// Errors matched with errors.Is.
var (
	// ErrFormat: a superblock or parameters that are not a valid format 1
	// sha256 hash tree.
	ErrFormat = errors.New("invalid dm-verity format")
	// ErrMismatch: data or hash blocks do not match the root hash.
	ErrMismatch = errors.New("dm-verity hash mismatch")
)

// Superblock is struct verity_sb (cryptsetup lib/verity/verity.c), stored
// at the hash offset; all integers little-endian.
type Superblock struct {
	// 0: Signature "verity\0\0"
	Version       uint32   // 8: superblock version, 1
	HashType      uint32   // 12: 0 Chrome OS, 1 normal (salt first)
	UUID          [16]byte // 16: UUID of the hash device
	Algorithm     string   // 32: hash name, NUL-padded to 32 bytes, lower case
	DataBlockSize uint32   // 64
	HashBlockSize uint32   // 68
	DataBlocks    uint64   // 72: number of data blocks
	Salt          []byte   // 80: salt_size (u16), 6 pad bytes, 88: salt[256]
	// 344..512: zero padding
}

// Marshal encodes the superblock in its 512 bytes.
func (sb *Superblock) Marshal() ([]byte, error) {
	if len(sb.Salt) > MaxSaltSize {
		return nil, fmt.Errorf("%w: salt of %d bytes (at most %d)", ErrFormat, len(sb.Salt), MaxSaltSize)
	}
	if len(sb.Algorithm) == 0 || len(sb.Algorithm) > 31 {
		return nil, fmt.Errorf("%w: algorithm name %q", ErrFormat, sb.Algorithm)
	}
	b := make([]byte, SuperblockSize)
	le := binary.LittleEndian
	copy(b[0:8], Signature[:])
	le.PutUint32(b[8:], sb.Version)
	le.PutUint32(b[12:], sb.HashType)
	copy(b[16:32], sb.UUID[:])
	copy(b[32:64], sb.Algorithm)
	le.PutUint32(b[64:], sb.DataBlockSize)
	le.PutUint32(b[68:], sb.HashBlockSize)
	le.PutUint64(b[72:], sb.DataBlocks)
	le.PutUint16(b[80:], uint16(len(sb.Salt)))
	copy(b[88:], sb.Salt)
	return b, nil
}

// ParseSuperblock decodes a superblock as cryptsetup's VERITY_read_sb
// accepts it: the signature, version 1, hash type 0 or 1, block sizes
// powers of two from 512 bytes to 512 KiB, a salt of at most 256 bytes.
// Encoding the result with Marshal gives b[:512] back when its padding is
// zero.
func ParseSuperblock(b []byte) (*Superblock, error) {
	if len(b) < SuperblockSize {
		return nil, fmt.Errorf("%w: superblock of %d bytes", ErrFormat, len(b))
	}
	if !bytes.Equal(b[:8], Signature[:]) {
		return nil, fmt.Errorf("%w: no verity signature", ErrFormat)
	}
	le := binary.LittleEndian
	sb := &Superblock{
		Version:       le.Uint32(b[8:]),
		HashType:      le.Uint32(b[12:]),
		DataBlockSize: le.Uint32(b[64:]),
		HashBlockSize: le.Uint32(b[68:]),
		DataBlocks:    le.Uint64(b[72:]),
	}
	copy(sb.UUID[:], b[16:32])
	alg := b[32:64]
	if i := bytes.IndexByte(alg, 0); i >= 0 {
		alg = alg[:i]
	}
	sb.Algorithm = string(alg)
	if sb.Version != 1 {
		return nil, fmt.Errorf("%w: superblock version %d", ErrFormat, sb.Version)
	}
	if sb.HashType > 1 {
		return nil, fmt.Errorf("%w: hash type %d", ErrFormat, sb.HashType)
	}
	for _, s := range []uint32{sb.DataBlockSize, sb.HashBlockSize} {
		if s < 512 || s > 512*1024 || s&(s-1) != 0 {
			return nil, fmt.Errorf("%w: block size %d", ErrFormat, s)
		}
	}
	n := int(le.Uint16(b[80:]))
	if n > MaxSaltSize {
		return nil, fmt.Errorf("%w: salt size %d", ErrFormat, n)
	}
	sb.Salt = append([]byte(nil), b[88:88+n]...)
	return sb, nil
}

// Params are the parameters of one hash tree, as given to veritysetup
// format/verify and to the kernel's verity target table.
type Params struct {
	// DataBlocks is the number of 4 KiB data blocks (at least 1).
	DataBlocks uint64
	// HashOffset is the byte offset of the hash area in the hash device; for
	// a tree appended to its data, the data size. A multiple of 4 KiB.
	HashOffset uint64
	// Salt is hashed before every block (format 1), at most 256 bytes.
	Salt []byte
	// UUID is written into the superblock.
	UUID [16]byte
	// NoSuperblock omits the superblock (veritysetup --no-superblock, RAUC
	// bundles): the first hash block is at HashOffset.
	NoSuperblock bool
}

// Layout is where each level of a tree lies, in hash blocks from the start
// of the hash device.
type Layout struct {
	// Levels[i] is the first block and the block count of level i (0 is
	// the level over the data blocks); the highest level has one block.
	Levels []LevelExtent
	// End is the block after the last hash block.
	End uint64
}

// LevelExtent is one level's place in the hash area.
type LevelExtent struct{ Start, Blocks uint64 }

// hashesPerBlock is 2^floor(log2(BlockSize/DigestSize)) (cryptsetup
// hash_levels: hash_per_block_bits).
const hashPerBlockBits = 7 // 4096/32 = 128

// Check returns an error naming what is wrong with p.
func (p *Params) Check() error {
	switch {
	case p.DataBlocks == 0:
		return fmt.Errorf("%w: no data blocks", ErrFormat)
	case p.HashOffset%BlockSize != 0:
		return fmt.Errorf("%w: hash offset %d not a multiple of %d", ErrFormat, p.HashOffset, BlockSize)
	case len(p.Salt) > MaxSaltSize:
		return fmt.Errorf("%w: salt of %d bytes", ErrFormat, len(p.Salt))
	case p.DataBlocks > (1<<63)/BlockSize:
		return fmt.Errorf("%w: %d data blocks", ErrFormat, p.DataBlocks)
	}
	return nil
}

// Layout computes where the levels of p's tree go, as cryptsetup's
// hash_levels does: level i has ceil(DataBlocks / 128^(i+1)) blocks, the
// highest level comes first, right after the superblock's block.
func (p *Params) Layout() (Layout, error) {
	if err := p.Check(); err != nil {
		return Layout{}, err
	}
	levels := 0
	for hashPerBlockBits*levels < 64 && (p.DataBlocks-1)>>(hashPerBlockBits*levels) != 0 {
		levels++
	}
	if levels > maxLevels {
		return Layout{}, fmt.Errorf("%w: %d levels", ErrFormat, levels)
	}
	pos := p.HashOffset / BlockSize
	if !p.NoSuperblock {
		pos++ // (offset + sizeof(verity_sb) + bs - 1) / bs for an aligned offset
	}
	l := Layout{Levels: make([]LevelExtent, levels)}
	for i := levels - 1; i >= 0; i-- {
		shift := uint((i + 1) * hashPerBlockBits)
		n := (p.DataBlocks + (uint64(1) << shift) - 1) >> shift
		l.Levels[i] = LevelExtent{Start: pos, Blocks: n}
		pos += n
	}
	l.End = pos
	return l, nil
}

// HashAreaSize is the size in bytes of the hash area p needs (superblock
// block included).
func (p *Params) HashAreaSize() (uint64, error) {
	l, err := p.Layout()
	if err != nil {
		return 0, err
	}
	return l.End*BlockSize - p.HashOffset, nil
}

// Superblock returns the superblock veritysetup writes for p.
func (p *Params) Superblock() *Superblock {
	return &Superblock{
		Version: 1, HashType: 1, UUID: p.UUID, Algorithm: HashName,
		DataBlockSize: BlockSize, HashBlockSize: BlockSize,
		DataBlocks: p.DataBlocks, Salt: p.Salt,
	}
}

// FormatUUID prints a UUID as libuuid's uuid_unparse does.
func FormatUUID(u [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
