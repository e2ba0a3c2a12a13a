package blockcache

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync/atomic"

	"github.com/imaforge/imaforge/internal/packfile"
	"github.com/imaforge/imaforge/squashfs"
)

// The pack format (version 3 of the block cache; see the package comment
// for the layout of the directory):
//
//	offset  size
//	0       8    magic "IMFBPK1\n"
//	8       8    index offset X: where the values end, little-endian
//	16      4    count N of records
//	20      4    CRC-32C of bytes 0-19 and of the index
//	24      8    zero
//	32      ...  the stored bytes of the entries, one after another
//	X       N*52 the index: one record per entry, keys in strictly
//	             ascending byte order; the file ends with it
//
// A record:
//
//	0   32  the key (squashfs.BlockKey)
//	32  8   offset of the stored bytes
//	40  4   their length, 1..squashfs.MaxBlockSize
//	44  4   CRC-32C of the stored bytes
//	48  1   1: the bytes are compressed; 0: the block stored as is
//	49  3   zero
const (
	packMagic  = "IMFBPK1\n"
	packHeader = 32
	recordSize = 52
	// PackExt is the name ending of pack files; another version of the
	// format takes another ending, so it is never even opened as this one.
	PackExt = ".bpk"
	// maxStored bounds a record's length: a block is at most 1 MiB, and
	// its stored form is never larger than the block.
	maxStored = squashfs.MaxBlockSize
)

// ErrBadPack is wrapped by every error about a pack's content.
var ErrBadPack = errors.New("not a valid block cache pack")

var castagnoli = packfile.Castagnoli

// record is one entry of a pack's index.
type record struct {
	Key        squashfs.BlockKey
	Off        uint64
	Len        uint32
	CRC        uint32
	Compressed bool
}

func (r *record) appendTo(b []byte) []byte {
	b = append(b, r.Key[:]...)
	b = binary.LittleEndian.AppendUint64(b, r.Off)
	b = binary.LittleEndian.AppendUint32(b, r.Len)
	b = binary.LittleEndian.AppendUint32(b, r.CRC)
	var flag byte
	if r.Compressed {
		flag = 1
	}
	return append(b, flag, 0, 0, 0)
}

// decodeRecord parses b[:recordSize].
func decodeRecord(b []byte) (record, bool) {
	var r record
	copy(r.Key[:], b[:32])
	r.Off = binary.LittleEndian.Uint64(b[32:])
	r.Len = binary.LittleEndian.Uint32(b[40:])
	r.CRC = binary.LittleEndian.Uint32(b[44:])
	r.Compressed = b[48] == 1
	return r, b[48] <= 1 && b[49] == 0 && b[50] == 0 && b[51] == 0
}

var indexCRC = packfile.IndexCRC

// pack is an opened pack: its index in memory, its values read on demand.
type pack struct {
	path  string
	r     io.ReaderAt
	size  int64
	end   int64  // the index offset: where the values end
	index []byte // the records
	n     int
	used  []atomic.Bool // by record: a hit of this build
}

// parsePack reads the header and the index of the pack of size bytes in r
// and checks them: every record's bytes lie between the header and the
// index, the keys ascend, the CRC matches. path names the pack in errors.
func parsePack(path string, r io.ReaderAt, size int64) (*pack, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %w: %s", path, ErrBadPack, fmt.Sprintf(format, args...))
	}
	if size < packHeader {
		return nil, bad("%d bytes, shorter than the header", size)
	}
	var h [packHeader]byte
	if _, err := r.ReadAt(h[:], 0); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if string(h[:8]) != packMagic {
		return nil, bad("no magic")
	}
	end := binary.LittleEndian.Uint64(h[8:])
	n := uint64(binary.LittleEndian.Uint32(h[16:]))
	for _, c := range h[24:] {
		if c != 0 {
			return nil, bad("reserved bytes")
		}
	}
	if end < packHeader || end > uint64(size) || uint64(size)-end != n*recordSize {
		return nil, bad("index of %d records at offset %d in %d bytes", n, end, size)
	}
	index := make([]byte, n*recordSize)
	if _, err := r.ReadAt(index, int64(end)); err != nil && n > 0 {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if indexCRC(h[:20], index) != binary.LittleEndian.Uint32(h[20:]) {
		return nil, bad("index checksum mismatch")
	}
	p := &pack{path: path, r: r, size: size, end: int64(end), index: index, n: int(n), used: make([]atomic.Bool, n)}
	for i := range p.n {
		rec, ok := p.record(i)
		if !ok || rec.Len == 0 || rec.Len > maxStored || rec.Off < packHeader || rec.Off > end || end-rec.Off < uint64(rec.Len) {
			return nil, bad("record %d: %d bytes at offset %d", i, rec.Len, rec.Off)
		}
		if i > 0 && bytes.Compare(p.key(i-1), p.key(i)) >= 0 {
			return nil, bad("record %d: keys out of order", i)
		}
	}
	return p, nil
}

// openPack opens and parses the pack at path; the file stays open until
// close.
func openPack(path string) (*pack, error) {
	return packfile.Open(path, ErrBadPack, func(path string, f *os.File, size int64) (*pack, error) {
		return parsePack(path, f, size)
	})
}

func (p *pack) close() {
	if c, ok := p.r.(io.Closer); ok {
		c.Close()
	}
}

func (p *pack) key(i int) []byte { return p.index[i*recordSize : i*recordSize+32] }

func (p *pack) record(i int) (record, bool) { return decodeRecord(p.index[i*recordSize:]) }

// find returns the record of k, or -1.
func (p *pack) find(k squashfs.BlockKey) int {
	i := sort.Search(p.n, func(i int) bool { return bytes.Compare(p.key(i), k[:]) >= 0 })
	if i < p.n && bytes.Equal(p.key(i), k[:]) {
		return i
	}
	return -1
}

// read returns record i's stored bytes, in dst's storage when they fit, once
// their CRC matches; an error names the pack and the offset.
func (p *pack) read(i int, dst []byte) ([]byte, record, error) {
	rec, _ := p.record(i)
	if cap(dst) < int(rec.Len) {
		dst = make([]byte, rec.Len)
	}
	dst = dst[:rec.Len]
	if _, err := p.r.ReadAt(dst, int64(rec.Off)); err != nil {
		if err == io.EOF {
			err = fmt.Errorf("%w: cut short", ErrBadPack)
		}
		return nil, rec, fmt.Errorf("%s: entry at offset %d: %w", p.path, rec.Off, err)
	}
	if crc32.Checksum(dst, castagnoli) != rec.CRC {
		return nil, rec, fmt.Errorf("%s: entry at offset %d: %w: checksum mismatch", p.path, rec.Off, ErrBadPack)
	}
	return dst, rec, nil
}

// packWriter writes a new pack: the stored bytes as they come, then at
// finish the index and the header, into a temporary file renamed into
// place, so no reader ever sees a pack that is not whole.
type packWriter struct {
	dir  string
	f    *os.File
	off  uint64
	recs []record
	has  map[squashfs.BlockKey]bool
}

func createPack(dir string) (*packWriter, error) {
	f, err := createTemp(dir)
	if err != nil {
		return nil, err
	}
	w := &packWriter{dir: dir, f: f, off: packHeader, has: map[squashfs.BlockKey]bool{}}
	if _, err := f.Write(make([]byte, packHeader)); err != nil {
		w.abort()
		return nil, err
	}
	return w, nil
}

// createTemp creates a new temporary pack file in dir with mode 0644 less
// the umask, the mode of the signature packs beside it: os.CreateTemp's
// 0600 made a cache shared by several users unreadable to all but the
// pack's writer (a warning and every block compressed again). Like
// os.CreateTemp it gives up after 10,000 names that exist.
func createTemp(dir string) (*os.File, error) {
	for range 10000 {
		name := filepath.Join(dir, fmt.Sprintf("%s%08x%s", tmpPrefix, rand.Uint32(), PackExt))
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		if !errors.Is(err, fs.ErrExist) {
			return f, err
		}
	}
	return nil, &fs.PathError{Op: "createtemp", Path: filepath.Join(dir, tmpPrefix+"*"+PackExt), Err: fs.ErrExist}
}

// add appends an entry; a key already added is skipped.
func (w *packWriter) add(k squashfs.BlockKey, stored []byte, compressed bool) error {
	if w.has[k] {
		return nil
	}
	if _, err := w.f.Write(stored); err != nil {
		return err
	}
	w.recs = append(w.recs, record{Key: k, Off: w.off, Len: uint32(len(stored)), CRC: crc32.Checksum(stored, castagnoli), Compressed: compressed})
	w.has[k] = true
	w.off += uint64(len(stored))
	return nil
}

// size is the size the pack will have.
func (w *packWriter) size() int64 { return int64(w.off) + int64(len(w.recs))*recordSize }

// finish writes the index and the header and renames the pack into place;
// it returns the pack's path. The pack is not synced: an entry lost in a
// crash fails its CRC (or the pack its index CRC) and is compressed again.
func (w *packWriter) finish() (string, error) {
	slices.SortFunc(w.recs, func(a, b record) int { return bytes.Compare(a.Key[:], b.Key[:]) })
	index := make([]byte, 0, len(w.recs)*recordSize)
	for i := range w.recs {
		index = w.recs[i].appendTo(index)
	}
	h := make([]byte, packHeader)
	copy(h, packMagic)
	binary.LittleEndian.PutUint64(h[8:], w.off)
	binary.LittleEndian.PutUint32(h[16:], uint32(len(w.recs)))
	binary.LittleEndian.PutUint32(h[20:], indexCRC(h[:20], index))
	_, err := w.f.Write(index)
	if err == nil {
		_, err = w.f.WriteAt(h, 0)
	}
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	path := packfile.NewName(w.dir, PackExt)
	if err == nil {
		err = os.Rename(w.f.Name(), path)
	}
	if err != nil {
		os.Remove(w.f.Name())
		return "", err
	}
	return path, nil
}

func (w *packWriter) abort() {
	w.f.Close()
	os.Remove(w.f.Name())
}
