// Package sigpack is the on-disk form of the signature cache
// (pipeline.SignatureCache): the security.ima values made for one
// certificate and hash algorithm, kept in a few pack files instead of one
// file per signature, so a rebuild of 15,000 files reads a few files, not
// 15,000.
//
// A pack is written whole to a temporary file and renamed into place
// (Write), and never changed after: readers need no lock, and a pack that
// another build removes (Merge) stays readable through an open descriptor.
// A pack file is:
//
//	offset  size
//	0       8    magic "IMFSIGP1"
//	8       4    count N of entries, little-endian
//	12      2    digest size D (1..64)
//	14      2    zero
//	16      4    CRC-32C of bytes 0-15 and of the index
//	20      12   zero
//	32      N*(D+6) the index: per entry the digest, the value's offset
//	             (4 bytes) and length (2 bytes, 1..MaxValue), digests in
//	             strictly ascending byte order
//	...          the values, each inside the file after the index
//
// The CRC only tells a damaged pack apart early: every value is verified
// against its certificate and digest before it is used (the caller's job),
// so a pack that parses but holds wrong values costs signatures, never a
// wrong image.
package sigpack

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"github.com/imaforge/imaforge/internal/atomicfile"
	"github.com/imaforge/imaforge/internal/packfile"
)

const (
	magic      = "IMFSIGP1"
	headerSize = 32
	// MaxValue bounds a value: an RSA-8192 signature and its header fit.
	MaxValue = 4096
	// MaxDigest bounds the digest size (SHA-512 is 64 bytes).
	MaxDigest = 64
	// Ext is the name ending of pack files.
	Ext = ".pack"
)

// ErrBadPack is wrapped by every error about a pack's content.
var ErrBadPack = errors.New("not a valid signature pack")

// Entry is one signature: the digest signed and the security.ima value.
type Entry struct {
	Digest, Value []byte
}

// Encode returns the pack of entries, whose digests are all d bytes long.
// It sorts entries by digest; of entries with the same digest the first
// one is kept.
func Encode(d int, entries []Entry) ([]byte, error) {
	if d < 1 || d > MaxDigest {
		return nil, fmt.Errorf("%w: digest size %d", ErrBadPack, d)
	}
	es := slices.Clone(entries)
	slices.SortStableFunc(es, func(a, b Entry) int { return bytes.Compare(a.Digest, b.Digest) })
	es = slices.CompactFunc(es, func(a, b Entry) bool { return bytes.Equal(a.Digest, b.Digest) })
	indexEnd := headerSize + len(es)*(d+6)
	size := indexEnd
	for _, e := range es {
		if len(e.Digest) != d || len(e.Value) == 0 || len(e.Value) > MaxValue {
			return nil, fmt.Errorf("%w: a digest of %d bytes (want %d) with a value of %d", ErrBadPack, len(e.Digest), d, len(e.Value))
		}
		size += len(e.Value)
	}
	if uint64(size) > 1<<32-1 {
		return nil, fmt.Errorf("%w: %d bytes of signatures in one pack", ErrBadPack, size)
	}
	b := make([]byte, headerSize, size)
	copy(b, magic)
	binary.LittleEndian.PutUint32(b[8:], uint32(len(es)))
	binary.LittleEndian.PutUint16(b[12:], uint16(d))
	off := indexEnd
	for _, e := range es {
		b = append(b, e.Digest...)
		b = binary.LittleEndian.AppendUint32(b, uint32(off))
		b = binary.LittleEndian.AppendUint16(b, uint16(len(e.Value)))
		off += len(e.Value)
	}
	binary.LittleEndian.PutUint32(b[16:], indexCRC(b[:16], b[headerSize:]))
	for _, e := range es {
		b = append(b, e.Value...)
	}
	return b, nil
}

var indexCRC = packfile.IndexCRC

// Pack is an opened pack: its index in memory, its values too when they
// take at most wholeValues bytes (read at once), else read on demand.
type Pack struct {
	path   string
	r      io.ReaderAt
	d      int
	n      int
	index  []byte
	values []byte // nil: read each value from r
	start  int64  // the offset of values[0]
}

// wholeValues is the largest values part Parse reads at once: a pack of
// 15,000 RSA-2048 signatures has 4 MB of them, read with one pread instead
// of 15,000; a larger pack (a million files) is read value by value, so its
// memory stays the index's.
var wholeValues int64 = 16 << 20 // a variable for tests

// Open reads the header and the index of the pack at path and checks them.
// The file stays open until Close.
func Open(path string) (*Pack, error) {
	return packfile.Open(path, ErrBadPack, func(path string, f *os.File, size int64) (*Pack, error) {
		return Parse(path, f, size)
	})
}

// Parse reads the header and index of a pack of size bytes from r; path
// names it in errors.
func Parse(path string, r io.ReaderAt, size int64) (*Pack, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%s: %w: %s", path, ErrBadPack, fmt.Sprintf(format, args...))
	}
	var h [headerSize]byte
	if size < headerSize {
		return nil, bad("%d bytes, shorter than the header", size)
	}
	if _, err := r.ReadAt(h[:], 0); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if string(h[:8]) != magic {
		return nil, bad("no magic")
	}
	n := int64(binary.LittleEndian.Uint32(h[8:]))
	d := int(binary.LittleEndian.Uint16(h[12:]))
	if d < 1 || d > MaxDigest || !allZero(h[14:16]) || !allZero(h[20:]) {
		return nil, bad("digest size %d or reserved bytes", d)
	}
	indexEnd := headerSize + n*int64(d+6)
	if indexEnd > size {
		return nil, bad("%d entries do not fit in %d bytes", n, size)
	}
	index := make([]byte, indexEnd-headerSize)
	if _, err := r.ReadAt(index, headerSize); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if indexCRC(h[:16], index) != binary.LittleEndian.Uint32(h[16:]) {
		return nil, bad("index checksum mismatch")
	}
	p := &Pack{path: path, r: r, d: d, n: int(n), index: index}
	for i := range p.n {
		off, l := p.loc(i)
		if l == 0 || l > MaxValue || off < indexEnd || off+int64(l) > size {
			return nil, bad("entry %d: %d bytes at offset %d", i, l, off)
		}
		if i > 0 && bytes.Compare(p.digest(i-1), p.digest(i)) >= 0 {
			return nil, bad("entry %d: digests out of order", i)
		}
	}
	if size-indexEnd <= wholeValues {
		// One read; a pack cut short since size was taken fails here.
		values := make([]byte, size-indexEnd)
		if _, err := r.ReadAt(values, indexEnd); err != nil && len(values) > 0 {
			return nil, fmt.Errorf("%s: values: %w", path, err)
		}
		p.values, p.start = values, indexEnd
	}
	return p, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func (p *Pack) digest(i int) []byte {
	o := i * (p.d + 6)
	return p.index[o : o+p.d]
}

func (p *Pack) loc(i int) (off int64, l int) {
	o := i*(p.d+6) + p.d
	return int64(binary.LittleEndian.Uint32(p.index[o:])), int(binary.LittleEndian.Uint16(p.index[o+4:]))
}

// Path is the pack's file.
func (p *Pack) Path() string { return p.path }

// Len is the number of entries.
func (p *Pack) Len() int { return p.n }

// Get returns the value of digest (ok false when the pack has none). An
// error (a read failing, the file cut short since Open) names the pack.
func (p *Pack) Get(digest []byte) (value []byte, ok bool, err error) {
	if len(digest) != p.d {
		return nil, false, nil
	}
	i := sort.Search(p.n, func(i int) bool { return bytes.Compare(p.digest(i), digest) >= 0 })
	if i == p.n || !bytes.Equal(p.digest(i), digest) {
		return nil, false, nil
	}
	v, err := p.value(i)
	return v, err == nil, err
}

func (p *Pack) value(i int) ([]byte, error) {
	off, l := p.loc(i)
	if p.values != nil {
		at := off - p.start
		return p.values[at : at+int64(l) : at+int64(l)], nil
	}
	v := make([]byte, l)
	if _, err := p.r.ReadAt(v, off); err != nil {
		return nil, fmt.Errorf("%s: entry %d: %w", p.path, i, err)
	}
	return v, nil
}

// Entries returns every entry, in digest order.
func (p *Pack) Entries() ([]Entry, error) {
	es := make([]Entry, 0, p.n)
	for i := range p.n {
		v, err := p.value(i)
		if err != nil {
			return nil, err
		}
		es = append(es, Entry{Digest: slices.Clone(p.digest(i)), Value: v})
	}
	return es, nil
}

// Close closes the pack's file (when Open opened it).
func (p *Pack) Close() error {
	if c, ok := p.r.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// List returns the pack files in dir, newest first (their names begin
// with the time they were written). A missing dir has none.
func List(dir string) ([]string, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var names []string
	for _, de := range des {
		if n := de.Name(); packfile.IsName(n, Ext) {
			names = append(names, filepath.Join(dir, n))
		}
	}
	slices.Sort(names)
	slices.Reverse(names)
	return names, nil
}

// Write writes the pack of entries into dir (creating it) under a new name
// that sorts after the packs written before it, atomically
// (internal/atomicfile: a temporary file renamed into place on success).
func Write(dir string, d int, entries []Entry) (string, error) {
	b, err := Encode(d, entries)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	path := packfile.NewName(dir, Ext)
	if err := atomicfile.WriteFile(path, b, 0o644); err != nil {
		return "", err
	}
	return path, nil
}
