// Package squashfs reads and writes SquashFS 4.0 images as the Linux kernel
// reads them.
//
// The on-disk format is the one described by the kernel's
// fs/squashfs/squashfs_fs.h (the reference for every record in this file) and
// written by squashfs-tools' mksquashfs; squashfs-tools-ng's doc/format.txt is
// a readable summary. All integers are little-endian. An image is laid out as
//
//	superblock (96 bytes) | compressor options (optional metadata block) |
//	data blocks and fragment blocks | inode table | directory table |
//	fragment table | export table | id table | xattr tables
//
// Tables other than data are sequences of metadata blocks: a 2-byte header
// (MetadataHeader) and at most 8 KiB of (usually compressed) payload.
// A reference to a position inside such a table ("inode ref") is
// (block start relative to the table start) << 16 | offset in the
// uncompressed block.
//
// This file holds one Go type per on-disk record, each with its encoder
// (appendTo) and decoder (decode, bounds-checked, returning *FormatError).
package squashfs

import (
	"encoding/binary"
	"fmt"

	"github.com/imaforge/imaforge/squashfs/compinfo"
)

var le = binary.LittleEndian

// Magic is the superblock's s_magic ("hsqs" on disk), SQUASHFS_MAGIC.
const Magic = 0x73717368

// Format constants from squashfs_fs.h.
const (
	SuperblockSize     = 96      // sizeof(struct squashfs_super_block)
	MetadataSize       = 8192    // SQUASHFS_METADATA_SIZE: uncompressed payload of a metadata block
	MetadataUncompBit  = 0x8000  // SQUASHFS_COMPRESSED_BIT: set in a metadata header when stored
	DataUncompBit      = 1 << 24 // SQUASHFS_COMPRESSED_BIT_BLOCK: set in a block size word when stored
	InvalidBlock       = ^uint64(0)
	InvalidFragment    = 0xffffffff // SQUASHFS_INVALID_FRAG: regular file without a tail fragment
	InvalidXattr       = 0xffffffff // SQUASHFS_INVALID_XATTR: inode without xattrs
	MinBlockSize       = 4096       // SQUASHFS_FILE_MIN_SIZE
	MaxBlockSize       = 1 << 20    // SQUASHFS_FILE_MAX_SIZE
	MaxNameLen         = 256        // SQUASHFS_NAME_LEN
	DirHeaderMaxCount  = 256        // SQUASHFS_DIR_COUNT: entries per directory header
	MaxSymlinkLen      = 4095       // PATH_MAX-1, the kernel's limit for a readable link
	VersionMajor       = 4
	VersionMinor       = 0
	dirSizeDotEntries  = 3 // a directory's file_size counts 3 bytes for "." and ".."
	dirIndexBlockLimit = MetadataSize
)

// Superblock flags (squashfs_fs.h SQUASHFS_*_FLAG bit numbers, shown as masks).
const (
	FlagUncompressedInodes    = 0x0001 // SQUASHFS_NOI
	FlagUncompressedData      = 0x0002 // SQUASHFS_NOD
	FlagCheck                 = 0x0004 // SQUASHFS_CHECK (unused)
	FlagUncompressedFragments = 0x0008 // SQUASHFS_NOF
	FlagNoFragments           = 0x0010 // SQUASHFS_NO_FRAG
	FlagAlwaysFragments       = 0x0020 // SQUASHFS_ALWAYS_FRAG
	FlagDuplicates            = 0x0040 // SQUASHFS_DUPLICATE: duplicate files were stored once
	FlagExportable            = 0x0080 // SQUASHFS_EXPORT: an export (NFS lookup) table is present
	FlagUncompressedXattrs    = 0x0100 // SQUASHFS_NOX
	FlagNoXattrs              = 0x0200 // SQUASHFS_NO_XATTR
	FlagCompressorOptions     = 0x0400 // SQUASHFS_COMP_OPT: options record follows the superblock
	FlagUncompressedIDs       = 0x0800 // SQUASHFS_NOID
)

// Compression is a compressor id (squashfs_fs.h ZLIB_COMPRESSION etc.),
// defined with the compressor table in package compinfo.
type Compression = compinfo.Compression

// Compressor ids (see compinfo).
const (
	CompNone = compinfo.CompNone
	Gzip     = compinfo.Gzip
	LZMA     = compinfo.LZMA
	LZO      = compinfo.LZO
	XZ       = compinfo.XZ
	LZ4      = compinfo.LZ4
	Zstd     = compinfo.Zstd
)

// ParseCompression maps a name as mksquashfs's -comp takes it ("gzip",
// "zstd", "xz", "lz4") or "none" to a Compression.
func ParseCompression(s string) (Compression, error) { return compinfo.Parse(s) }

// Superblock is struct squashfs_super_block, at offset 0 of the image.
type Superblock struct {
	Magic               uint32      // 0: Magic
	Inodes              uint32      // 4: number of inodes
	ModTime             uint32      // 8: image creation time (mkfs_time)
	BlockSize           uint32      // 12: data block size, a power of two 4 KiB..1 MiB
	Fragments           uint32      // 16: number of fragment table entries
	Compression         Compression // 20: compressor id
	BlockLog            uint16      // 22: log2(BlockSize)
	Flags               uint16      // 24: Flag* bits
	IDs                 uint16      // 26: number of entries in the id table
	Major               uint16      // 28: 4
	Minor               uint16      // 30: 0
	RootInode           uint64      // 32: inode ref of the root directory
	BytesUsed           uint64      // 40: image size (before padding)
	IDTableStart        uint64      // 48: id lookup table (u64 block pointers)
	XattrIDTableStart   uint64      // 56: xattr id table header, or InvalidBlock
	InodeTableStart     uint64      // 64
	DirectoryTableStart uint64      // 72
	FragmentTableStart  uint64      // 80: fragment lookup table, or InvalidBlock
	ExportTableStart    uint64      // 88: export lookup table, or InvalidBlock
}

func (s *Superblock) appendTo(b []byte) []byte {
	b = le.AppendUint32(b, s.Magic)
	b = le.AppendUint32(b, s.Inodes)
	b = le.AppendUint32(b, s.ModTime)
	b = le.AppendUint32(b, s.BlockSize)
	b = le.AppendUint32(b, s.Fragments)
	b = le.AppendUint16(b, uint16(s.Compression))
	b = le.AppendUint16(b, s.BlockLog)
	b = le.AppendUint16(b, s.Flags)
	b = le.AppendUint16(b, s.IDs)
	b = le.AppendUint16(b, s.Major)
	b = le.AppendUint16(b, s.Minor)
	for _, v := range []uint64{s.RootInode, s.BytesUsed, s.IDTableStart, s.XattrIDTableStart,
		s.InodeTableStart, s.DirectoryTableStart, s.FragmentTableStart, s.ExportTableStart} {
		b = le.AppendUint64(b, v)
	}
	return b
}

// decode parses and validates a superblock (magic, version, block size and
// its log); it does not check table offsets against the image size.
func (s *Superblock) decode(b []byte) error {
	if len(b) < SuperblockSize {
		return short(0, "superblock", SuperblockSize, len(b))
	}
	s.Magic = le.Uint32(b[0:])
	s.Inodes = le.Uint32(b[4:])
	s.ModTime = le.Uint32(b[8:])
	s.BlockSize = le.Uint32(b[12:])
	s.Fragments = le.Uint32(b[16:])
	s.Compression = Compression(le.Uint16(b[20:]))
	s.BlockLog = le.Uint16(b[22:])
	s.Flags = le.Uint16(b[24:])
	s.IDs = le.Uint16(b[26:])
	s.Major = le.Uint16(b[28:])
	s.Minor = le.Uint16(b[30:])
	s.RootInode = le.Uint64(b[32:])
	s.BytesUsed = le.Uint64(b[40:])
	s.IDTableStart = le.Uint64(b[48:])
	s.XattrIDTableStart = le.Uint64(b[56:])
	s.InodeTableStart = le.Uint64(b[64:])
	s.DirectoryTableStart = le.Uint64(b[72:])
	s.FragmentTableStart = le.Uint64(b[80:])
	s.ExportTableStart = le.Uint64(b[88:])
	switch {
	case s.Magic != Magic:
		return &FormatError{Off: 0, Msg: "bad magic", Val: fmt.Sprintf("%#x", s.Magic)}
	case s.Major != VersionMajor || s.Minor != VersionMinor:
		return &FormatError{Off: 28, Msg: "unsupported version", Val: fmt.Sprintf("%d.%d", s.Major, s.Minor)}
	case s.BlockSize < MinBlockSize || s.BlockSize > MaxBlockSize || s.BlockSize&(s.BlockSize-1) != 0:
		return &FormatError{Off: 12, Msg: "bad block size", Val: s.BlockSize}
	case uint32(1)<<s.BlockLog != s.BlockSize:
		return &FormatError{Off: 22, Msg: "block_log does not match block size", Val: s.BlockLog}
	}
	return nil
}

// MetadataHeader is the 2-byte header of a metadata block
// (squashfs_fs.h SQUASHFS_COMPRESSED_SIZE / SQUASHFS_COMPRESSED_BIT).
type MetadataHeader struct {
	Size         uint16 // 0 (bits 0-14): payload bytes on disk, 1..MetadataSize
	Uncompressed bool   // 0 (bit 15): payload stored as is
}

func (h MetadataHeader) appendTo(b []byte) []byte {
	v := h.Size
	if h.Uncompressed {
		v |= MetadataUncompBit
	}
	return le.AppendUint16(b, v)
}

func (h *MetadataHeader) decode(b []byte, off int64) error {
	if len(b) < 2 {
		return short(off, "metadata header", 2, len(b))
	}
	v := le.Uint16(b)
	h.Size, h.Uncompressed = v&^MetadataUncompBit, v&MetadataUncompBit != 0
	if h.Size == 0 || h.Size > MetadataSize {
		return &FormatError{Off: off, Msg: "bad metadata block size", Val: h.Size}
	}
	return nil
}

// BlockSizeWord is a data block or fragment size as stored in a regular file's
// block list and in fragment entries: bits 0-23 the on-disk length, bit 24 set
// when the block is stored uncompressed; 0 is a sparse (all-zero) block.
type BlockSizeWord uint32

// OnDisk is the number of bytes the block occupies in the image.
func (w BlockSizeWord) OnDisk() uint32 { return uint32(w) &^ DataUncompBit }

// Compressed reports whether the block must be decompressed.
func (w BlockSizeWord) Compressed() bool { return uint32(w)&DataUncompBit == 0 }

// MakeBlockSizeWord encodes a block of n on-disk bytes.
func MakeBlockSizeWord(n int, compressed bool) BlockSizeWord {
	if compressed {
		return BlockSizeWord(n)
	}
	return BlockSizeWord(uint32(n) | DataUncompBit)
}

// InodeRef builds an inode/directory reference from a metadata block start
// (relative to its table) and an offset in the uncompressed block
// (squashfs_fs.h SQUASHFS_MKINODE / SQUASHFS_INODE_BLK / SQUASHFS_INODE_OFFSET).
func InodeRef(block uint64, offset uint16) uint64 { return block<<16 | uint64(offset) }

// SplitRef undoes InodeRef.
func SplitRef(ref uint64) (block uint64, offset uint16) { return ref >> 16, uint16(ref) }

// InodeType is an inode's type (squashfs_fs.h SQUASHFS_DIR_TYPE etc.).
// Types 1-7 are "basic", 8-14 the same kinds "extended" (SQUASHFS_L*_TYPE).
// Directory entries always carry the basic type.
type InodeType uint16

// Inode types.
const (
	TypeDir         InodeType = 1
	TypeReg         InodeType = 2
	TypeSymlink     InodeType = 3
	TypeBlockDev    InodeType = 4
	TypeCharDev     InodeType = 5
	TypeFifo        InodeType = 6
	TypeSocket      InodeType = 7
	TypeExtDir      InodeType = 8
	TypeExtReg      InodeType = 9
	TypeExtSymlink  InodeType = 10
	TypeExtBlockDev InodeType = 11
	TypeExtCharDev  InodeType = 12
	TypeExtFifo     InodeType = 13
	TypeExtSocket   InodeType = 14
)

// Basic returns the basic type of t (TypeExtDir -> TypeDir).
func (t InodeType) Basic() InodeType {
	if t > 7 {
		return t - 7
	}
	return t
}

// Extended reports whether t is one of the extended ("long") types.
func (t InodeType) Extended() bool { return t > 7 }

// Valid reports whether t is a known type.
func (t InodeType) Valid() bool { return t >= 1 && t <= 14 }

// InodeHeader is struct squashfs_base_inode, the first 16 bytes of every inode.
type InodeHeader struct {
	Type     InodeType // 0
	Mode     uint16    // 2: permission bits incl. setuid/setgid/sticky (the S_IFMT bits are ignored by the kernel)
	UIDIndex uint16    // 4: index into the id table
	GIDIndex uint16    // 6: index into the id table
	ModTime  uint32    // 8
	Number   uint32    // 12: inode number, 1..Superblock.Inodes
}

// InodeHeaderSize is sizeof(struct squashfs_base_inode).
const InodeHeaderSize = 16

func (h *InodeHeader) appendTo(b []byte) []byte {
	b = le.AppendUint16(b, uint16(h.Type))
	b = le.AppendUint16(b, h.Mode)
	b = le.AppendUint16(b, h.UIDIndex)
	b = le.AppendUint16(b, h.GIDIndex)
	b = le.AppendUint32(b, h.ModTime)
	return le.AppendUint32(b, h.Number)
}

func (h *InodeHeader) decode(b []byte, off int64) error {
	if len(b) < InodeHeaderSize {
		return short(off, "inode header", InodeHeaderSize, len(b))
	}
	h.Type = InodeType(le.Uint16(b[0:]))
	h.Mode = le.Uint16(b[2:])
	h.UIDIndex = le.Uint16(b[4:])
	h.GIDIndex = le.Uint16(b[6:])
	h.ModTime = le.Uint32(b[8:])
	h.Number = le.Uint32(b[12:])
	if !h.Type.Valid() {
		return &FormatError{Off: off, Msg: "bad inode type", Val: uint16(h.Type)}
	}
	return nil
}

// DirInode is struct squashfs_dir_inode (type 1), 32 bytes.
type DirInode struct {
	InodeHeader        // 0
	StartBlock  uint32 // 16: directory table block of the listing, relative to the table
	Nlink       uint32 // 20: 2 + number of subdirectories
	FileSize    uint16 // 24: listing size in bytes + 3
	Offset      uint16 // 26: offset of the listing in its uncompressed block
	Parent      uint32 // 28: parent's inode number (for the root: inode count + 1)
}

// DirInodeSize is sizeof(struct squashfs_dir_inode).
const DirInodeSize = 32

func (in *DirInode) appendTo(b []byte) []byte {
	b = in.InodeHeader.appendTo(b)
	b = le.AppendUint32(b, in.StartBlock)
	b = le.AppendUint32(b, in.Nlink)
	b = le.AppendUint16(b, in.FileSize)
	b = le.AppendUint16(b, in.Offset)
	return le.AppendUint32(b, in.Parent)
}

func (in *DirInode) decode(b []byte, off int64) (int, error) {
	if len(b) < DirInodeSize {
		return 0, short(off, "directory inode", DirInodeSize, len(b))
	}
	if err := in.InodeHeader.decode(b, off); err != nil {
		return 0, err
	}
	in.StartBlock = le.Uint32(b[16:])
	in.Nlink = le.Uint32(b[20:])
	in.FileSize = le.Uint16(b[24:])
	in.Offset = le.Uint16(b[26:])
	in.Parent = le.Uint32(b[28:])
	if in.Offset >= MetadataSize {
		return 0, &FormatError{Off: off + 26, Msg: "directory offset outside its metadata block", Val: in.Offset}
	}
	return DirInodeSize, nil
}

// ExtDirInode is struct squashfs_ldir_inode (type 8), 40 bytes followed by
// IndexCount directory index records. Used for listings of 64 KiB or more, for
// directories with xattrs, and when an index speeds up lookups.
type ExtDirInode struct {
	InodeHeader            // 0
	Nlink       uint32     // 16
	FileSize    uint32     // 20: listing size in bytes + 3
	StartBlock  uint32     // 24
	Parent      uint32     // 28
	IndexCount  uint16     // 32: number of DirIndex records after the inode (i_count)
	Offset      uint16     // 34
	Xattr       uint32     // 36: xattr id, or InvalidXattr
	Index       []DirIndex // 40..
}

// ExtDirInodeSize is sizeof(struct squashfs_ldir_inode) without the index.
const ExtDirInodeSize = 40

func (in *ExtDirInode) appendTo(b []byte) []byte {
	b = in.InodeHeader.appendTo(b)
	b = le.AppendUint32(b, in.Nlink)
	b = le.AppendUint32(b, in.FileSize)
	b = le.AppendUint32(b, in.StartBlock)
	b = le.AppendUint32(b, in.Parent)
	b = le.AppendUint16(b, uint16(len(in.Index)))
	b = le.AppendUint16(b, in.Offset)
	b = le.AppendUint32(b, in.Xattr)
	for i := range in.Index {
		b = in.Index[i].appendTo(b)
	}
	return b
}

func (in *ExtDirInode) decode(b []byte, off int64) (int, error) {
	if len(b) < ExtDirInodeSize {
		return 0, short(off, "extended directory inode", ExtDirInodeSize, len(b))
	}
	if err := in.InodeHeader.decode(b, off); err != nil {
		return 0, err
	}
	in.Nlink = le.Uint32(b[16:])
	in.FileSize = le.Uint32(b[20:])
	in.StartBlock = le.Uint32(b[24:])
	in.Parent = le.Uint32(b[28:])
	in.IndexCount = le.Uint16(b[32:])
	in.Offset = le.Uint16(b[34:])
	in.Xattr = le.Uint32(b[36:])
	if in.Offset >= MetadataSize {
		return 0, &FormatError{Off: off + 34, Msg: "directory offset outside its metadata block", Val: in.Offset}
	}
	n := ExtDirInodeSize
	in.Index = in.Index[:0]
	for i := 0; i < int(in.IndexCount); i++ {
		var x DirIndex
		m, err := x.decode(b[n:], off+int64(n))
		if err != nil {
			return 0, err
		}
		in.Index = append(in.Index, x)
		n += m
	}
	return n, nil
}

// DirIndex is struct squashfs_dir_index: one entry of an extended directory's
// lookup index, naming the first entry of a directory header that starts a
// new metadata block. The kernel (namei.c get_dir_index_using_name) skips to
// the last index whose Name is <= the wanted name.
type DirIndex struct {
	Index      uint32 // 0: byte offset of the header in the directory's listing
	StartBlock uint32 // 4: directory table block holding that header, relative to the table
	Size       uint32 // 8: len(Name) - 1
	Name       []byte // 12..
}

func (x *DirIndex) appendTo(b []byte) []byte {
	b = le.AppendUint32(b, x.Index)
	b = le.AppendUint32(b, x.StartBlock)
	b = le.AppendUint32(b, uint32(len(x.Name)-1))
	return append(b, x.Name...)
}

func (x *DirIndex) decode(b []byte, off int64) (int, error) {
	if len(b) < 12 {
		return 0, short(off, "directory index", 12, len(b))
	}
	x.Index = le.Uint32(b[0:])
	x.StartBlock = le.Uint32(b[4:])
	x.Size = le.Uint32(b[8:])
	if x.Size >= MaxNameLen {
		return 0, &FormatError{Off: off + 8, Msg: "directory index name too long", Val: x.Size}
	}
	n := 12 + int(x.Size) + 1
	if len(b) < n {
		return 0, short(off, "directory index name", n, len(b))
	}
	x.Name = b[12:n:n]
	return n, nil
}

// RegInode is struct squashfs_reg_inode (type 2), 32 bytes followed by the
// block list: one BlockSizeWord per full block (and per partial last block
// when the file has no fragment).
type RegInode struct {
	InodeHeader          // 0
	StartBlock  uint32   // 16: image offset of the first data block
	Fragment    uint32   // 20: fragment index, or InvalidFragment
	Offset      uint32   // 24: offset of the tail in the uncompressed fragment block
	FileSize    uint32   // 28
	Blocks      []uint32 // 32..: BlockSizeWord values
}

// RegInodeSize is sizeof(struct squashfs_reg_inode) without the block list.
const RegInodeSize = 32

func (in *RegInode) appendTo(b []byte) []byte {
	b = in.InodeHeader.appendTo(b)
	b = le.AppendUint32(b, in.StartBlock)
	b = le.AppendUint32(b, in.Fragment)
	b = le.AppendUint32(b, in.Offset)
	b = le.AppendUint32(b, in.FileSize)
	for _, w := range in.Blocks {
		b = le.AppendUint32(b, w)
	}
	return b
}

// decode parses the inode; blockSize (from the superblock) gives the length
// of the block list.
func (in *RegInode) decode(b []byte, off int64, blockSize uint32) (int, error) {
	if len(b) < RegInodeSize {
		return 0, short(off, "file inode", RegInodeSize, len(b))
	}
	if err := in.InodeHeader.decode(b, off); err != nil {
		return 0, err
	}
	in.StartBlock = le.Uint32(b[16:])
	in.Fragment = le.Uint32(b[20:])
	in.Offset = le.Uint32(b[24:])
	in.FileSize = le.Uint32(b[28:])
	nb := BlockCount(uint64(in.FileSize), blockSize, in.Fragment != InvalidFragment)
	var err error
	in.Blocks, err = decodeBlockList(in.Blocks[:0], b[RegInodeSize:], off+RegInodeSize, nb)
	if err != nil {
		return 0, err
	}
	return RegInodeSize + 4*int(nb), nil
}

// BlockCount is the number of entries in a regular file's block list
// (squashfs-tools: the tail goes to a fragment when there is one).
func BlockCount(fileSize uint64, blockSize uint32, hasFragment bool) uint64 {
	if hasFragment {
		return fileSize / uint64(blockSize)
	}
	return (fileSize + uint64(blockSize) - 1) / uint64(blockSize)
}

func decodeBlockList(dst []uint32, b []byte, off int64, n uint64) ([]uint32, error) {
	if uint64(len(b))/4 < n {
		return nil, short(off, "block list", int(min(n*4, 1<<40)), len(b))
	}
	for i := uint64(0); i < n; i++ {
		w := le.Uint32(b[4*i:])
		if BlockSizeWord(w).OnDisk() > MaxBlockSize {
			return nil, &FormatError{Off: off + int64(4*i), Msg: "bad data block size", Val: w}
		}
		dst = append(dst, w)
	}
	return dst, nil
}

// ExtRegInode is struct squashfs_lreg_inode (type 9), 56 bytes followed by the
// block list. Needed for files of 4 GiB or more, data beyond 4 GiB in the
// image, sparse files, xattrs, or more than one link.
type ExtRegInode struct {
	InodeHeader          // 0
	StartBlock  uint64   // 16
	FileSize    uint64   // 24
	Sparse      uint64   // 32: bytes saved by sparse (all-zero) blocks
	Nlink       uint32   // 40
	Fragment    uint32   // 44
	Offset      uint32   // 48
	Xattr       uint32   // 52
	Blocks      []uint32 // 56..
}

// ExtRegInodeSize is sizeof(struct squashfs_lreg_inode) without the block list.
const ExtRegInodeSize = 56

func (in *ExtRegInode) appendTo(b []byte) []byte {
	b = in.InodeHeader.appendTo(b)
	b = le.AppendUint64(b, in.StartBlock)
	b = le.AppendUint64(b, in.FileSize)
	b = le.AppendUint64(b, in.Sparse)
	b = le.AppendUint32(b, in.Nlink)
	b = le.AppendUint32(b, in.Fragment)
	b = le.AppendUint32(b, in.Offset)
	b = le.AppendUint32(b, in.Xattr)
	for _, w := range in.Blocks {
		b = le.AppendUint32(b, w)
	}
	return b
}

func (in *ExtRegInode) decode(b []byte, off int64, blockSize uint32) (int, error) {
	if len(b) < ExtRegInodeSize {
		return 0, short(off, "extended file inode", ExtRegInodeSize, len(b))
	}
	if err := in.InodeHeader.decode(b, off); err != nil {
		return 0, err
	}
	in.StartBlock = le.Uint64(b[16:])
	in.FileSize = le.Uint64(b[24:])
	in.Sparse = le.Uint64(b[32:])
	in.Nlink = le.Uint32(b[40:])
	in.Fragment = le.Uint32(b[44:])
	in.Offset = le.Uint32(b[48:])
	in.Xattr = le.Uint32(b[52:])
	nb := BlockCount(in.FileSize, blockSize, in.Fragment != InvalidFragment)
	var err error
	in.Blocks, err = decodeBlockList(in.Blocks[:0], b[ExtRegInodeSize:], off+ExtRegInodeSize, nb)
	if err != nil {
		return 0, err
	}
	return ExtRegInodeSize + 4*int(nb), nil
}

// SymlinkInode is struct squashfs_symlink_inode (type 3: 24 bytes + target)
// and, with Type TypeExtSymlink (10), the extended form, which adds a 4-byte
// xattr id after the target.
type SymlinkInode struct {
	InodeHeader        // 0
	Nlink       uint32 // 16
	Size        uint32 // 20: len(Target)
	Target      []byte // 24..: not NUL-terminated
	Xattr       uint32 // 24+Size (extended only)
}

// SymlinkInodeSize is sizeof(struct squashfs_symlink_inode) without the target.
const SymlinkInodeSize = 24

func (in *SymlinkInode) appendTo(b []byte) []byte {
	b = in.InodeHeader.appendTo(b)
	b = le.AppendUint32(b, in.Nlink)
	b = le.AppendUint32(b, uint32(len(in.Target)))
	b = append(b, in.Target...)
	if in.Type.Extended() {
		b = le.AppendUint32(b, in.Xattr)
	}
	return b
}

func (in *SymlinkInode) decode(b []byte, off int64) (int, error) {
	if len(b) < SymlinkInodeSize {
		return 0, short(off, "symlink inode", SymlinkInodeSize, len(b))
	}
	if err := in.InodeHeader.decode(b, off); err != nil {
		return 0, err
	}
	in.Nlink = le.Uint32(b[16:])
	in.Size = le.Uint32(b[20:])
	if in.Size > MaxSymlinkLen {
		return 0, &FormatError{Off: off + 20, Msg: "symlink target too long", Val: in.Size}
	}
	n := SymlinkInodeSize + int(in.Size)
	if len(b) < n {
		return 0, short(off, "symlink target", n, len(b))
	}
	in.Target = b[SymlinkInodeSize:n:n]
	in.Xattr = InvalidXattr
	if in.Type.Extended() {
		if len(b) < n+4 {
			return 0, short(off, "extended symlink inode", n+4, len(b))
		}
		in.Xattr = le.Uint32(b[n:])
		n += 4
	}
	return n, nil
}

// DevInode is struct squashfs_dev_inode (types 4, 5: 24 bytes) and, with an
// extended type (11, 12), struct squashfs_ldev_inode (28 bytes, adds Xattr).
type DevInode struct {
	InodeHeader        // 0
	Nlink       uint32 // 16
	Rdev        uint32 // 20: device number in the kernel's new_encode_dev form (see EncodeDev)
	Xattr       uint32 // 24 (extended only)
}

func (in *DevInode) appendTo(b []byte) []byte {
	b = in.InodeHeader.appendTo(b)
	b = le.AppendUint32(b, in.Nlink)
	b = le.AppendUint32(b, in.Rdev)
	if in.Type.Extended() {
		b = le.AppendUint32(b, in.Xattr)
	}
	return b
}

func (in *DevInode) decode(b []byte, off int64) (int, error) {
	n := 24
	if len(b) >= 2 && InodeType(le.Uint16(b)).Extended() {
		n = 28
	}
	if len(b) < n {
		return 0, short(off, "device inode", n, len(b))
	}
	if err := in.InodeHeader.decode(b, off); err != nil {
		return 0, err
	}
	in.Nlink = le.Uint32(b[16:])
	in.Rdev = le.Uint32(b[20:])
	in.Xattr = InvalidXattr
	if n == 28 {
		in.Xattr = le.Uint32(b[24:])
	}
	return n, nil
}

// EncodeDev packs major and minor as the kernel's new_encode_dev does
// (the form squashfs stores in DevInode.Rdev).
func EncodeDev(major, minor uint32) uint32 {
	return minor&0xff | major<<8&0xfff00 | (minor&^0xff)<<12
}

// DecodeDev undoes EncodeDev (the kernel's new_decode_dev).
func DecodeDev(rdev uint32) (major, minor uint32) {
	return (rdev & 0xfff00) >> 8, rdev&0xff | (rdev>>12)&0xfff00
}

// IPCInode is struct squashfs_ipc_inode (fifo 6, socket 7: 20 bytes) and,
// with an extended type (13, 14), struct squashfs_lipc_inode (24 bytes).
type IPCInode struct {
	InodeHeader        // 0
	Nlink       uint32 // 16
	Xattr       uint32 // 20 (extended only)
}

func (in *IPCInode) appendTo(b []byte) []byte {
	b = in.InodeHeader.appendTo(b)
	b = le.AppendUint32(b, in.Nlink)
	if in.Type.Extended() {
		b = le.AppendUint32(b, in.Xattr)
	}
	return b
}

func (in *IPCInode) decode(b []byte, off int64) (int, error) {
	n := 20
	if len(b) >= 2 && InodeType(le.Uint16(b)).Extended() {
		n = 24
	}
	if len(b) < n {
		return 0, short(off, "ipc inode", n, len(b))
	}
	if err := in.InodeHeader.decode(b, off); err != nil {
		return 0, err
	}
	in.Nlink = le.Uint32(b[16:])
	in.Xattr = InvalidXattr
	if n == 24 {
		in.Xattr = le.Uint32(b[20:])
	}
	return n, nil
}

// DirHeader is struct squashfs_dir_header: it starts a run of at most 256
// directory entries whose inodes share one inode-table block and whose inode
// numbers are within a signed 16-bit delta of InodeNumber.
type DirHeader struct {
	Count       uint32 // 0: number of entries - 1
	StartBlock  uint32 // 4: inode table block of the entries' inodes
	InodeNumber uint32 // 8: base inode number
}

// DirHeaderSize is sizeof(struct squashfs_dir_header).
const DirHeaderSize = 12

func (h *DirHeader) appendTo(b []byte) []byte {
	b = le.AppendUint32(b, h.Count)
	b = le.AppendUint32(b, h.StartBlock)
	return le.AppendUint32(b, h.InodeNumber)
}

func (h *DirHeader) decode(b []byte, off int64) (int, error) {
	if len(b) < DirHeaderSize {
		return 0, short(off, "directory header", DirHeaderSize, len(b))
	}
	h.Count = le.Uint32(b[0:])
	h.StartBlock = le.Uint32(b[4:])
	h.InodeNumber = le.Uint32(b[8:])
	if h.Count >= DirHeaderMaxCount {
		return 0, &FormatError{Off: off, Msg: "directory header count too large", Val: h.Count + 1}
	}
	return DirHeaderSize, nil
}

// DirEntry is struct squashfs_dir_entry, 8 bytes followed by the name.
type DirEntry struct {
	Offset     uint16    // 0: offset of the inode in its inode-table block
	InodeDelta int16     // 2: inode number - DirHeader.InodeNumber
	Type       InodeType // 4: basic type of the inode
	Size       uint16    // 6: len(Name) - 1
	Name       []byte    // 8..: not NUL-terminated
}

// DirEntrySize is sizeof(struct squashfs_dir_entry) without the name.
const DirEntrySize = 8

func (e *DirEntry) appendTo(b []byte) []byte {
	b = le.AppendUint16(b, e.Offset)
	b = le.AppendUint16(b, uint16(e.InodeDelta))
	b = le.AppendUint16(b, uint16(e.Type))
	b = le.AppendUint16(b, uint16(len(e.Name)-1))
	return append(b, e.Name...)
}

func (e *DirEntry) decode(b []byte, off int64) (int, error) {
	if len(b) < DirEntrySize {
		return 0, short(off, "directory entry", DirEntrySize, len(b))
	}
	e.Offset = le.Uint16(b[0:])
	e.InodeDelta = int16(le.Uint16(b[2:]))
	e.Type = InodeType(le.Uint16(b[4:]))
	e.Size = le.Uint16(b[6:])
	if e.Type < TypeDir || e.Type > TypeSocket {
		return 0, &FormatError{Off: off + 4, Msg: "bad directory entry type", Val: uint16(e.Type)}
	}
	if e.Size >= MaxNameLen {
		return 0, &FormatError{Off: off + 6, Msg: "directory entry name too long", Val: int(e.Size) + 1}
	}
	if e.Offset >= MetadataSize {
		return 0, &FormatError{Off: off, Msg: "inode offset outside its metadata block", Val: e.Offset}
	}
	n := DirEntrySize + int(e.Size) + 1
	if len(b) < n {
		return 0, short(off, "directory entry name", n, len(b))
	}
	e.Name = b[DirEntrySize:n:n]
	return n, nil
}

// FragmentEntry is struct squashfs_fragment_entry, 16 bytes, one per fragment
// block, stored in metadata blocks located by the fragment lookup table.
type FragmentEntry struct {
	StartBlock uint64        // 0: image offset of the fragment block
	Size       BlockSizeWord // 8: on-disk size, DataUncompBit when stored
	Unused     uint32        // 12: 0
}

// FragmentEntrySize is sizeof(struct squashfs_fragment_entry).
const FragmentEntrySize = 16

func (f *FragmentEntry) appendTo(b []byte) []byte {
	b = le.AppendUint64(b, f.StartBlock)
	b = le.AppendUint32(b, uint32(f.Size))
	return le.AppendUint32(b, f.Unused)
}

func (f *FragmentEntry) decode(b []byte, off int64) (int, error) {
	if len(b) < FragmentEntrySize {
		return 0, short(off, "fragment entry", FragmentEntrySize, len(b))
	}
	f.StartBlock = le.Uint64(b[0:])
	f.Size = BlockSizeWord(le.Uint32(b[8:]))
	f.Unused = le.Uint32(b[12:])
	if f.Size.OnDisk() > MaxBlockSize {
		return 0, &FormatError{Off: off + 8, Msg: "bad fragment size", Val: uint32(f.Size)}
	}
	return FragmentEntrySize, nil
}

// The id table: Superblock.IDs uint32 uid/gid values stored in metadata
// blocks, located by Superblock.IDTableStart, a table of u64 image offsets of
// those blocks (squashfs_fs.h SQUASHFS_ID_BLOCKS). The export table has the
// same shape with u64 inode refs indexed by inode number - 1
// (SQUASHFS_LOOKUP_BLOCKS), the fragment table with FragmentEntry values.
// LookupBlocks gives the number of metadata blocks (and u64 pointers) for
// count records of recSize bytes.
func LookupBlocks(count uint64, recSize int) uint64 {
	return (count*uint64(recSize) + MetadataSize - 1) / MetadataSize
}

// Xattr name prefixes (squashfs_fs.h SQUASHFS_XATTR_USER etc.), stored in
// XattrKey.Type; the key's name omits the prefix.
const (
	XattrUser     = 0
	XattrTrusted  = 1
	XattrSecurity = 2
	XattrValueOOL = 0x100 // SQUASHFS_XATTR_VALUE_OOL: the value is a u64 ref to a value stored elsewhere
	XattrTypeMask = 0xff  // SQUASHFS_XATTR_PREFIX_MASK
)

var xattrPrefixes = [...]string{XattrUser: "user.", XattrTrusted: "trusted.", XattrSecurity: "security."}

// SplitXattrName splits a full xattr name ("security.ima") into its prefix
// id and the stored name ("ima"); ok is false for prefixes SquashFS cannot
// store (only user., trusted. and security. exist).
func SplitXattrName(full string) (prefix uint16, name string, ok bool) {
	return splitXattrName(full)
}

// splitXattrName is SplitXattrName for a name as a string or as bytes.
func splitXattrName[T string | []byte](full T) (prefix uint16, name T, ok bool) {
	for id, p := range xattrPrefixes {
		if len(full) > len(p) && string(full[:len(p)]) == p {
			return uint16(id), full[len(p):], true
		}
	}
	return 0, name, false
}

// XattrKey is struct squashfs_xattr_entry: the key half of a key/value pair in
// the xattr table, followed by the value (XattrValue).
type XattrKey struct {
	Type uint16 // 0: prefix id | XattrValueOOL
	Size uint16 // 2: len(Name)
	Name []byte // 4..: the name without its prefix
}

func (k *XattrKey) appendTo(b []byte) []byte {
	b = le.AppendUint16(b, k.Type)
	b = le.AppendUint16(b, uint16(len(k.Name)))
	return append(b, k.Name...)
}

func (k *XattrKey) decode(b []byte, off int64) (int, error) {
	if len(b) < 4 {
		return 0, short(off, "xattr key", 4, len(b))
	}
	k.Type = le.Uint16(b[0:])
	k.Size = le.Uint16(b[2:])
	if int(k.Type&XattrTypeMask) >= len(xattrPrefixes) || k.Type&^(XattrTypeMask|XattrValueOOL) != 0 {
		return 0, &FormatError{Off: off, Msg: "bad xattr type", Val: k.Type}
	}
	n := 4 + int(k.Size)
	if len(b) < n {
		return 0, short(off, "xattr name", n, len(b))
	}
	k.Name = b[4:n:n]
	return n, nil
}

// FullName returns the key's name with its prefix ("security.ima").
func (k *XattrKey) FullName() string {
	return xattrPrefixes[k.Type&XattrTypeMask] + string(k.Name)
}

// XattrValue is struct squashfs_xattr_val: a 4-byte length and the value. When
// the key has XattrValueOOL the value is 8 bytes, a u64 reference (as InodeRef,
// relative to the xattr table start) to the XattrValue holding the real value.
type XattrValue struct {
	Size  uint32 // 0: len(Value)
	Value []byte // 4..
}

func (v *XattrValue) appendTo(b []byte) []byte {
	b = le.AppendUint32(b, uint32(len(v.Value)))
	return append(b, v.Value...)
}

// decode parses a value; max bounds Size (the caller's remaining stream).
func (v *XattrValue) decode(b []byte, off int64) (int, error) {
	if len(b) < 4 {
		return 0, short(off, "xattr value", 4, len(b))
	}
	v.Size = le.Uint32(b)
	if uint64(v.Size)+4 > uint64(len(b)) {
		return 0, short(off, "xattr value", int(min(uint64(v.Size)+4, 1<<40)), len(b))
	}
	n := 4 + int(v.Size)
	v.Value = b[4:n:n]
	return n, nil
}

// XattrID is struct squashfs_xattr_id: one entry per distinct xattr set,
// indexed by an inode's Xattr field.
type XattrID struct {
	Ref   uint64 // 0: ref (InodeRef form, relative to the xattr table) of the first key
	Count uint32 // 8: number of key/value pairs
	Size  uint32 // 12: sum over the pairs of len(full name)+1+len(value), as mksquashfs computes it
}

// XattrIDSize is sizeof(struct squashfs_xattr_id).
const XattrIDSize = 16

func (x *XattrID) appendTo(b []byte) []byte {
	b = le.AppendUint64(b, x.Ref)
	b = le.AppendUint32(b, x.Count)
	return le.AppendUint32(b, x.Size)
}

func (x *XattrID) decode(b []byte, off int64) (int, error) {
	if len(b) < XattrIDSize {
		return 0, short(off, "xattr id", XattrIDSize, len(b))
	}
	x.Ref = le.Uint64(b[0:])
	x.Count = le.Uint32(b[8:])
	x.Size = le.Uint32(b[12:])
	return XattrIDSize, nil
}

// XattrIDTable is struct squashfs_xattr_id_table, at
// Superblock.XattrIDTableStart, followed by the u64 image offsets of the
// metadata blocks holding the XattrID records (kernel fs/squashfs/xattr_id.c).
type XattrIDTable struct {
	TableStart uint64 // 0: image offset of the first key/value metadata block
	IDs        uint32 // 8: number of XattrID records
	Unused     uint32 // 12
}

// XattrIDTableSize is sizeof(struct squashfs_xattr_id_table).
const XattrIDTableSize = 16

func (t *XattrIDTable) appendTo(b []byte) []byte {
	b = le.AppendUint64(b, t.TableStart)
	b = le.AppendUint32(b, t.IDs)
	return le.AppendUint32(b, t.Unused)
}

func (t *XattrIDTable) decode(b []byte, off int64) (int, error) {
	if len(b) < XattrIDTableSize {
		return 0, short(off, "xattr id table", XattrIDTableSize, len(b))
	}
	t.TableStart = le.Uint64(b[0:])
	t.IDs = le.Uint32(b[8:])
	t.Unused = le.Uint32(b[12:])
	return XattrIDTableSize, nil
}

// Compressor options records, stored after the superblock as one metadata
// block when FlagCompressorOptions is set (squashfs-tools *_wrapper.h; the
// kernel reads them in fs/squashfs/*_wrapper.c).

// GzipOptions is struct gzip_comp_opts (gzip_wrapper.h), 8 bytes.
type GzipOptions struct {
	Level      uint32 // 0: 1..9 (default 9)
	WindowSize uint16 // 4: 8..15 (default 15)
	Strategy   uint16 // 6: bit mask of strategies tried (0 = default only)
}

func (o *GzipOptions) appendTo(b []byte) []byte {
	b = le.AppendUint32(b, o.Level)
	b = le.AppendUint16(b, o.WindowSize)
	return le.AppendUint16(b, o.Strategy)
}

func (o *GzipOptions) decode(b []byte, off int64) (int, error) {
	if len(b) < 8 {
		return 0, short(off, "gzip options", 8, len(b))
	}
	o.Level, o.WindowSize, o.Strategy = le.Uint32(b), le.Uint16(b[4:]), le.Uint16(b[6:])
	return 8, nil
}

// XZOptions is struct comp_opts in xz_wrapper.h, 8 bytes.
type XZOptions struct {
	DictionarySize uint32 // 0: LZMA2 dictionary size (default the block size)
	Filters        uint32 // 4: bit mask of BCJ filters tried (0 = none)
}

func (o *XZOptions) appendTo(b []byte) []byte {
	b = le.AppendUint32(b, o.DictionarySize)
	return le.AppendUint32(b, o.Filters)
}

func (o *XZOptions) decode(b []byte, off int64) (int, error) {
	if len(b) < 8 {
		return 0, short(off, "xz options", 8, len(b))
	}
	o.DictionarySize, o.Filters = le.Uint32(b), le.Uint32(b[4:])
	return 8, nil
}

// LZ4 options constants (lz4_wrapper.h).
const (
	LZ4Legacy = 1 // LZ4_LEGACY: the only version; blocks are raw LZ4 blocks without a frame
	LZ4HC     = 1 // LZ4_HC flag: blocks were made with the high-compression compressor
)

// LZ4Options is struct lz4_comp_opts (lz4_wrapper.h), 8 bytes. mksquashfs
// always writes it and the kernel requires Version == LZ4Legacy.
type LZ4Options struct {
	Version uint32 // 0: LZ4Legacy
	Flags   uint32 // 4: LZ4HC or 0
}

func (o *LZ4Options) appendTo(b []byte) []byte {
	b = le.AppendUint32(b, o.Version)
	return le.AppendUint32(b, o.Flags)
}

func (o *LZ4Options) decode(b []byte, off int64) (int, error) {
	if len(b) < 8 {
		return 0, short(off, "lz4 options", 8, len(b))
	}
	o.Version, o.Flags = le.Uint32(b), le.Uint32(b[4:])
	if o.Version != LZ4Legacy {
		return 0, &FormatError{Off: off, Msg: "unsupported lz4 version", Val: o.Version}
	}
	return 8, nil
}

// ZstdOptions is struct zstd_comp_opts (zstd_wrapper.h), 4 bytes.
type ZstdOptions struct {
	Level uint32 // 0: 1..22 (default 15)
}

func (o *ZstdOptions) appendTo(b []byte) []byte { return le.AppendUint32(b, o.Level) }

func (o *ZstdOptions) decode(b []byte, off int64) (int, error) {
	if len(b) < 4 {
		return 0, short(off, "zstd options", 4, len(b))
	}
	o.Level = le.Uint32(b)
	return 4, nil
}

// LZOOptions is struct lzo_comp_opts (lzo_wrapper.h), 8 bytes; decoded only
// so that images from mksquashfs -comp lzo can be described.
type LZOOptions struct {
	Algorithm uint32 // 0
	Level     uint32 // 4
}

//lint:ignore U1000 the record is described whole; the reader refuses LZO images before reading it
func (o *LZOOptions) appendTo(b []byte) []byte {
	b = le.AppendUint32(b, o.Algorithm)
	return le.AppendUint32(b, o.Level)
}

//lint:ignore U1000 see appendTo
func (o *LZOOptions) decode(b []byte, off int64) (int, error) {
	if len(b) < 8 {
		return 0, short(off, "lzo options", 8, len(b))
	}
	o.Algorithm, o.Level = le.Uint32(b), le.Uint32(b[4:])
	return 8, nil
}
