package squashfs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
)

// Limits the reader enforces so that a hostile image costs bounded memory and
// time. Images made by mksquashfs or by this package stay far below them.
const (
	// maxBlockListBytes bounds one regular file's block list (4 Mi blocks:
	// files up to 512 GiB at the default 128 KiB block size, 16 GiB at
	// 4 KiB, 4 TiB at 1 MiB).
	maxBlockListBytes = 16 << 20
	// maxXattrValue is the kernel's XATTR_SIZE_MAX.
	maxXattrValue = 64 << 10
	// maxXattrCount and maxXattrBytes bound one inode's xattr set.
	maxXattrCount = 1 << 16
	maxXattrBytes = 16 << 20
	// maxSymlinkFollows is the kernel's MAXSYMLINKS.
	maxSymlinkFollows = 40
)

// Reader reads a SquashFS 4.0 image through an io.ReaderAt, as the Linux
// kernel (fs/squashfs) and unsquashfs read it. It implements fs.FS,
// fs.ReadDirFS, fs.ReadFileFS, fs.StatFS and fs.ReadLinkFS (see fs.go), and
// is safe for concurrent use: files may be read from many goroutines at once.
//
// Every offset, count and size read from the image is checked against the
// image size and the table it belongs to before it is used, so a malformed or
// hostile image gives an error matching ErrFormat (a *FormatError), never a
// panic, an endless loop or an allocation out of proportion to the image.
type Reader struct {
	ra   io.ReaderAt
	size int64 // Superblock.BytesUsed, checked against the size given

	sb       Superblock
	compOpts []byte // compressor options record, or nil
	dec      blockDecompressor

	ids []uint32 // the id table

	inodeTable region // [InodeTableStart, DirectoryTableStart)
	dirTable   region
	xattrTable region // key/value metadata blocks
	frags      lookupTable
	export     lookupTable
	idTable    lookupTable
	xattrIDs   lookupTable

	meta  *blockCache // decompressed metadata blocks by image offset
	fragc *blockCache // decompressed fragment blocks by image offset

	root *inode
}

// region is a range [start, end) of the image holding a table's metadata
// blocks; a metadata block must lie entirely inside its region.
type region struct{ start, end uint64 }

// lookupTable is a table of fixed-size records stored in metadata blocks and
// located by a list of u64 block offsets (squashfs_fs.h SQUASHFS_LOOKUP_BLOCKS
// and friends): the fragment, export, id and xattr id tables.
type lookupTable struct {
	name    string
	count   uint64   // number of records
	recSize int      // bytes per record
	ptrs    []uint64 // image offsets of the metadata blocks
	listOff uint64   // image offset of the pointer list
}

// NewReader returns a Reader for the image held in r, which has the given
// size. It reads and checks the superblock, the compressor options, the
// lookup tables' block lists, the id table and the root inode.
func NewReader(r io.ReaderAt, size int64) (*Reader, error) {
	if size < SuperblockSize {
		return nil, &FormatError{Off: 0, Msg: "image shorter than a superblock", Val: size, Err: ErrTruncated}
	}
	z := &Reader{ra: r}
	buf := make([]byte, SuperblockSize)
	if _, err := r.ReadAt(buf, 0); err != nil {
		return nil, fmt.Errorf("squashfs: reading superblock: %w", err)
	}
	if err := z.sb.decode(buf); err != nil {
		return nil, err
	}
	sb := &z.sb
	if sb.BytesUsed < SuperblockSize || sb.BytesUsed > uint64(size) {
		return nil, &FormatError{Off: 40, Msg: fmt.Sprintf("bytes_used outside the image of %d bytes", size), Val: sb.BytesUsed, Err: ErrTruncated}
	}
	z.size = int64(sb.BytesUsed)
	if sb.Inodes == 0 {
		return nil, &FormatError{Off: 4, Msg: "no inodes"}
	}
	if sb.IDs == 0 {
		return nil, &FormatError{Off: 26, Msg: "empty id table"}
	}
	if _, off := SplitRef(sb.RootInode); off >= MetadataSize || sb.RootInode>>48 != 0 {
		return nil, &FormatError{Off: 32, Msg: "bad root inode reference", Val: fmt.Sprintf("%#x", sb.RootInode)}
	}
	// The fixed tables come in this order (mksquashfs, and the kernel insists).
	if !(SuperblockSize <= sb.InodeTableStart && sb.InodeTableStart < sb.DirectoryTableStart &&
		sb.DirectoryTableStart < sb.IDTableStart && sb.IDTableStart < sb.BytesUsed) {
		return nil, &FormatError{Off: 48, Msg: fmt.Sprintf("table offsets out of order or outside the image (inode %#x, directory %#x, id %#x, bytes used %#x)",
			sb.InodeTableStart, sb.DirectoryTableStart, sb.IDTableStart, sb.BytesUsed)}
	}
	for _, t := range []struct {
		off  int64
		name string
		v    uint64
	}{{56, "xattr id table", sb.XattrIDTableStart}, {80, "fragment table", sb.FragmentTableStart}, {88, "export table", sb.ExportTableStart}} {
		if t.v != InvalidBlock && (t.v < sb.DirectoryTableStart || t.v >= sb.BytesUsed) {
			return nil, &FormatError{Off: t.off, Msg: t.name + " offset outside the image", Val: fmt.Sprintf("%#x", t.v)}
		}
	}
	z.meta = newBlockCache(64)
	z.fragc = newBlockCache(8)

	// Compressor options: one metadata block right after the superblock.
	if sb.Flags&FlagCompressorOptions != 0 {
		blk, err := z.metaBlock(SuperblockSize, sb.InodeTableStart)
		if err != nil {
			return nil, fmt.Errorf("squashfs: compressor options: %w", err)
		}
		z.compOpts = blk.data
	}
	var err error
	if z.dec, err = newBlockDecompressor(sb, z.compOpts); err != nil {
		return nil, err
	}

	// Lookup tables: only their block lists are loaded; records are read on
	// demand through the metadata cache.
	if sb.FragmentTableStart != InvalidBlock {
		z.frags = lookupTable{name: "fragment table", count: uint64(sb.Fragments), recSize: FragmentEntrySize}
		if err := z.loadLookup(&z.frags, sb.FragmentTableStart); err != nil {
			return nil, err
		}
	} else if sb.Fragments != 0 {
		return nil, &FormatError{Off: 16, Msg: "fragments without a fragment table", Val: sb.Fragments}
	}
	if sb.ExportTableStart != InvalidBlock {
		z.export = lookupTable{name: "export table", count: uint64(sb.Inodes), recSize: 8}
		if err := z.loadLookup(&z.export, sb.ExportTableStart); err != nil {
			return nil, err
		}
	}
	z.idTable = lookupTable{name: "id table", count: uint64(sb.IDs), recSize: 4}
	if err := z.loadLookup(&z.idTable, sb.IDTableStart); err != nil {
		return nil, err
	}
	if sb.XattrIDTableStart != InvalidBlock {
		if err := z.loadXattrIDTable(); err != nil {
			return nil, err
		}
	}
	if err := z.computeRegions(); err != nil {
		return nil, err
	}
	// The id table is small (at most 65535 ids): load it whole.
	z.ids = make([]uint32, sb.IDs)
	for i := range z.ids {
		b, err := z.readRecord(&z.idTable, uint64(i))
		if err != nil {
			return nil, err
		}
		z.ids[i] = le.Uint32(b)
	}
	root, err := z.readInode(sb.RootInode)
	if err != nil {
		return nil, fmt.Errorf("squashfs: root inode: %w", err)
	}
	if !root.isDir() {
		return nil, &FormatError{Off: 32, Msg: "root inode is not a directory", Val: uint16(root.typ)}
	}
	z.root = root
	return z, nil
}

// ReadCloser is a Reader over a file it closes, as zip.ReadCloser.
type ReadCloser struct {
	Reader
	f *os.File
}

// OpenReader opens the image file name.
func OpenReader(name string) (*ReadCloser, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	r, err := NewReader(f, fi.Size())
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &ReadCloser{Reader: *r, f: f}, nil
}

// Close closes the image file.
func (rc *ReadCloser) Close() error { return rc.f.Close() }

// Superblock returns a copy of the image's superblock.
func (z *Reader) Superblock() Superblock { return z.sb }

// CompressorOptions returns the raw compressor options record stored after
// the superblock, or nil when the image has none.
func (z *Reader) CompressorOptions() []byte { return slices.Clone(z.compOpts) }

// readAt reads exactly len(p) bytes at off, which must lie within the image.
func (z *Reader) readAt(p []byte, off uint64, what string) error {
	if off > uint64(z.size) || uint64(len(p)) > uint64(z.size)-off {
		return &FormatError{Off: int64(min(off, 1<<62)), Msg: fmt.Sprintf("%s of %d bytes extends past the image end %#x", what, len(p), z.size), Err: ErrTruncated}
	}
	n, err := z.ra.ReadAt(p, int64(off))
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("squashfs: reading %s at byte %#x: %w", what, off, err)
}

// loadLookup reads and checks the block list of a lookup table whose list
// starts at listOff: every block must start after the superblock, in
// increasing order, at most one metadata block (8194 bytes) apart, and end
// before the list itself.
func (z *Reader) loadLookup(t *lookupTable, listOff uint64) error {
	n := LookupBlocks(t.count, t.recSize)
	if listOff > uint64(z.size) || n > (uint64(z.size)-listOff)/8 {
		return &FormatError{Off: int64(listOff), Msg: fmt.Sprintf("%s of %d records: block list past the image end", t.name, t.count), Err: ErrTruncated}
	}
	t.listOff = listOff
	if n == 0 {
		return nil
	}
	raw := make([]byte, 8*n)
	if err := z.readAt(raw, listOff, t.name+" block list"); err != nil {
		return err
	}
	t.ptrs = make([]uint64, n)
	for i := range t.ptrs {
		t.ptrs[i] = le.Uint64(raw[8*i:])
	}
	for i, p := range t.ptrs {
		next := listOff
		if i+1 < len(t.ptrs) {
			next = t.ptrs[i+1]
		}
		if p < SuperblockSize || p >= next || next-p > 2+MetadataSize {
			return &FormatError{Off: int64(listOff) + 8*int64(i), Msg: t.name + " block pointer out of order", Val: fmt.Sprintf("%#x", p)}
		}
	}
	return nil
}

// loadXattrIDTable reads the xattr id table header (squashfs_xattr_id_table)
// and the block list that follows it.
func (z *Reader) loadXattrIDTable() error {
	off := z.sb.XattrIDTableStart
	buf := make([]byte, XattrIDTableSize)
	if err := z.readAt(buf, off, "xattr id table"); err != nil {
		return err
	}
	var h XattrIDTable
	if _, err := h.decode(buf, int64(off)); err != nil {
		return err
	}
	if h.TableStart < z.sb.DirectoryTableStart || h.TableStart > off {
		return &FormatError{Off: int64(off), Msg: "xattr table start out of order", Val: fmt.Sprintf("%#x", h.TableStart)}
	}
	z.xattrIDs = lookupTable{name: "xattr id table", count: uint64(h.IDs), recSize: XattrIDSize}
	if err := z.loadLookup(&z.xattrIDs, off+XattrIDTableSize); err != nil {
		return err
	}
	end := off
	if len(z.xattrIDs.ptrs) > 0 {
		end = z.xattrIDs.ptrs[0]
	}
	if h.TableStart > end {
		return &FormatError{Off: int64(off), Msg: "xattr table start after the xattr id blocks", Val: fmt.Sprintf("%#x", h.TableStart)}
	}
	z.xattrTable = region{h.TableStart, end}
	return nil
}

// computeRegions bounds the inode and directory tables by the next table
// that starts after them.
func (z *Reader) computeRegions() error {
	sb := &z.sb
	starts := []uint64{sb.IDTableStart, sb.BytesUsed}
	if len(z.xattrIDs.ptrs) > 0 || sb.XattrIDTableStart != InvalidBlock {
		starts = append(starts, z.xattrTable.start, z.xattrIDs.listOff)
	}
	for _, t := range []*lookupTable{&z.frags, &z.export, &z.idTable} {
		if t.listOff != 0 {
			starts = append(starts, t.listOff)
		}
		if len(t.ptrs) > 0 {
			starts = append(starts, t.ptrs[0])
		}
	}
	end := func(s uint64) uint64 {
		e := sb.BytesUsed
		for _, x := range starts {
			if x > s && x < e {
				e = x
			}
		}
		return e
	}
	z.inodeTable = region{sb.InodeTableStart, sb.DirectoryTableStart}
	z.dirTable = region{sb.DirectoryTableStart, end(sb.DirectoryTableStart)}
	for _, x := range starts {
		if x > sb.InodeTableStart && x < sb.DirectoryTableStart {
			return &FormatError{Off: 64, Msg: "a table starts inside the inode table", Val: fmt.Sprintf("%#x", x)}
		}
	}
	return nil
}

// readRecord returns record i of a lookup table (a slice valid until the
// next call that uses the metadata cache's buffers: callers copy or decode).
func (z *Reader) readRecord(t *lookupTable, i uint64) ([]byte, error) {
	if i >= t.count {
		return nil, &FormatError{Off: int64(t.listOff), Msg: fmt.Sprintf("%s index out of range (%d records)", t.name, t.count), Val: i}
	}
	byteOff := i * uint64(t.recSize)
	blk := byteOff / MetadataSize
	end := t.listOff
	if blk+1 < uint64(len(t.ptrs)) {
		end = t.ptrs[blk+1]
	}
	c := z.cursor(region{t.ptrs[blk], end}, t.ptrs[blk], int(byteOff%MetadataSize))
	buf := make([]byte, t.recSize)
	if err := c.read(buf); err != nil {
		return nil, fmt.Errorf("squashfs: %s record %d: %w", t.name, i, err)
	}
	return buf, nil
}
