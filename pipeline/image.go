package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"runtime/debug"
	"slices"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/imaforge/imaforge/internal/parallel"
	"github.com/imaforge/imaforge/manifest"
	"github.com/imaforge/imaforge/rootfs"
	"github.com/imaforge/imaforge/squashfs"
	"github.com/imaforge/imaforge/tarimage"
)

// ImageWriter is what Build needs from an output format (SquashFS, tar):
// entries in image order, every regular file's content read exactly once,
// and the xattrs a file ends with, which the build knows only after its
// content has been read (its signatures). A format that stores xattrs
// after the data (SquashFS: in the tables Close writes) asks for them at
// Close; one that stores them before the data (tar: pax records before
// each member) asks as soon as the file has been read, holding the bytes
// it read until then. Publishing the finished file is not the writer's job.
type ImageWriter interface {
	// Add declares the next entry. Build adds them in image order
	// (rootfs.ComparePaths), each directory before its entries.
	Add(e ImageEntry) error
	// WriteData reads every regular file's content once (Open, read to
	// EOF, Close) and writes it. It calls each entry's Seal once, after
	// the reader Open returned has been closed.
	WriteData(ctx context.Context) error
	// Close finishes the image (tables, trailers, compression) and
	// returns what it wrote.
	Close() (ImageStats, error)
}

// ImageEntry is one entry of the image, format-neutral.
type ImageEntry struct {
	// Path is absolute and clean ("/" for the root).
	Path string
	// Mode holds the fs.FileMode type bits, the permission bits and
	// fs.ModeSetuid, fs.ModeSetgid, fs.ModeSticky.
	Mode     fs.FileMode
	UID, GID uint32
	ModTime  int64
	// Size and Open: a regular file's length and content (Open may be
	// called from any goroutine).
	Size int64
	Open func() (io.ReadCloser, error)
	// Opener, instead of Open: the content is Opener.OpenFile(File). One
	// Opener and an index, not a function per file: a SquashFS writer
	// holds 4 bytes a file until it is read (squashfs.Entry.Opener).
	Opener squashfs.FileOpener
	// Target is a symlink's target.
	Target string
	// Major and Minor are a device's numbers.
	Major, Minor uint32
	// LinkTo makes the entry a hard link to an earlier entry's path; the
	// other fields but Path are then ignored.
	LinkTo string
	// Xattrs are the entry's xattrs before any signature.
	Xattrs manifest.Xattrs
	// Seal, when not nil, gives the complete xattrs of a regular file
	// (Xattrs plus its security.ima and security.evm): Seal.Seal(File),
	// which waits for the signatures, may be called only after Open's
	// reader was closed. One Sealer and an index, not a function per file:
	// a million files kept a closure each until the image's tables.
	// File is Opener's index too.
	Seal Sealer
	File int
}

// Sealer completes the xattrs of the regular files of a build, by index.
type Sealer interface {
	// Seal returns file's complete xattrs, sorted by name.
	Seal(file int) (manifest.Xattrs, error)
	// Path returns file's image path.
	Path(file int) string
}

// ImageStats describes a finished image.
type ImageStats struct {
	// Squashfs is set for a SquashFS image, Tar for a tar archive.
	Squashfs *squashfs.Stats
	Tar      *tarimage.Stats
}

// squashfsImage is the SquashFS output: package squashfs's Writer, which
// stores xattrs in tables written at Close, so every Seal is called after
// all data has been written.
type squashfsImage struct {
	w       *squashfs.Writer
	workers int
	sealer  Sealer
	seals   []int32 // the files to seal, by Sealer index
	// sealed has bit f set when file f was sealed during WriteData
	// (sealEarly).
	sealed []uint64
}

// earlySealer is a Sealer that tells which files can be sealed while the
// data is still written: their digests are submitted, and sealing them
// only waits for their signatures.
type earlySealer interface {
	Sealer
	readyToSeal() <-chan int32
}

// appendSealer is a Sealer whose sealAppend is Seal appending to dst[:0]
// (dst reused: sealEarly seals a file at a time into one slice).
type appendSealer interface {
	sealAppend(dst manifest.Xattrs, file int) (manifest.Xattrs, error)
}

// beginSealer is an appendSealer whose files may need a signature made
// after their first (EVM, over security.ima): begin asks for it without
// waiting (nil: none; buf is scratch space, returned for reuse), and
// sealBegun is sealAppend with what begin gave.
type beginSealer interface {
	appendSealer
	begin(buf manifest.Xattrs, file int) (*sigResult, manifest.Xattrs, error)
	sealBegun(dst manifest.Xattrs, file int, evm *sigResult) (manifest.Xattrs, error)
}

// begunWindow is the most files sealEarly has begun (beginSealer) and not
// sealed; it bounds the signatures held for them. The pool's workers take
// a second signature (EVM) before the queue of later files' first ones
// (signPool.lateJobs), so the oldest begun file's is usually made by the
// time the window is full.
const begunWindow = 4096

func newSquashfsImage(out io.WriteSeeker, opts squashfs.Options) (*squashfsImage, error) {
	w, err := squashfs.NewWriter(out, opts)
	if err != nil {
		return nil, err
	}
	return &squashfsImage{w: w, workers: opts.Workers}, nil
}

func (s *squashfsImage) Add(e ImageEntry) error {
	se := squashfs.Entry{
		Path:    e.Path,
		Mode:    e.Mode,
		UID:     e.UID,
		GID:     e.GID,
		ModTime: e.ModTime,
		Size:    e.Size,
		Open:    e.Open,
		Opener:  e.Opener,
		File:    int32(e.File),
		Target:  e.Target,
		LinkTo:  e.LinkTo,
		Xattrs:  squashfsXattrs(nil, e.Xattrs),
	}
	if e.LinkTo != "" {
		se = squashfs.Entry{Path: e.Path, LinkTo: e.LinkTo}
	} else if e.Opener != nil && (e.File < 0 || e.File > math.MaxInt32) {
		return fmt.Errorf("%s: internal: file index %d outside 0..2^31-1", e.Path, e.File)
	}
	if e.Mode&fs.ModeDevice != 0 {
		se.Rdev = unix.Mkdev(e.Major, e.Minor)
	}
	if e.Seal != nil {
		if s.sealer != nil && s.sealer != e.Seal {
			return fmt.Errorf("%s: internal: a second Sealer", e.Path)
		}
		s.sealer = e.Seal
		s.seals = append(s.seals, int32(e.File))
		// Sealing sets its xattrs once: the writer builds the xattr
		// table as files are sealed, not all of it at Close.
		se.XattrsLater = true
	}
	return s.w.Add(se)
}

// WriteData writes the files' data. With an earlySealer, it seals the
// files it is told about meanwhile, so their signatures go to the writer's
// xattr store (and the sign pool drops them) instead of being held until
// Close.
func (s *squashfsImage) WriteData(ctx context.Context) error {
	es, ok := s.sealer.(earlySealer)
	if !ok || es.readyToSeal() == nil || len(s.seals) == 0 {
		return s.w.WriteData(ctx)
	}
	s.sealed = make([]uint64, (slices.Max(s.seals)+64)/64)
	done := make(chan struct{})
	early := make(chan error, 1)
	go func() { early <- s.sealEarly(es.readyToSeal(), done) }()
	err := s.w.WriteData(ctx)
	close(done)
	if eerr := <-early; err == nil {
		err = eerr
	}
	return err
}

// sealEarly seals the files ready names until done is closed and ready is
// empty. A file whose Seal fails is left to Close, which reports the
// failures in image order; an xattr the writer refuses fails WriteData.
// With a beginSealer, a file that needs a second signature is begun and
// sealed once the files begun before it are, up to begunWindow of them
// at a time.
func (s *squashfsImage) sealEarly(ready <-chan int32, done <-chan struct{}) error {
	var first error
	as, _ := s.sealer.(appendSealer)
	bs, _ := s.sealer.(beginSealer)
	var xs manifest.Xattrs   // one goroutine: reused, squashfsXattrs copies
	var buf []squashfs.Xattr // one goroutine: reused, SetXattrs copies
	type begun struct {
		f   int32
		evm *sigResult
	}
	var window []begun // a FIFO: the first not sealed is window[at]
	at := 0
	seal := func(f int32, evm *sigResult) {
		var err error
		switch {
		case evm != nil:
			xs, err = bs.sealBegun(xs, int(f), evm)
		case as != nil:
			xs, err = as.sealAppend(xs, int(f))
		default:
			xs, err = s.sealer.Seal(int(f))
		}
		if err != nil {
			return
		}
		buf = squashfsXattrs(buf, xs)
		if err := s.w.SetXattrs(s.sealer.Path(int(f)), buf); err != nil {
			if first == nil {
				first = err
			}
			return
		}
		s.sealed[f/64] |= 1 << (f % 64)
	}
	for {
		var f int32
		select {
		case f = <-ready:
		case <-done:
			select {
			case f = <-ready:
			default:
				for _, b := range window[at:] {
					seal(b.f, b.evm)
				}
				return first
			}
		}
		if bs == nil {
			seal(f, nil)
			continue
		}
		evm, b, err := bs.begin(xs, int(f))
		xs = b
		if err != nil {
			continue // left to Close
		}
		if evm == nil {
			seal(f, nil)
			continue
		}
		if len(window)-at == begunWindow {
			seal(window[at].f, window[at].evm)
			window[at] = begun{}
			at++
		}
		if at == len(window) || at >= begunWindow {
			window, at = append(window[:0], window[at:]...), 0
		}
		window = append(window, begun{f, evm})
	}
}
func (s *squashfsImage) Close() (ImageStats, error) {
	// Seals wait for signatures and may sign (EVM): run them side by
	// side, each handing its xattrs to the writer at once (not holding
	// them all), then report the first failure in image order.
	// Only the files sealEarly did not seal are handed out: most or all
	// of them were (50,000 small files: 50,000 hand-offs between
	// goroutines through ForEach's channel, 20-60 ms on one core at the
	// build's end, to find nothing to do).
	left := s.seals // s.seals is dropped below: compacted in place
	if s.sealed != nil {
		left = slices.DeleteFunc(s.seals, func(f int32) bool { return s.sealed[f/64]&(1<<(f%64)) != 0 })
	}
	var mu sync.Mutex
	first, firstErr := len(left), error(nil)
	_ = parallel.ForEach(context.Background(), len(left), s.workers, func(_ context.Context, i int) error {
		f := int(left[i])
		xs, err := s.sealer.Seal(f)
		if err == nil {
			err = s.w.SetXattrs(s.sealer.Path(f), squashfsXattrs(nil, xs))
		}
		if err != nil {
			mu.Lock()
			if i < first {
				first, firstErr = i, err
			}
			mu.Unlock()
		}
		return nil
	})
	if firstErr != nil {
		return ImageStats{}, firstErr
	}
	s.seals = nil
	st, err := s.w.Finish()
	if err != nil {
		return ImageStats{}, err
	}
	return ImageStats{Squashfs: &st}, nil
}

// squashfsXattrs converts xs, appending to buf[:0] (nil: a new slice, or
// none for no xattrs: most entries have none until sealed, and an empty
// slice a file was 48 bytes of garbage). The writer copies what it is
// given, so a caller may reuse buf.
func squashfsXattrs(buf []squashfs.Xattr, xs manifest.Xattrs) []squashfs.Xattr {
	if len(xs) == 0 {
		return buf[:0]
	}
	out := buf[:0]
	if cap(out) < len(xs) {
		out = make([]squashfs.Xattr, 0, len(xs))
	}
	for _, x := range xs {
		out = append(out, squashfs.Xattr{Name: x.Name, Value: x.Value})
	}
	return out
}

// imageCodec names the implementation that compresses the image (nil for
// an uncompressed one): the C library of the squashfs compressor
// (squashfs.EncoderOf), libzstd for tar.zst (squashfs.NewZstdStream), or
// for tar.gz the Go module klauspost/compress, which both builds of
// imaforge use.
func imageCodec(m *manifest.Manifest) (*squashfs.Encoder, error) {
	switch m.Image.Format {
	case manifest.FormatTar:
		return nil, nil
	case manifest.FormatTarZst:
		e, err := squashfs.EncoderOf(squashfs.Zstd)
		if err != nil {
			return nil, err
		}
		return &e, nil
	case manifest.FormatTarGz:
		const mod = "github.com/klauspost/compress"
		e := &squashfs.Encoder{Library: mod, Version: "unknown", Linkage: "go"}
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, d := range bi.Deps {
				if d.Path == mod {
					e.Version = d.Version
				}
			}
		}
		return e, nil
	}
	comp, err := compression(m.Image.Compression)
	if err != nil {
		return nil, err
	}
	e, err := squashfs.EncoderOf(comp)
	if err != nil || e == (squashfs.Encoder{}) {
		return nil, err
	}
	return &e, nil
}

// newImageWriter returns the writer of the manifest's image.format.
func newImageWriter(m *manifest.Manifest, out io.WriteSeeker, workers int, cache squashfs.BlockCache) (ImageWriter, error) {
	if m.Image.Format.IsTar() {
		opts := tarimage.Options{Workers: workers}
		switch m.Image.Format {
		case manifest.FormatTarGz:
			opts.Compression = tarimage.Gzip
		case manifest.FormatTarZst:
			opts.Compression = tarimage.Zstd
		}
		if m.Image.Level != nil {
			opts.Level = *m.Image.Level
		}
		w, err := tarimage.NewWriter(out, opts)
		if errors.Is(err, squashfs.ErrNoEncoder) {
			return nil, m.Errorf(m.Image.FieldPos("format"), err, "image.format %s", m.Image.Format)
		} else if err != nil {
			return nil, m.Errorf(m.Image.FieldPos("level"), err, "image.format %s", m.Image.Format)
		}
		return &tarImage{w: w}, nil
	}
	comp, err := compression(m.Image.Compression)
	if err != nil {
		return nil, m.Errorf(m.Image.Pos, err, "image.compression")
	}
	if _, err := squashfs.EncoderOf(comp); err != nil {
		return nil, m.Errorf(m.Image.FieldPos("compression"), err, "image.compression %s", comp)
	}
	return newSquashfsImage(out, squashfs.Options{
		Compression: comp,
		Level:       level(m),
		BlockSize:   int(m.Image.BlockSize),
		ModTime:     m.Image.Epoch,
		Workers:     workers,
		Cache:       cache,
	})
}

// tarImage is the tar output: package tarimage, which holds each file's
// content until its Seal returns, so the xattrs go before the data.
type tarImage struct {
	w *tarimage.Writer
}

func (t *tarImage) Add(e ImageEntry) error {
	te := tarimage.Entry{
		Path: e.Path, Mode: e.Mode, UID: e.UID, GID: e.GID, ModTime: e.ModTime,
		Size: e.Size, Open: e.Open, Target: e.Target, Major: e.Major, Minor: e.Minor, LinkTo: e.LinkTo,
		Xattrs: tarXattrs(e.Xattrs),
	}
	if op, f := e.Opener, e.File; op != nil && e.LinkTo == "" {
		if f < 0 || f > math.MaxInt32 {
			return fmt.Errorf("%s: internal: file index %d outside 0..2^31-1", e.Path, f)
		}
		te.Open = func() (io.ReadCloser, error) { return op.OpenFile(int32(f)) }
	}
	if seal, f := e.Seal, e.File; seal != nil {
		te.Seal = func() ([]tarimage.Xattr, error) {
			xs, err := seal.Seal(f)
			return tarXattrs(xs), err
		}
	}
	return t.w.Add(te)
}

func (t *tarImage) WriteData(ctx context.Context) error { return t.w.WriteData(ctx) }

func (t *tarImage) Close() (ImageStats, error) {
	st, err := t.w.Close()
	if err != nil {
		return ImageStats{}, err
	}
	return ImageStats{Tar: &st}, nil
}

func tarXattrs(xs manifest.Xattrs) []tarimage.Xattr {
	out := make([]tarimage.Xattr, len(xs))
	for i, x := range xs {
		out[i] = tarimage.Xattr{Name: x.Name, Value: x.Value}
	}
	return out
}

// checkTarEntries refuses, before anything is read or written, what a tar
// archive cannot carry, at the manifest line that made the entry.
func checkTarEntries(m *manifest.Manifest, lay *layout) error {
	var errs []error
	for _, ref := range lay.entries {
		e := lay.at(ref)
		var err error
		switch {
		case e.Type == rootfs.TypeSocket:
			err = fmt.Errorf("%w: socket", tarimage.ErrType)
		case tarimage.CheckName(e.Path) != nil:
			err = tarimage.CheckName(e.Path)
		case tarimage.CheckName(e.Target()) != nil:
			err = tarimage.CheckName(e.Target())
		default:
			err = tarimage.CheckOwner(e.UID, e.GID)
		}
		if err == nil {
			continue
		}
		pos := m.Image.FieldPos("format")
		if o := e.Origin(); o != nil && o.Pos.Line != 0 {
			pos = o.Pos
		}
		errs = append(errs, m.Errorf(pos, err, "%s in image.format %s", e.Path, m.Image.Format))
		if len(errs) == 10 {
			break
		}
	}
	return errors.Join(errs...)
}
