package squashfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The Reader is a file system (io/fs) over the image. Paths are fs.ValidPath
// names relative to the image root ("." is the root), except that they need
// not be valid UTF-8: SquashFS names are bytes, and a file named in Latin-1
// must stay readable. Open, Stat, ReadDir and
// ReadFile follow symbolic links, Lstat, ReadLink, Xattrs and Walk do not
// follow a link in the last element. Links are resolved inside the image as
// if it were the root of the file system (chroot semantics): an absolute
// target starts at the image root and ".." at the root stays there; more than
// 40 links in one resolution fail with syscall.ELOOP.
var (
	_ fs.FS          = (*Reader)(nil)
	_ fs.ReadDirFS   = (*Reader)(nil)
	_ fs.ReadFileFS  = (*Reader)(nil)
	_ fs.StatFS      = (*Reader)(nil)
	_ fs.ReadLinkFS  = (*Reader)(nil)
	_ fs.ReadDirFile = (*dirFile)(nil)
	_ io.ReaderAt    = (*File)(nil)
	_ io.Seeker      = (*File)(nil)
	_ io.WriterTo    = (*File)(nil)
)

// InodeInfo is the Sys() value of every fs.FileInfo the Reader returns: what
// the inode holds beyond fs.FileInfo.
type InodeInfo struct {
	InodeNumber uint32    // 1..Superblock.Inodes; hard links share it
	Type        InodeType // on-disk type (basic or extended)
	UID, GID    uint32
	Nlink       uint32
	Rdev        uint32 // devices: the kernel's new_encode_dev form (DecodeDev splits it)
	Major       uint32 // devices
	Minor       uint32 // devices
	ModTime     uint32 // seconds since the epoch, as stored
	Target      string // symbolic links: the target, as stored
	Xattrs      []Xattr
}

// fileInfo implements fs.FileInfo.
type fileInfo struct {
	name string
	in   *inode
	sys  *InodeInfo
}

func (fi *fileInfo) Name() string       { return fi.name }
func (fi *fileInfo) Size() int64        { return int64(min(fi.in.size, 1<<63-1)) }
func (fi *fileInfo) Mode() fs.FileMode  { return fi.in.mode() }
func (fi *fileInfo) ModTime() time.Time { return time.Unix(int64(fi.in.mtime), 0).UTC() }
func (fi *fileInfo) IsDir() bool        { return fi.in.isDir() }
func (fi *fileInfo) Sys() any           { return fi.sys }
func (fi *fileInfo) String() string     { return fs.FormatFileInfo(fi) }

// info builds the FileInfo of an inode, reading its xattrs.
func (z *Reader) info(name string, in *inode) (*fileInfo, error) {
	x, err := z.readXattrs(in.xattr)
	if err != nil {
		return nil, err
	}
	s := &InodeInfo{InodeNumber: in.number, Type: in.typ, UID: in.uid, GID: in.gid, Nlink: in.nlink,
		ModTime: in.mtime, Target: string(in.target), Xattrs: x}
	if t := in.typ.Basic(); t == TypeBlockDev || t == TypeCharDev {
		s.Rdev = in.rdev
		s.Major, s.Minor = DecodeDev(in.rdev)
	}
	return &fileInfo{name: name, in: in, sys: s}, nil
}

// entryInode reads the inode a directory entry points to and checks that it
// is what the entry says.
func (z *Reader) entryInode(e *dirent) (*inode, error) {
	in, err := z.readInode(e.ref)
	if err != nil {
		return nil, err
	}
	if in.typ.Basic() != e.typ || in.number != e.number {
		return nil, &FormatError{Off: int64(z.inodeTable.start), Msg: fmt.Sprintf("entry %q claims inode %d of type %d, found inode %d of type %d",
			e.name, e.number, e.typ, in.number, in.typ)}
	}
	return in, nil
}

// resolve walks name from the root. A symbolic link in the last element is
// followed only if follow is set.
func (z *Reader) resolve(op, name string, follow bool) (*inode, error) {
	if !validPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	stack := []*inode{z.root}
	var parts []string
	if name != "." {
		parts = strings.Split(name, "/")
	}
	links := 0
	for len(parts) > 0 {
		p := parts[0]
		parts = parts[1:]
		cur := stack[len(stack)-1]
		switch p {
		case "", ".":
			continue
		case "..":
			if len(stack) > 1 {
				stack = stack[:len(stack)-1]
			}
			continue
		}
		if !cur.isDir() {
			return nil, &fs.PathError{Op: op, Path: name, Err: syscall.ENOTDIR}
		}
		e, ok, err := z.lookup(cur, p)
		if err != nil {
			return nil, &fs.PathError{Op: op, Path: name, Err: err}
		}
		if !ok {
			return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
		}
		in, err := z.entryInode(&e)
		if err != nil {
			return nil, &fs.PathError{Op: op, Path: name, Err: err}
		}
		if in.typ.Basic() == TypeSymlink && (len(parts) > 0 || follow) {
			if links++; links > maxSymlinkFollows {
				return nil, &fs.PathError{Op: op, Path: name, Err: syscall.ELOOP}
			}
			t := string(in.target)
			if t == "" {
				return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
			}
			if strings.HasPrefix(t, "/") {
				stack = stack[:1]
			}
			parts = append(strings.Split(t, "/"), parts...)
			continue
		}
		stack = append(stack, in)
	}
	return stack[len(stack)-1], nil
}

// validPath is fs.ValidPath without its UTF-8 requirement.
func validPath(name string) bool {
	return fs.ValidPath(strings.ToValidUTF8(name, "x"))
}

// Open opens the named file, following symbolic links. Directories give an
// fs.ReadDirFile; everything else a *File (devices, fifos and sockets read
// as empty).
func (z *Reader) Open(name string) (fs.File, error) {
	in, err := z.resolve("open", name, true)
	if err != nil {
		return nil, err
	}
	return z.openInode(name, in)
}

func (z *Reader) openInode(name string, in *inode) (fs.File, error) {
	fi, err := z.info(path.Base(name), in)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	if in.isDir() {
		return &dirFile{z: z, path: name, fi: fi}, nil
	}
	f := &File{z: z, path: name, fi: fi}
	if in.typ.Basic() == TypeReg {
		if f.fd, err = z.newFileData(in); err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
	}
	return f, nil
}

// Stat returns the FileInfo of the named file, following symbolic links.
func (z *Reader) Stat(name string) (fs.FileInfo, error) {
	in, err := z.resolve("stat", name, true)
	if err != nil {
		return nil, err
	}
	fi, err := z.info(path.Base(name), in)
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	return fi, nil
}

// ErrNoExportTable is returned by StatInode for an image made without an
// export table (mksquashfs -no-exports).
var ErrNoExportTable = errors.New("squashfs: image has no export table")

// StatInode returns the FileInfo of inode number (1..Superblock.Inodes),
// found through the export table (the NFS lookup table: inode number - 1 ->
// inode reference; kernel fs/squashfs/export.c). Its Name is empty: an inode
// does not know its names.
func (z *Reader) StatInode(number uint32) (fs.FileInfo, error) {
	if z.sb.ExportTableStart == InvalidBlock {
		return nil, ErrNoExportTable
	}
	if number == 0 {
		return nil, &FormatError{Off: int64(z.export.listOff), Msg: "inode number 0"}
	}
	b, err := z.readRecord(&z.export, uint64(number)-1)
	if err != nil {
		return nil, err
	}
	ref := le.Uint64(b)
	in, err := z.readInode(ref)
	if err != nil {
		return nil, err
	}
	if in.number != number {
		return nil, &FormatError{Off: int64(z.export.listOff), Msg: fmt.Sprintf("export table entry %d points at inode %d", number, in.number), Val: fmt.Sprintf("%#x", ref)}
	}
	return z.info("", in)
}

// Lstat returns the FileInfo of the named file without following a symbolic
// link in the last element.
func (z *Reader) Lstat(name string) (fs.FileInfo, error) {
	in, err := z.resolve("lstat", name, false)
	if err != nil {
		return nil, err
	}
	fi, err := z.info(path.Base(name), in)
	if err != nil {
		return nil, &fs.PathError{Op: "lstat", Path: name, Err: err}
	}
	return fi, nil
}

// ReadLink returns the target of the named symbolic link, as stored.
func (z *Reader) ReadLink(name string) (string, error) {
	in, err := z.resolve("readlink", name, false)
	if err != nil {
		return "", err
	}
	if in.typ.Basic() != TypeSymlink {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	return string(in.target), nil
}

// Xattrs returns the extended attributes of the named file (not following a
// symbolic link in the last element, as llistxattr), in stored order.
func (z *Reader) Xattrs(name string) ([]Xattr, error) {
	in, err := z.resolve("xattrs", name, false)
	if err != nil {
		return nil, err
	}
	x, err := z.readXattrs(in.xattr)
	if err != nil {
		return nil, &fs.PathError{Op: "xattrs", Path: name, Err: err}
	}
	return x, nil
}

// ReadDir returns the entries of the named directory in on-disk order,
// which is sorted by name.
func (z *Reader) ReadDir(name string) ([]fs.DirEntry, error) {
	in, err := z.resolve("readdir", name, true)
	if err != nil {
		return nil, err
	}
	if !in.isDir() {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: syscall.ENOTDIR}
	}
	list, err := z.dirEntries(in)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	return list, nil
}

func (z *Reader) dirEntries(in *inode) ([]fs.DirEntry, error) {
	var list []fs.DirEntry
	err := z.readDir(in, func(e *dirent) bool {
		d := &dirEntry{z: z, name: string(e.name), ent: *e}
		d.ent.name = []byte(d.name)
		list = append(list, d)
		return true
	})
	return list, err
}

// ReadFile returns the content of the named file, following symbolic links.
func (z *Reader) ReadFile(name string) ([]byte, error) {
	f, err := z.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if d, ok := f.(*dirFile); ok {
		return nil, &fs.PathError{Op: "read", Path: d.path, Err: syscall.EISDIR}
	}
	file := f.(*File)
	buf := make([]byte, 0, min(file.fi.in.size, 64<<20))
	w := &appendWriter{buf}
	if _, err := file.WriteTo(w); err != nil {
		return nil, err
	}
	return w.b, nil
}

type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

// dirEntry implements fs.DirEntry; Info reads the inode.
type dirEntry struct {
	z    *Reader
	name string
	ent  dirent
}

func (d *dirEntry) Name() string { return d.name }
func (d *dirEntry) IsDir() bool  { return d.ent.typ == TypeDir }
func (d *dirEntry) Type() fs.FileMode {
	return (&inode{typ: d.ent.typ}).mode().Type()
}
func (d *dirEntry) Info() (fs.FileInfo, error) {
	in, err := d.z.entryInode(&d.ent)
	if err != nil {
		return nil, err
	}
	return d.z.info(d.name, in)
}
func (d *dirEntry) String() string { return fs.FormatDirEntry(d) }

// dirFile is an open directory.
type dirFile struct {
	z    *Reader
	path string
	fi   *fileInfo
	list []fs.DirEntry
	read bool
	pos  int
}

func (d *dirFile) Stat() (fs.FileInfo, error) { return d.fi, nil }
func (d *dirFile) Close() error               { return nil }
func (d *dirFile) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.path, Err: syscall.EISDIR}
}

// ReadDir reads the directory as fs.ReadDirFile specifies.
func (d *dirFile) ReadDir(n int) ([]fs.DirEntry, error) {
	if !d.read {
		list, err := d.z.dirEntries(d.fi.in)
		if err != nil {
			return nil, &fs.PathError{Op: "readdir", Path: d.path, Err: err}
		}
		d.list, d.read = list, true
	}
	rest := d.list[d.pos:]
	if n <= 0 {
		d.pos = len(d.list)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(rest))
	d.pos += n
	return rest[:n], nil
}

// File is an open non-directory: a regular file's content, or nothing for
// devices, fifos and sockets. Read and Seek share an offset; ReadAt and
// WriteTo may run concurrently with each other (WriteTo uses all cores to
// decompress one file).
type File struct {
	z    *Reader
	path string
	fi   *fileInfo
	fd   *fileData // nil unless a regular file
	off  int64

	mu  sync.Mutex // guards the last block decompressed by Read or ReadAt
	cur int
	buf []byte // nil if none
}

// Stat returns the file's FileInfo (its Sys is an *InodeInfo).
func (f *File) Stat() (fs.FileInfo, error) { return f.fi, nil }

// Close drops the File's buffer; the File must not be used afterwards.
func (f *File) Close() error {
	f.mu.Lock()
	f.buf = nil
	f.mu.Unlock()
	return nil
}

// Size returns the file's length in bytes.
func (f *File) Size() int64 { return f.fi.Size() }

// Read reads from the current offset. Reads smaller than a block keep the
// last decompressed block, so small sequential reads decompress each block
// once.
func (f *File) Read(p []byte) (int, error) {
	if f.fd == nil || f.off >= f.Size() {
		return 0, io.EOF
	}
	n, err := f.ReadAt(p, f.off)
	f.off += int64(n)
	if err == io.EOF && n > 0 {
		err = nil
	}
	return n, err
}

// ReadAt implements io.ReaderAt; calls may run concurrently.
func (f *File) ReadAt(p []byte, off int64) (int, error) {
	if f.fd == nil {
		return 0, io.EOF
	}
	bs := int64(f.z.sb.BlockSize)
	if off < 0 || off >= f.Size() || len(p) >= int(bs) || off/bs >= int64(len(f.fd.in.blocks)) {
		n, err := f.fd.readAt(p, off)
		return n, f.wrap(err)
	}
	// A small read inside one block: serve it from the cached block.
	i := int(off / bs)
	f.mu.Lock()
	if f.buf == nil || f.cur != i {
		f.mu.Unlock()
		b, err := f.fd.block(i, nil)
		if err != nil {
			return 0, f.wrap(err)
		}
		f.mu.Lock()
		f.buf, f.cur = b, i
	}
	n := copy(p, f.buf[off-int64(i)*bs:])
	f.mu.Unlock()
	if n < len(p) { // the read crosses into the next block
		m, err := f.ReadAt(p[n:], off+int64(n))
		return n + m, err
	}
	return n, nil
}

// Seek implements io.Seeker.
func (f *File) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += f.off
	case io.SeekEnd:
		offset += f.Size()
	default:
		return 0, &fs.PathError{Op: "seek", Path: f.path, Err: fs.ErrInvalid}
	}
	if offset < 0 {
		return 0, &fs.PathError{Op: "seek", Path: f.path, Err: fs.ErrInvalid}
	}
	f.off = offset
	return offset, nil
}

// WriteTo writes the rest of the file to w, decompressing blocks in
// parallel (GOMAXPROCS workers, a bounded window of blocks) and writing them
// in order; io.Copy uses it.
func (f *File) WriteTo(w io.Writer) (int64, error) {
	if f.fd == nil || f.off >= f.Size() {
		return 0, nil
	}
	n, err := f.fd.writeTo(w, f.off)
	f.off += n
	return n, f.wrap(err)
}

func (f *File) wrap(err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return err
	}
	return &fs.PathError{Op: "read", Path: f.path, Err: err}
}

// WalkFunc is called by Walk for each entry: path is relative to the image
// root as in io/fs ("." for the root), info is as Lstat returns it (its Sys
// is an *InodeInfo). If reading a directory fails, fn is called again for
// that directory with the error. Returning fs.SkipDir skips a directory (or
// the rest of the current one, from a non-directory); fs.SkipAll stops.
type WalkFunc func(path string, info fs.FileInfo, err error) error

// Walk walks the tree at root (not following symbolic links) in on-disk
// order: depth first, each directory's entries sorted by name. A directory
// reached twice (a loop, or a directory hard link, which a valid image
// cannot have) is an error.
func (z *Reader) Walk(root string, fn WalkFunc) error {
	in, err := z.resolve("walk", root, false)
	if err != nil {
		return fn(root, nil, err)
	}
	fi, err := z.info(path.Base(root), in)
	if err != nil {
		return fn(root, nil, err)
	}
	seen := map[uint64]bool{}
	err = z.walk(root, fi, seen, fn)
	if err == fs.SkipDir || err == fs.SkipAll {
		return nil
	}
	return err
}

func (z *Reader) walk(p string, fi *fileInfo, seen map[uint64]bool, fn WalkFunc) error {
	if err := fn(p, fi, nil); err != nil || !fi.in.isDir() {
		return err
	}
	if seen[fi.in.ref] {
		return fn(p, fi, &FormatError{Off: int64(z.inodeTable.start), Msg: "directory reached twice (a loop)", Val: fmt.Sprintf("%q, inode %d", p, fi.in.number)})
	}
	seen[fi.in.ref] = true
	var ents []dirent
	err := z.readDir(fi.in, func(e *dirent) bool {
		d := *e
		d.name = append([]byte(nil), e.name...)
		ents = append(ents, d)
		return true
	})
	if err != nil {
		return fn(p, fi, err)
	}
	for i := range ents {
		name := string(ents[i].name)
		child := name
		if p != "." {
			child = p + "/" + child
		}
		in, err := z.entryInode(&ents[i])
		var cfi *fileInfo
		if err == nil {
			cfi, err = z.info(name, in)
		}
		if err != nil {
			if err := fn(child, nil, err); err != nil {
				if err == fs.SkipDir {
					continue
				}
				return err
			}
			continue
		}
		if err := z.walk(child, cfi, seen, fn); err != nil {
			if err == fs.SkipDir {
				if cfi.in.isDir() {
					continue
				}
				return nil // skip the rest of this directory
			}
			return err
		}
	}
	return nil
}
