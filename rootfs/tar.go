package rootfs

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"golang.org/x/sys/unix"

	"github.com/imaforge/imaforge/internal/atomicfile"
	"github.com/imaforge/imaforge/manifest"
)

// Tarball sources.
//
// A tar stream can only be read in archive order, while the build reads
// files in tree order (and in parallel). So the walk reads the archive once,
// taking every member's metadata from its headers, and makes each regular
// member's bytes randomly readable:
//
//   - in a plain (uncompressed) tarball, a member's data is a contiguous
//     section of the file: the entry's content is that section, read in
//     place with pread; nothing is copied;
//   - in a compressed tarball (gzip, zstd, xz, bzip2), and for GNU sparse
//     members of a plain one, the data is copied once, during the walk, into
//     a spool file: an unlinked temporary file in Options.TempDir ($TMPDIR
//     when empty, or the image's directory when that is not writable),
//     deleted when the tree is closed (or the process exits). It holds the
//     regular members' bytes and nothing else; no member is ever unpacked
//     to the file system. Runs of zeros (the holes of a sparse member, or
//     written-out zeros) are skipped, leaving holes in the spool, so a
//     terabyte sparse member costs no disk; the bytes actually written are
//     counted (Tree.Spooled) and bounded by Options.MaxSpool. A failure of
//     the spool (its file system full) is a build failure, not an input
//     error.
//
// Either way every Open is a section reader over one shared file descriptor,
// safe for concurrent use.

// tarSuffixes are the names recognised as tarballs.
var tarSuffixes = []string{".tar", ".tar.gz", ".tgz", ".tar.zst", ".tar.zstd", ".tzst", ".tar.xz", ".txz", ".tar.bz2", ".tbz2"}

func isTarName(p string) bool {
	for _, s := range tarSuffixes {
		if strings.HasSuffix(p, s) {
			return true
		}
	}
	return false
}

// Magic numbers of the compressed formats (RFC 1952, RFC 8878, the xz file
// format 1.0.4 section 2.1.1.1, bzip2).
var (
	magicGzip  = []byte{0x1f, 0x8b}
	magicZstd  = []byte{0x28, 0xb5, 0x2f, 0xfd}
	magicXZ    = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	magicBzip2 = []byte("BZh")
)

// decompressor returns a reader of the tar stream in f, detected by magic
// number, and whether it is compressed.
func decompressor(f *os.File) (io.Reader, func(), bool, error) {
	br := bufio.NewReaderSize(f, 1<<16)
	head, _ := br.Peek(6)
	switch {
	case bytes.HasPrefix(head, magicGzip):
		z, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, true, err
		}
		z.Multistream(true)
		return z, func() { z.Close() }, true, nil
	case bytes.HasPrefix(head, magicZstd):
		z, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, nil, true, err
		}
		return z, z.Close, true, nil
	case bytes.HasPrefix(head, magicXZ):
		z, err := xz.NewReader(br)
		if err != nil {
			return nil, nil, true, err
		}
		return z, func() {}, true, nil
	case bytes.HasPrefix(head, magicBzip2):
		return bzip2.NewReader(br), func() {}, true, nil
	}
	return nil, func() {}, false, nil
}

// section is a shared file holding member data: the tarball itself or a
// spool file.
type section struct {
	f *os.File
	// For a tarball read in place: its identity, size and mtime at the
	// walk, checked at every Open and Close.
	tarball         string
	dev, ino        uint64
	size, mtimeNsec int64
}

func (s *section) Close() error { return s.f.Close() }

func (s *section) check() error {
	if s.tarball == "" {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Stat(s.tarball, &st); err != nil {
		return &os.PathError{Op: "stat", Path: s.tarball, Err: err}
	}
	if uint64(st.Dev) != s.dev || st.Ino != s.ino || st.Size != s.size || st.Mtim.Nano() != s.mtimeNsec {
		return fmt.Errorf("%s: %w: the tarball changed", s.tarball, ErrModified)
	}
	return nil
}

// TarMember is a regular file's content in a tarball source.
type TarMember struct {
	s    *section
	name string // member name, for messages
	off  int64
	size int64
}

// Name returns the member's name in the archive.
func (m *TarMember) Name() string { return m.name }

// Open returns a reader of the member's bytes.
func (m *TarMember) Open() (io.ReadCloser, error) {
	if err := m.s.check(); err != nil {
		return nil, err
	}
	return &memberReader{SectionReader: io.NewSectionReader(m.s.f, m.off, m.size), m: m}, nil
}

type memberReader struct {
	*io.SectionReader
	m *TarMember
}

func (r *memberReader) Close() error { return r.m.s.check() }

// tarWalk is the state of one tarball source's walk.
type tarWalk struct {
	b      *builder
	s      *manifest.Source
	o      *Origin
	member map[string]int32 // image path → entry index, for hard links
	next   uint64           // hard-link inode ids
	ino    map[string]uint64
	excl   map[string]bool // directories checked against exclude
}

// walkTar reads a tarball source's headers into the tree.
func (b *builder) walkTar(s *manifest.Source, o *Origin) error {
	fail := func(err error, format string, args ...any) error {
		return b.m.Errorf(s.FieldPos("from"), err, "sources[%d]: %s: "+format, append([]any{o.Index, s.From}, args...)...)
	}
	f, err := os.Open(s.From)
	if err != nil {
		return fail(err, "opening")
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return fail(err, "stat")
	}
	stream, done, compressed, err := decompressor(f)
	if err != nil {
		f.Close()
		return fail(err, "decompressing")
	}
	defer done()
	var data *section // where regular members' bytes are read from
	var spool *section
	if compressed {
		// The decompressor reads f until the last member: it is closed
		// when the walk of this tarball ends, not before.
		defer f.Close()
	} else {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			f.Close()
			return fail(err, "seek")
		}
		stream = f
		data = &section{f: f, tarball: s.From, dev: uint64(st.Dev), ino: st.Ino, size: st.Size, mtimeNsec: st.Mtim.Nano()}
		b.closers = append(b.closers, data)
	}
	getSpool := func() (*section, error) {
		if spool == nil {
			dir := b.opts.TempDir
			if dir == "" {
				dir = os.TempDir()
			}
			sf, err := atomicfile.CreateUnlinked(dir, "imaforge-tar-*")
			if err != nil && b.opts.TempDir == "" && b.m.Image.Output != "" {
				// An unprivileged build may not write $TMPDIR (or /tmp);
				// it can write where the image goes.
				var err2 error
				if sf, err2 = atomicfile.CreateUnlinked(filepath.Dir(b.m.Image.Output), ".imaforge-tar-*"); err2 == nil {
					err = nil
				}
			}
			if err != nil {
				return nil, err
			}
			spool = &section{f: sf}
			b.closers = append(b.closers, spool)
		}
		return spool, nil
	}
	var spoolOff int64

	if err := b.implyDir(s.To, &Origin{Kind: FromImplied, Index: o.Index, Pos: s.FieldPos("to")}); err != nil {
		return err
	}
	w := &tarWalk{b: b, s: s, o: o, member: map[string]int32{}, ino: map[string]uint64{}, excl: map[string]bool{}}
	tr := tar.NewReader(stream)
	for {
		if err := b.ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fail(err, "reading the archive")
		}
		ip, skip, err := w.imagePath(hdr)
		if err != nil {
			return err
		}
		if skip {
			continue
		}
		e, err := w.entry(hdr, ip)
		if err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeLink {
			if err := w.hardLink(hdr, ip); err != nil {
				return err
			}
			continue
		}
		if e.Type == TypeReg {
			m := &TarMember{name: hdr.Name, size: hdr.Size}
			if data != nil && !isSparse(hdr) {
				pos, err := f.Seek(0, io.SeekCurrent)
				if err != nil {
					return fail(err, "seek")
				}
				m.s, m.off = data, pos
			} else {
				sp, err := getSpool()
				if err != nil {
					return fmt.Errorf("sources[%d]: %s: creating a spool file: %w", o.Index, s.From, err)
				}
				n, err := b.spoolMember(sp.f, spoolOff, tr)
				if err != nil {
					var se *spoolError
					if errors.As(err, &se) {
						// The spool's file system, not the manifest:
						// a build failure (exit 1).
						return fmt.Errorf("sources[%d]: %s: member %q: %w", o.Index, s.From, hdr.Name, err)
					}
					return fail(err, "reading member %q", hdr.Name)
				}
				if n != hdr.Size {
					return fail(io.ErrUnexpectedEOF, "member %q", hdr.Name)
				}
				m.s, m.off = sp, spoolOff
				spoolOff += n
			}
			e.Content = m
		}
		if err := b.implyDir(path.Dir(ip), &Origin{Kind: FromImplied, Index: o.Index, Pos: s.Pos}); err != nil {
			return err
		}
		if err := b.put(e, nil); err != nil {
			return err
		}
		w.member[ip] = b.index[ip]
	}
	if s.Mode != nil {
		b.entries.at(b.index[s.To]).Mode = uint32(*s.Mode)
	}
	return nil
}

// spoolChunk is the unit in which member data is copied to the spool; an
// all-zero chunk is skipped, leaving a hole, so a sparse member (or any long
// run of zeros) takes no space in the spool.
const spoolChunk = 64 << 10

// ErrSpoolLimit is returned when the data of a tarball's members would take
// more than Options.MaxSpool bytes in the spool.
var ErrSpoolLimit = errors.New("spool limit reached")

// spoolError is a failure of the spool itself (its file system full, the
// limit reached), as opposed to a malformed archive.
type spoolError struct{ err error }

func (e *spoolError) Error() string { return e.err.Error() }
func (e *spoolError) Unwrap() error { return e.err }

// spoolMember copies one member's bytes from r into the spool at off and
// returns how many it read. All-zero chunks are not written: the spool gets a
// hole there (the writer stores all-zero blocks sparse, so a sparse member
// costs neither spool space nor image space). The bytes written are counted
// in b.spooled and bounded by Options.MaxSpool.
func (b *builder) spoolMember(f *os.File, off int64, r io.Reader) (int64, error) {
	buf := make([]byte, spoolChunk)
	var n int64
	for {
		if err := b.ctx.Err(); err != nil {
			return n, err
		}
		k, err := io.ReadFull(r, buf)
		if k > 0 {
			if !allZero(buf[:k]) {
				if max := b.opts.MaxSpool; max > 0 && b.spooled+int64(k) > max {
					return n, &spoolError{fmt.Errorf("%w: more than %d bytes of member data to hold in %s", ErrSpoolLimit, max, filepath.Dir(f.Name()))}
				}
				if _, werr := f.WriteAt(buf[:k], off+n); werr != nil {
					return n, &spoolError{fmt.Errorf("writing the spool file in %s: %w", filepath.Dir(f.Name()), werr)}
				}
				b.spooled += int64(k)
			}
			n += int64(k)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return n, err
		}
	}
	// A trailing hole: extend the file so reads past the last written
	// byte see zeros, not EOF.
	if st, err := f.Stat(); err != nil {
		return n, &spoolError{err}
	} else if st.Size() < off+n {
		if err := f.Truncate(off + n); err != nil {
			return n, &spoolError{fmt.Errorf("extending the spool file in %s: %w", filepath.Dir(f.Name()), err)}
		}
	}
	return n, nil
}

func allZero(p []byte) bool {
	for len(p) >= 8 {
		if p[0]|p[1]|p[2]|p[3]|p[4]|p[5]|p[6]|p[7] != 0 {
			return false
		}
		p = p[8:]
	}
	for _, c := range p {
		if c != 0 {
			return false
		}
	}
	return true
}

func isSparse(h *tar.Header) bool {
	if h.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range h.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// imagePath maps a member name to its image path. Absolute names and names
// with a ".." component are errors; "." and "./" are the source's top.
func (w *tarWalk) imagePath(h *tar.Header) (string, bool, error) {
	if h.Typeflag == tar.TypeXGlobalHeader || h.Typeflag == tar.TypeXHeader {
		return "", true, nil
	}
	name := h.Name
	bad := func(why string) error {
		return w.b.m.Errorf(w.s.FieldPos("from"), ErrUnsafeMember, "sources[%d]: %s: member %q %s", w.o.Index, w.s.From, name, why)
	}
	if strings.HasPrefix(name, "/") {
		return "", false, bad("has an absolute name")
	}
	if strings.IndexByte(name, 0) >= 0 {
		return "", false, bad("contains a NUL byte")
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", false, bad("has a .. component")
		}
	}
	rel := strings.Trim(path.Clean("/"+name), "/")
	ip := imageJoin(w.s.To, rel)
	if rel != "" && w.excluded(ip) {
		return "", true, nil
	}
	return ip, false, nil
}

// excluded reports whether ip or one of its directories below the source's
// top matches an exclude pattern.
func (w *tarWalk) excluded(ip string) bool {
	if w.b.m.Excluded(ip) {
		return true
	}
	for d := path.Dir(ip); len(d) > len(w.s.To); d = path.Dir(d) {
		ex, ok := w.excl[d]
		if !ok {
			ex = w.b.m.Excluded(d)
			w.excl[d] = ex
		}
		if ex {
			return true
		}
	}
	return false
}

func tarID(v int64, what, name string) (uint32, error) {
	if v < 0 || v > math.MaxUint32 {
		return 0, fmt.Errorf("member %q: %s %d out of range", name, what, v)
	}
	return uint32(v), nil
}

// entry makes the entry of a tar member from its header.
func (w *tarWalk) entry(h *tar.Header, ip string) (Entry, error) {
	b := w.b
	e := b.newEntry(ip, 0, w.o)
	e.Mode = uint32(h.Mode) & 0o7777
	fail := func(err error) (Entry, error) {
		return e, b.m.Errorf(w.s.FieldPos("from"), err, "sources[%d]: %s", w.o.Index, w.s.From)
	}
	var err error
	if e.UID, err = tarID(int64(h.Uid), "uid", h.Name); err != nil {
		return fail(err)
	}
	if e.GID, err = tarID(int64(h.Gid), "gid", h.Name); err != nil {
		return fail(err)
	}
	if uid, gid, ok := b.owner(); ok {
		e.UID, e.GID = uid, gid
	}
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeGNUSparse, tar.TypeCont:
		e.Type, e.Size = TypeReg, h.Size
	case tar.TypeLink:
		e.Type = TypeReg // replaced by the target's type
	case tar.TypeDir:
		e.Type = TypeDir
	case tar.TypeSymlink:
		e.Type, e.Size = TypeSymlink, int64(len(h.Linkname))
		e.SetTarget(h.Linkname)
	case tar.TypeChar, tar.TypeBlock:
		e.Type = TypeChar
		if h.Typeflag == tar.TypeBlock {
			e.Type = TypeBlock
		}
		if h.Devmajor < 0 || h.Devmajor > manifest.MaxMajor || h.Devminor < 0 || h.Devminor > manifest.MaxMinor {
			return fail(fmt.Errorf("member %q: device %d,%d cannot be stored in SquashFS", h.Name, h.Devmajor, h.Devminor))
		}
		e.SetDev(uint32(h.Devmajor), uint32(h.Devminor))
	case tar.TypeFifo:
		e.Type = TypeFifo
	default:
		return fail(fmt.Errorf("%w: member %q has tar type %q", ErrUnsupportedType, h.Name, h.Typeflag))
	}
	if b.m.Image.KeepXattrs {
		var names []string
		for k := range h.PAXRecords {
			if n, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok && manifest.CheckXattrName(n) == nil {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		var xs manifest.Xattrs
		for _, n := range names {
			xs = append(xs, manifest.Xattr{Name: n, Value: []byte(h.PAXRecords["SCHILY.xattr."+n])})
		}
		e.SetXattrs(xs)
	}
	return e, nil
}

// hardLink adds a tar hard link: an entry sharing the inode of an earlier
// member of the same archive.
func (w *tarWalk) hardLink(h *tar.Header, ip string) error {
	b := w.b
	target := h.Linkname
	bad := func(why string) error {
		return b.m.Errorf(w.s.FieldPos("from"), ErrUnsafeMember, "sources[%d]: %s: hard link %q -> %q %s", w.o.Index, w.s.From, h.Name, target, why)
	}
	if strings.HasPrefix(target, "/") {
		return bad("has an absolute target")
	}
	for _, c := range strings.Split(target, "/") {
		if c == ".." {
			return bad("has a .. component")
		}
	}
	tp := imageJoin(w.s.To, strings.Trim(path.Clean("/"+target), "/"))
	i, ok := w.member[tp]
	if !ok {
		return bad("names no earlier member of the archive")
	}
	t := *b.entries.at(i)
	if t.Type == TypeDir {
		return bad("names a directory")
	}
	id, ok := w.ino[tp]
	if !ok {
		w.next++
		id = w.next
		w.ino[tp] = id
		b.links[i] = devIno{dev: math.MaxUint64 - uint64(w.o.Index), ino: id}
	}
	link := devIno{dev: math.MaxUint64 - uint64(w.o.Index), ino: id}
	t.Path = ip
	t.SetOrigin(w.o)
	if err := b.implyDir(path.Dir(ip), &Origin{Kind: FromImplied, Index: w.o.Index, Pos: w.s.Pos}); err != nil {
		return err
	}
	if err := b.put(t, &link); err != nil {
		return err
	}
	w.member[ip] = b.index[ip]
	w.ino[ip] = id
	return nil
}
