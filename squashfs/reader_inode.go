package squashfs

import (
	"fmt"
	"io/fs"

	"github.com/imaforge/imaforge/internal/fsmode"
)

// inode is the reader's in-memory view of any inode type, decoded from the
// records in format.go (DirInode, ExtDirInode, RegInode, ExtRegInode,
// SymlinkInode, DevInode, IPCInode).
type inode struct {
	ref    uint64 // inode reference it was read from
	typ    InodeType
	perm   uint16 // permission bits incl. setuid/setgid/sticky
	uid    uint32
	gid    uint32
	mtime  uint32
	number uint32
	nlink  uint32
	xattr  uint32 // xattr id or InvalidXattr

	// size: regular file length, directory file_size (listing + 3, as
	// unsquashfs shows it), symlink target length; 0 otherwise.
	size uint64

	// Directories.
	dirBlock  uint32 // listing's block, relative to the directory table
	dirOffset uint16 // listing's offset in that block
	parent    uint32
	index     []DirIndex // extended directories only

	// Regular files.
	start    uint64   // image offset of the first data block
	blocks   []uint32 // BlockSizeWord values
	frag     uint32   // fragment index or InvalidFragment
	fragOff  uint32   // tail's offset in the fragment block
	sparse   uint64
	target   []byte // symlinks
	rdev     uint32 // devices: new_encode_dev form
	extended bool
}

func (in *inode) isDir() bool { return in.typ.Basic() == TypeDir }

// mode returns the Go file mode: type bits from the inode type, permission
// bits and setuid/setgid/sticky from the header.
func (in *inode) mode() fs.FileMode {
	m := fsmode.FromPerm(uint32(in.perm))
	switch in.typ.Basic() {
	case TypeDir:
		m |= fs.ModeDir
	case TypeSymlink:
		m |= fs.ModeSymlink
	case TypeBlockDev:
		m |= fs.ModeDevice
	case TypeCharDev:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case TypeFifo:
		m |= fs.ModeNamedPipe
	case TypeSocket:
		m |= fs.ModeSocket
	}
	return m
}

// readInode reads the inode at ref (block offset relative to the inode
// table << 16 | offset in the uncompressed block). The inode's bytes are
// gathered from the metadata stream record by record (the variable parts:
// block lists, symlink targets, directory indexes) and then decoded by the
// format.go records, which check every field.
func (z *Reader) readInode(ref uint64) (*inode, error) {
	c, err := z.cursorAt(z.inodeTable, ref, "inode")
	if err != nil {
		return nil, err
	}
	off := int64(c.pos)
	buf := make([]byte, InodeHeaderSize, 64)
	if err := c.read(buf); err != nil {
		return nil, fmt.Errorf("squashfs: inode %#x: %w", ref, err)
	}
	var h InodeHeader
	if err := h.decode(buf, off); err != nil {
		return nil, err
	}
	in := &inode{ref: ref, typ: h.Type, perm: h.Mode & 0o7777, mtime: h.ModTime, number: h.Number,
		xattr: InvalidXattr, extended: h.Type.Extended()}
	if h.Number == 0 || h.Number > z.sb.Inodes {
		return nil, &FormatError{Off: off + 12, Msg: fmt.Sprintf("inode number outside 1..%d", z.sb.Inodes), Val: h.Number}
	}
	if int(h.UIDIndex) >= len(z.ids) || int(h.GIDIndex) >= len(z.ids) {
		return nil, &FormatError{Off: off + 4, Msg: fmt.Sprintf("uid/gid index outside the id table of %d", len(z.ids)), Val: fmt.Sprintf("%d/%d", h.UIDIndex, h.GIDIndex)}
	}
	in.uid, in.gid = z.ids[h.UIDIndex], z.ids[h.GIDIndex]
	// more appends the next n bytes of the inode to buf.
	more := func(n uint64) error {
		var err error
		buf, err = c.appendN(buf, n)
		if err != nil {
			return fmt.Errorf("squashfs: inode %#x: %w", ref, err)
		}
		return nil
	}
	switch h.Type {
	case TypeDir:
		if err := more(DirInodeSize - InodeHeaderSize); err != nil {
			return nil, err
		}
		var d DirInode
		if _, err := d.decode(buf, off); err != nil {
			return nil, err
		}
		in.nlink, in.size, in.dirBlock, in.dirOffset, in.parent = d.Nlink, uint64(d.FileSize), d.StartBlock, d.Offset, d.Parent
	case TypeExtDir:
		if err := more(ExtDirInodeSize - InodeHeaderSize); err != nil {
			return nil, err
		}
		count := le.Uint16(buf[32:])
		// One index entry per metadata block the listing starts a header
		// in: never more than the listing's size allows.
		if uint64(count) > uint64(le.Uint32(buf[20:]))/MetadataSize+2 {
			return nil, &FormatError{Off: off + 32, Msg: fmt.Sprintf("directory index of %d entries for a listing of %d bytes", count, le.Uint32(buf[20:])), Val: count}
		}
		for range count {
			if err := more(12); err != nil {
				return nil, err
			}
			sz := le.Uint32(buf[len(buf)-4:])
			if sz >= MaxNameLen {
				return nil, &FormatError{Off: off, Msg: "directory index name too long", Val: sz}
			}
			if err := more(uint64(sz) + 1); err != nil {
				return nil, err
			}
		}
		var d ExtDirInode
		if _, err := d.decode(buf, off); err != nil {
			return nil, err
		}
		in.nlink, in.size, in.dirBlock, in.dirOffset, in.parent = d.Nlink, uint64(d.FileSize), d.StartBlock, d.Offset, d.Parent
		in.xattr, in.index = d.Xattr, d.Index
	case TypeReg, TypeExtReg:
		fixed := uint64(RegInodeSize)
		if h.Type == TypeExtReg {
			fixed = ExtRegInodeSize
		}
		if err := more(fixed - InodeHeaderSize); err != nil {
			return nil, err
		}
		var size uint64
		var frag uint32
		if h.Type == TypeReg {
			frag, size = le.Uint32(buf[20:]), uint64(le.Uint32(buf[28:]))
		} else {
			size, frag = le.Uint64(buf[24:]), le.Uint32(buf[44:])
		}
		nb := BlockCount(size, z.sb.BlockSize, frag != InvalidFragment)
		if nb > maxBlockListBytes/4 {
			return nil, &FormatError{Off: off, Msg: fmt.Sprintf("file of %d bytes has a block list longer than the reader's limit of %d blocks", size, maxBlockListBytes/4), Val: nb}
		}
		if err := more(4 * nb); err != nil {
			return nil, err
		}
		if h.Type == TypeReg {
			var r RegInode
			if _, err := r.decode(buf, off, z.sb.BlockSize); err != nil {
				return nil, err
			}
			in.nlink, in.start, in.frag, in.fragOff, in.size, in.blocks = 1, uint64(r.StartBlock), r.Fragment, r.Offset, uint64(r.FileSize), r.Blocks
		} else {
			var r ExtRegInode
			if _, err := r.decode(buf, off, z.sb.BlockSize); err != nil {
				return nil, err
			}
			in.nlink, in.start, in.frag, in.fragOff, in.size, in.blocks = r.Nlink, r.StartBlock, r.Fragment, r.Offset, r.FileSize, r.Blocks
			in.sparse, in.xattr = r.Sparse, r.Xattr
		}
		if in.frag != InvalidFragment && in.size%uint64(z.sb.BlockSize) == 0 {
			return nil, &FormatError{Off: off, Msg: "file with a fragment but no tail", Val: in.size}
		}
	case TypeSymlink, TypeExtSymlink:
		if err := more(SymlinkInodeSize - InodeHeaderSize); err != nil {
			return nil, err
		}
		n := uint64(le.Uint32(buf[20:]))
		if n > MaxSymlinkLen {
			return nil, &FormatError{Off: off + 20, Msg: "symlink target too long", Val: n}
		}
		if h.Type == TypeExtSymlink {
			n += 4
		}
		if err := more(n); err != nil {
			return nil, err
		}
		var s SymlinkInode
		if _, err := s.decode(buf, off); err != nil {
			return nil, err
		}
		in.nlink, in.target, in.size, in.xattr = s.Nlink, s.Target, uint64(len(s.Target)), s.Xattr
	case TypeBlockDev, TypeCharDev, TypeExtBlockDev, TypeExtCharDev:
		n := uint64(24)
		if h.Type.Extended() {
			n = 28
		}
		if err := more(n - InodeHeaderSize); err != nil {
			return nil, err
		}
		var d DevInode
		if _, err := d.decode(buf, off); err != nil {
			return nil, err
		}
		in.nlink, in.rdev, in.xattr = d.Nlink, d.Rdev, d.Xattr
	case TypeFifo, TypeSocket, TypeExtFifo, TypeExtSocket:
		n := uint64(20)
		if h.Type.Extended() {
			n = 24
		}
		if err := more(n - InodeHeaderSize); err != nil {
			return nil, err
		}
		var p IPCInode
		if _, err := p.decode(buf, off); err != nil {
			return nil, err
		}
		in.nlink, in.xattr = p.Nlink, p.Xattr
	}
	if in.xattr != InvalidXattr && uint64(in.xattr) >= z.xattrIDs.count {
		return nil, &FormatError{Off: off, Msg: fmt.Sprintf("xattr id outside the xattr id table of %d", z.xattrIDs.count), Val: in.xattr}
	}
	return in, nil
}
