package squashfs

import (
	"bytes"
	"fmt"
)

// dirent is one decoded directory entry.
type dirent struct {
	name   []byte    // valid only during the callback
	ref    uint64    // inode reference: header block << 16 | entry offset
	typ    InodeType // basic type the entry claims
	number uint32    // inode number
}

// readDir calls fn for every entry of the directory dir, in on-disk order
// (sorted by name bytes), until fn returns false.
func (z *Reader) readDir(dir *inode, fn func(e *dirent) bool) error {
	return z.scanDir(dir, dir.dirBlock, int(dir.dirOffset), 0, nil, fn)
}

// scanDir walks a directory listing (squashfs_fs.h struct squashfs_dir_header
// followed by count+1 struct squashfs_dir_entry, repeated) from the header at
// byte pos of the listing, which starts in directory-table block block at
// offset offset. The listing is file_size - 3 bytes long (the kernel counts
// "." and ".." as 3 bytes it never stores); every record must fit in it.
// Names must be valid file names in strictly increasing byte order (the
// kernel's lookup depends on it). If first is not nil, the first entry must
// be named first (a directory index's claim).
func (z *Reader) scanDir(dir *inode, block uint32, offset int, pos uint64, first []byte, fn func(e *dirent) bool) error {
	if dir.size <= 3 {
		return nil
	}
	total := dir.size - 3
	if pos >= total {
		return &FormatError{Off: int64(z.dirTable.start), Msg: fmt.Sprintf("directory index points past the listing of %d bytes", total), Val: pos}
	}
	c, err := z.cursorAt(z.dirTable, InodeRef(uint64(block), uint16(offset)), "directory listing")
	if err != nil {
		return err
	}
	bad := func(msg string, val any) error {
		return &FormatError{Off: int64(c.pos), Msg: fmt.Sprintf("directory of inode %d: %s", dir.number, msg), Val: val}
	}
	var hb [DirHeaderSize]byte
	var eb [DirEntrySize + MaxNameLen]byte
	var prev []byte
	var e dirent
	for pos < total {
		if total-pos < DirHeaderSize {
			return bad("listing ends inside a header", total)
		}
		if err := c.read(hb[:]); err != nil {
			return err
		}
		var h DirHeader
		if _, err := h.decode(hb[:], int64(c.pos)); err != nil {
			return err
		}
		pos += DirHeaderSize
		for range h.Count + 1 {
			if total-pos < DirEntrySize {
				return bad("listing ends inside an entry", total)
			}
			if err := c.read(eb[:DirEntrySize]); err != nil {
				return err
			}
			n := int(le.Uint16(eb[6:])) + 1
			if n > MaxNameLen {
				return bad("name too long", n)
			}
			if total-pos-DirEntrySize < uint64(n) {
				return bad("listing ends inside a name", total)
			}
			if err := c.read(eb[DirEntrySize : DirEntrySize+n]); err != nil {
				return err
			}
			var de DirEntry
			if _, err := de.decode(eb[:DirEntrySize+n], int64(c.pos)); err != nil {
				return err
			}
			pos += uint64(DirEntrySize + n)
			if !validName(de.Name) {
				return bad("invalid name", fmt.Sprintf("%q", de.Name))
			}
			if first != nil {
				if !bytes.Equal(de.Name, first) {
					return bad("directory index names an entry that is not there", fmt.Sprintf("%q", first))
				}
				first = nil
			}
			if prev != nil && bytes.Compare(prev, de.Name) >= 0 {
				return bad("entries not in strictly increasing name order", fmt.Sprintf("%q after %q", de.Name, prev))
			}
			prev = append(prev[:0], de.Name...)
			num := int64(h.InodeNumber) + int64(de.InodeDelta)
			if num < 1 || num > int64(z.sb.Inodes) {
				return bad("entry inode number out of range", num)
			}
			e = dirent{name: de.Name, ref: InodeRef(uint64(h.StartBlock), de.Offset), typ: de.Type, number: uint32(num)}
			if !fn(&e) {
				return nil
			}
		}
	}
	return nil
}

// validName reports whether b can be a name in a directory: not empty, not
// "." or "..", without '/' or NUL.
func validName(b []byte) bool {
	if len(b) == 0 || string(b) == "." || string(b) == ".." {
		return false
	}
	return bytes.IndexByte(b, '/') < 0 && bytes.IndexByte(b, 0) < 0
}

// lookup finds name in dir. With a directory index (extended directories)
// it starts at the last indexed header whose first name is <= name, as the
// kernel does (fs/squashfs/namei.c get_dir_index_using_name); it stops as
// soon as the sorted listing passes name.
func (z *Reader) lookup(dir *inode, name string) (dirent, bool, error) {
	want := []byte(name)
	block, offset, pos := dir.dirBlock, int(dir.dirOffset), uint64(0)
	var first []byte
	for i := range dir.index {
		ix := &dir.index[i]
		if bytes.Compare(ix.Name, want) > 0 {
			break
		}
		if uint64(ix.Index) < pos {
			return dirent{}, false, &FormatError{Off: int64(z.dirTable.start), Msg: fmt.Sprintf("directory of inode %d: index entries out of order", dir.number), Val: ix.Index}
		}
		block, offset, pos, first = ix.StartBlock, (int(dir.dirOffset)+int(ix.Index))%MetadataSize, uint64(ix.Index), ix.Name
	}
	var found dirent
	var ok bool
	err := z.scanDir(dir, block, offset, pos, first, func(e *dirent) bool {
		switch c := bytes.Compare(e.name, want); {
		case c == 0:
			found, ok = *e, true
			found.name = want
			return false
		case c > 0:
			return false
		}
		return true
	})
	return found, ok, err
}
