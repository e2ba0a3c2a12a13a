// Package tarimage writes a signed file tree as a POSIX pax archive
// (IEEE Std 1003.1-2017, pax "Extended Header" format; Go's archive/tar
// encodes the records) that GNU tar and bsdtar install with its xattrs:
// each file's security.ima and security.evm travel as
// SCHILY.xattr.security.ima / SCHILY.xattr.security.evm records in the
// pax header before the member (the record names GNU tar's --xattrs and
// libarchive read and write). The archive is optionally compressed as a
// whole (gzip, zstd).
//
// The archive is reproducible: members in the order they are added, no
// user or group names, one modification time for every member, no access
// or change times, pax records sorted by name, and compressors with fixed
// settings. It depends only on the entries, their content and the Options,
// never on Workers, timing or the clock.
//
// The one-read guarantee: a file's xattrs go before its data, but its
// signatures are known only once its content has been read. WriteData reads
// every file exactly once on Workers goroutines, hands its Seal to a
// goroutine of its own (so signing overlaps the reading of later files) and
// holds what it read until the Seal returns: in memory for files up to Options.MemFile
// bytes, else in a spool file in Options.SpoolDir (written once, read
// back once: the cost of tar for large signed files). Unsigned files (no
// Seal) larger than MemFile are read directly into the archive.
package tarimage

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/klauspost/compress/gzip"
	"golang.org/x/sync/semaphore"

	"github.com/imaforge/imaforge/internal/countio"
	"github.com/imaforge/imaforge/internal/fsmode"
	"github.com/imaforge/imaforge/squashfs"
)

// Compression of the whole archive.
type Compression uint8

const (
	None Compression = iota // .tar
	Gzip                    // .tar.gz (RFC 1952, no name, mtime 0)
	Zstd                    // .tar.zst (RFC 8878, one stream)
)

// String returns the compression's file suffix without the dot ("", "gz", "zst").
func (c Compression) String() string {
	switch c {
	case Gzip:
		return "gz"
	case Zstd:
		return "zst"
	}
	return ""
}

// ZstdThreads is how many threads of libzstd's own compress a tar.zst
// archive beside the goroutine that writes it (squashfs.NewZstdStream: the
// bytes are the same for any number from 1 up).
var ZstdThreads = 1

// Options configure a Writer.
type Options struct {
	Compression Compression
	// Level is the compressor's level (gzip 1-9, zstd 1-22); 0 selects
	// gzip 6 or zstd 3.
	Level int
	// Workers read files side by side (0: 1).
	Workers int
	// MemFile is the largest file held in memory while waiting for its
	// signature (0: 1 MiB); Window bounds the bytes held in memory in all
	// (0: 24 MiB: well under the imaforge binary's soft heap limit).
	MemFile, Window int64
	// SpoolDir holds larger signed files until their signature is known
	// (empty: os.TempDir).
	SpoolDir string
}

// Xattr is one extended attribute; Name is the full name ("security.ima").
type Xattr struct {
	Name  string
	Value []byte
}

// Entry is one member of the archive.
type Entry struct {
	// Path is absolute and clean ("/" for the root); the member is named
	// "." + Path ("./", "./usr/bin/sh"), as Debian's data.tar names them.
	Path string
	// Mode holds the fs.FileMode type bits (none, ModeDir, ModeSymlink,
	// ModeDevice, ModeDevice|ModeCharDevice, ModeNamedPipe), the
	// permission bits and ModeSetuid, ModeSetgid, ModeSticky.
	Mode     fs.FileMode
	UID, GID uint32
	ModTime  int64
	// Size and Open are a regular file's length and content; Open is
	// called once, from any goroutine, and read to EOF once.
	Size int64
	Open func() (io.ReadCloser, error)
	// Target is a symlink's target.
	Target       string
	Major, Minor uint32
	// LinkTo makes the member a hard link to an earlier member's Path.
	LinkTo string
	// Xattrs are written as SCHILY.xattr records; ignored when Seal is set.
	Xattrs []Xattr
	// Seal, when not nil, returns the xattrs of a regular file; it is
	// called once, after the reader Open returned has been closed.
	Seal func() ([]Xattr, error)
}

// Errors of Add.
var (
	// ErrName: a path or link target tar cannot store portably (not UTF-8,
	// which pax path records must be, or containing NUL).
	ErrName = errors.New("name tar cannot store")
	// ErrOwner: uid or gid 4294967295, which chown(2) reads as "leave
	// unchanged", so no tar can restore it.
	ErrOwner = errors.New("owner tar cannot restore")
	// ErrType: a file type tar has no member type for (sockets).
	ErrType = errors.New("file type tar cannot store")
	// ErrSizeMismatch: a file's content is not as long as declared.
	ErrSizeMismatch = errors.New("content size differs from the declared size")
	// ErrOrder: entries added twice, out of order or below a non-directory.
	ErrOrder = errors.New("entry out of order")
)

// Stats describe a finished archive.
type Stats struct {
	Members int
	// TarBytes is the uncompressed archive size; Bytes what was written.
	TarBytes, Bytes int64
	// Spooled counts the bytes that waited in spool files.
	Spooled int64
}

// Writer writes an archive: Add every entry in order, call WriteData once,
// then Close.
type Writer struct {
	opts    Options
	count   countio.Writer // what reaches the destination
	comp    io.WriteCloser
	tarSize countio.Writer
	tw      *tar.Writer
	entries []*Entry
	last    string
	wrote   bool
	closed  bool
	stats   Stats
}

// NewWriter starts an archive written to w.
func NewWriter(w io.Writer, opts Options) (*Writer, error) {
	if opts.Workers <= 0 {
		opts.Workers = 1
	}
	if opts.MemFile <= 0 {
		opts.MemFile = 1 << 20
	}
	if opts.Window <= 0 {
		opts.Window = 24 << 20
	}
	opts.Window = max(opts.Window, opts.MemFile)
	tw := &Writer{opts: opts, count: countio.Writer{W: w}}
	var dst io.Writer = &tw.count
	switch opts.Compression {
	case None:
	case Gzip:
		lvl := opts.Level
		if lvl == 0 {
			lvl = 6
		}
		gz, err := gzip.NewWriterLevel(dst, lvl)
		if err != nil {
			return nil, fmt.Errorf("tar.gz level %d: %w", lvl, err)
		}
		gz.OS = 255 // unknown: the same bytes on every build host
		tw.comp, dst = gz, gz
	case Zstd:
		lvl := opts.Level
		if lvl == 0 {
			lvl = 3
		}
		zw, err := squashfs.NewZstdStream(dst, lvl, ZstdThreads)
		if err != nil {
			return nil, fmt.Errorf("tar.zst: %w", err)
		}
		tw.comp, dst = zw, zw
	default:
		return nil, fmt.Errorf("tar: unknown compression %d", opts.Compression)
	}
	tw.tarSize = countio.Writer{W: dst}
	tw.tw = tar.NewWriter(&tw.tarSize)
	return tw, nil
}

// memberName is the member name of an image path.
func memberName(p string, dir bool) string {
	if p == "/" {
		return "./"
	}
	if dir {
		return "." + p + "/"
	}
	return "." + p
}

// CheckName reports whether tar can store an image path or link target.
func CheckName(s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: %q is not UTF-8 (pax path records must be)", ErrName, s)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("%w: %q contains NUL", ErrName, s)
	}
	return nil
}

// CheckOwner reports whether tar can restore an owner.
func CheckOwner(uid, gid uint32) error {
	if uid == 1<<32-1 || gid == 1<<32-1 {
		return fmt.Errorf("%w: %d:%d (4294967295 means \"unchanged\" to chown)", ErrOwner, uid, gid)
	}
	return nil
}

// Add appends an entry. Entries must come in the order they are to appear,
// each path once.
func (w *Writer) Add(e Entry) error {
	if w.wrote || w.closed {
		return fmt.Errorf("%s: %w: Add after WriteData", e.Path, ErrOrder)
	}
	if e.Path == "" || e.Path[0] != '/' || path.Clean(e.Path) != e.Path {
		return fmt.Errorf("%q: %w: not an absolute clean path", e.Path, ErrName)
	}
	if e.Path == w.last {
		return fmt.Errorf("%s: %w: added twice", e.Path, ErrOrder)
	}
	for _, s := range []string{e.Path, e.Target, e.LinkTo} {
		if err := CheckName(s); err != nil {
			return fmt.Errorf("%s: %w", e.Path, err)
		}
	}
	if e.LinkTo == "" {
		if err := CheckOwner(e.UID, e.GID); err != nil {
			return fmt.Errorf("%s: %w", e.Path, err)
		}
		if e.Mode&fs.ModeSocket != 0 {
			return fmt.Errorf("%s: %w: socket", e.Path, ErrType)
		}
		if e.Mode.IsRegular() && e.Open == nil && e.Size != 0 {
			return fmt.Errorf("%s: %w: %d bytes declared and no content", e.Path, ErrSizeMismatch, e.Size)
		}
	}
	w.last = e.Path
	w.entries = append(w.entries, &e)
	return nil
}

// job is one regular file being read by a worker.
type job struct {
	e      *Entry
	direct bool // read by the committer: unsigned and large
	cost   int64
	done   chan struct{}
	// valid after done
	buf    []byte   // content held in memory
	spool  *os.File // or content held in a spool file
	xattrs []Xattr
	err    error
}

// WriteData reads every regular file's content once and writes the
// members in order. It returns the first error in member order (naming the
// path), after which the archive is unusable.
func (w *Writer) WriteData(ctx context.Context) error {
	if w.wrote {
		return fmt.Errorf("tar: %w: WriteData called twice", ErrOrder)
	}
	w.wrote = true
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	jobs := make(map[*Entry]*job)
	var order []*job
	for _, e := range w.entries {
		if e.LinkTo != "" || !e.Mode.IsRegular() || e.Open == nil {
			continue
		}
		j := &job{e: e, done: make(chan struct{})}
		j.direct = e.Seal == nil && e.Size > w.opts.MemFile
		j.cost = min(e.Size, w.opts.MemFile)
		if j.direct {
			j.cost = 0
			close(j.done)
		}
		jobs[e] = j
		order = append(order, j)
	}

	// The dispatcher hands files out in member order, each once its bytes
	// fit in the window; the committer frees them in the same order, so
	// the earliest unwritten file always has its share.
	sem := semaphore.NewWeighted(w.opts.Window)
	queue := make(chan *job)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(queue)
		for _, j := range order {
			if j.direct {
				continue
			}
			if err := sem.Acquire(ctx, j.cost); err != nil {
				return
			}
			select {
			case queue <- j:
			case <-ctx.Done():
				sem.Release(j.cost)
				return
			}
		}
	}()
	// Readers hand a read file's Seal to a goroutine of its own and go on
	// reading: signing runs while later files are read, and the window
	// bounds how many wait.
	var seals sync.WaitGroup
	for range w.opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range queue {
				if ctx.Err() != nil {
					j.err = ctx.Err()
				} else if w.read(j); j.err == nil && j.e.Seal != nil {
					seals.Add(1)
					go func() {
						defer seals.Done()
						j.xattrs, j.err = j.e.Seal()
						close(j.done)
					}()
					continue
				}
				close(j.done)
			}
		}()
	}
	err := w.commit(ctx, jobs, sem)
	cancel()
	wg.Wait()
	seals.Wait()
	// Files read but never written (after an error) give back their spools.
	for _, j := range order {
		select {
		case <-j.done:
		default:
			continue
		}
		if j.spool != nil {
			removeSpool(j.spool)
		}
	}
	return err
}

// read reads one file into memory or a spool file.
func (w *Writer) read(j *job) {
	e := j.e
	r, err := e.Open()
	if err != nil {
		j.err = fmt.Errorf("%s: %w", e.Path, err)
		return
	}
	if e.Size <= w.opts.MemFile {
		j.buf, err = readExact(r, e.Size)
	} else {
		if j.spool, err = os.CreateTemp(w.opts.SpoolDir, "imaforge-tar-spool-*"); err != nil {
			r.Close()
			j.err = fmt.Errorf("%s: spool: %w", e.Path, err)
			return
		}
		err = copyExact(j.spool, r, e.Size)
	}
	if cerr := r.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		j.err = fmt.Errorf("%s: %w", e.Path, err)
		return
	}
	if j.spool != nil {
		if _, err := j.spool.Seek(0, io.SeekStart); err != nil {
			j.err = fmt.Errorf("%s: spool: %w", e.Path, err)
			return
		}
	}
	j.xattrs = e.Xattrs
}

// copyBufs are copyExact's buffers: larger than io.Copy's 32 KiB (fewer
// system calls for a spooled file), and reused rather than one per file.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// copyBuffered copies r to dst through a buffer of copyBufs.
func copyBuffered(dst io.Writer, r io.Reader) (int64, error) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	// The wrappers hide ReaderFrom and WriterTo, which would copy through
	// a 32 KiB buffer of their own.
	return io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{r}, *bp)
}

// copyExact copies exactly n bytes from r and checks that r ends there.
func copyExact(dst io.Writer, r io.Reader, n int64) error {
	k, err := copyBuffered(dst, io.LimitReader(r, n))
	if err != nil {
		return err
	}
	if k < n {
		return fmt.Errorf("%w: content ended after %d bytes, %d declared", ErrSizeMismatch, k, n)
	}
	return checkEnd(r, n)
}

// readExact reads exactly n bytes from r into a new slice (no copy through
// a buffer) and checks that r ends there.
func readExact(r io.Reader, n int64) ([]byte, error) {
	buf := make([]byte, n)
	if k, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: content ended after %d bytes, %d declared", ErrSizeMismatch, k, n)
		}
		return nil, err
	}
	return buf, checkEnd(r, n)
}

// checkEnd checks that r, from which n bytes were read, has no more.
func checkEnd(r io.Reader, n int64) error {
	var one [1]byte
	if m, err := io.ReadFull(r, one[:]); m != 0 {
		return fmt.Errorf("%w: content longer than the declared %d bytes", ErrSizeMismatch, n)
	} else if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

func removeSpool(f *os.File) {
	f.Close()
	os.Remove(f.Name())
}

// commit writes every member in order.
func (w *Writer) commit(ctx context.Context, jobs map[*Entry]*job, sem *semaphore.Weighted) error {
	for _, e := range w.entries {
		j := jobs[e]
		if j == nil {
			if err := w.writeHeader(e, e.Xattrs, 0); err != nil {
				return err
			}
			continue
		}
		select {
		case <-j.done:
		case <-ctx.Done():
			return ctx.Err()
		}
		if j.err != nil {
			return j.err
		}
		if err := w.writeFile(j); err != nil {
			return err
		}
		sem.Release(j.cost)
	}
	return nil
}

func (w *Writer) writeFile(j *job) error {
	e := j.e
	if j.direct {
		if err := w.writeHeader(e, e.Xattrs, e.Size); err != nil {
			return err
		}
		r, err := e.Open()
		if err != nil {
			return fmt.Errorf("%s: %w", e.Path, err)
		}
		err = copyExact(w.tw, r, e.Size)
		if cerr := r.Close(); err == nil && cerr != nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("%s: %w", e.Path, err)
		}
		return nil
	}
	if err := w.writeHeader(e, j.xattrs, e.Size); err != nil {
		return err
	}
	if j.spool != nil {
		defer removeSpool(j.spool)
		n, err := copyBuffered(w.tw, j.spool)
		w.stats.Spooled += n
		if err != nil {
			return fmt.Errorf("%s: spool: %w", e.Path, err)
		}
		return nil
	}
	_, err := w.tw.Write(j.buf)
	j.buf = nil
	if err != nil {
		return fmt.Errorf("%s: writing archive: %w", e.Path, err)
	}
	return nil
}

// writeHeader writes a member's header (and pax header).
func (w *Writer) writeHeader(e *Entry, xattrs []Xattr, size int64) error {
	h := &tar.Header{
		Name:    memberName(e.Path, e.Mode.IsDir()),
		Mode:    int64(fsmode.Perm(e.Mode)),
		Uid:     int(e.UID),
		Gid:     int(e.GID),
		ModTime: time.Unix(e.ModTime, 0),
		Format:  tar.FormatPAX,
	}
	switch {
	case e.LinkTo != "":
		h = &tar.Header{Name: memberName(e.Path, false), Typeflag: tar.TypeLink, Linkname: memberName(e.LinkTo, false),
			ModTime: h.ModTime, Format: tar.FormatPAX}
	case e.Mode.IsRegular():
		h.Typeflag, h.Size = tar.TypeReg, size
	case e.Mode.IsDir():
		h.Typeflag = tar.TypeDir
	case e.Mode&fs.ModeSymlink != 0:
		h.Typeflag, h.Linkname = tar.TypeSymlink, e.Target
	case e.Mode&fs.ModeNamedPipe != 0:
		h.Typeflag = tar.TypeFifo
	case e.Mode&fs.ModeCharDevice != 0:
		h.Typeflag, h.Devmajor, h.Devminor = tar.TypeChar, int64(e.Major), int64(e.Minor)
	case e.Mode&fs.ModeDevice != 0:
		h.Typeflag, h.Devmajor, h.Devminor = tar.TypeBlock, int64(e.Major), int64(e.Minor)
	default:
		return fmt.Errorf("%s: %w: %v", e.Path, ErrType, e.Mode.Type())
	}
	if e.LinkTo == "" && len(xattrs) > 0 {
		h.PAXRecords = make(map[string]string, len(xattrs))
		for _, x := range xattrs {
			h.PAXRecords[PAXXattrPrefix+x.Name] = string(x.Value)
		}
	}
	if err := w.tw.WriteHeader(h); err != nil {
		return fmt.Errorf("%s: %w", e.Path, err)
	}
	w.stats.Members++
	return nil
}

// PAXXattrPrefix starts the pax record of an xattr (GNU tar --xattrs,
// libarchive, star): SCHILY.xattr.<full name>=<raw value>.
const PAXXattrPrefix = "SCHILY.xattr."

// Close writes the archive's end (two zero blocks), flushes the
// compressor and returns the Stats. WriteData is run first if it was not.
func (w *Writer) Close() (Stats, error) {
	if w.closed {
		return Stats{}, errors.New("tar: closed twice")
	}
	if !w.wrote {
		if err := w.WriteData(context.Background()); err != nil {
			return Stats{}, err
		}
	}
	w.closed = true
	if err := w.tw.Close(); err != nil {
		return Stats{}, fmt.Errorf("tar: %w", err)
	}
	if w.comp != nil {
		if err := w.comp.Close(); err != nil {
			return Stats{}, fmt.Errorf("tar: %w", err)
		}
	}
	w.stats.TarBytes, w.stats.Bytes = w.tarSize.N, w.count.N
	return w.stats, nil
}
