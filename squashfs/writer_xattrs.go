package squashfs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/imaforge/imaforge/internal/atomicfile"
)

// xattrStore keeps the Writer's xattr sets until Close writes the xattr
// table, encoded (encodeXattrs) one after the other: in memory up to
// xattrSpillAt bytes, then in an unlinked temporary file (Options.TempDir),
// so that a million signed files do not hold a million security.ima
// values, each in its own allocation beside its slice headers, until the
// end (issue 22: about 200 bytes a file). A set is found by its offset in
// the store; SetXattrs appends a new set and forgets the old one's bytes.
//
// Close reads the sets in about the order they were stored, through a
// window of the file (get); sets compared with an earlier one (a shared
// set, a shared value) are read at their offset (getAt). The xattr table
// built while the data is written (Writer.ahead) keeps its compressed
// blocks in another store, through add and copyTo.
type xattrStore struct {
	at []uint64 // by node.xs-1: the set's offset

	mem      []byte // the bytes from memStart on: all before the spill, then a write buffer
	memStart uint64
	size     uint64   // bytes stored
	f        *os.File // nil before the spill
	dir      string   // where the file goes (empty: os.TempDir())
	fallback string   // where it goes if dir is not writable (the image's directory)

	win      []byte // the file's bytes from winStart (get)
	winStart uint64
	scratch  []byte // getAt's buffer
}

// xattrSpillAt is how many bytes of xattr sets the Writer keeps in memory
// before it moves them to a temporary file (a variable for tests).
var xattrSpillAt = 4 << 20

// xattrStoreBuf is the size of the write buffer after the spill and of
// get's window.
const xattrStoreBuf = 256 << 10

// encodeXattrs appends the stored form of xs (sorted by name, then value)
// to b: its length as a uvarint, then per xattr the name's and the value's
// length as uvarints, each followed by its bytes. Equal sets encode to
// equal bytes.
func encodeXattrs(b []byte, xs []Xattr) []byte {
	if !slices.IsSortedFunc(xs, compareXattrs) {
		xs = sortXattrs(xs)
	}
	n := 0
	for _, x := range xs {
		n += uvarintLen(len(x.Name)) + len(x.Name) + uvarintLen(len(x.Value)) + len(x.Value)
	}
	b = slices.Grow(b, uvarintLen(n)+n)
	b = binary.AppendUvarint(b, uint64(n))
	for _, x := range xs {
		b = binary.AppendUvarint(b, uint64(len(x.Name)))
		b = append(b, x.Name...)
		b = binary.AppendUvarint(b, uint64(len(x.Value)))
		b = append(b, x.Value...)
	}
	return b
}

// uvarintLen is the length of n as a uvarint.
func uvarintLen(n int) int {
	k := 1
	for ; n >= 0x80; n >>= 7 {
		k++
	}
	return k
}

// storedXattr is one xattr of an encoded set: slices of the set's bytes,
// and where its value starts in the store.
type storedXattr struct {
	name, value []byte
	valueAt     uint64
}

// decodeXattrs appends the xattrs of the encoded set body, stored from
// offset at, to xs.
func decodeXattrs(xs []storedXattr, body []byte, at uint64) ([]storedXattr, error) {
	for i := 0; i < len(body); {
		var field [2][]byte
		var valueAt uint64
		for f := range field {
			n, k := binary.Uvarint(body[i:])
			if k <= 0 || n > uint64(len(body)-i-k) {
				return nil, errors.New("squashfs: internal: a stored xattr set is damaged")
			}
			i += k
			field[f] = body[i : i+int(n)]
			valueAt = at + uint64(i)
			i += int(n)
		}
		xs = append(xs, storedXattr{name: field[0], value: field[1], valueAt: valueAt})
	}
	return xs, nil
}

// keep stores enc (encodeXattrs) as the xattrs of a node whose index was at
// (0: none) and returns its new index.
func (s *xattrStore) keep(at uint32, enc []byte) (uint32, error) {
	if at == 0 && len(enc) <= 1 {
		return 0, nil // no xattrs
	}
	off, err := s.add(enc)
	if err != nil {
		return 0, err
	}
	if at != 0 {
		s.at[at-1] = off
		return at, nil
	}
	s.at = append(s.at, off)
	return uint32(len(s.at)), nil
}

// add appends b to the store and returns its offset.
func (s *xattrStore) add(b []byte) (uint64, error) {
	off := s.size
	if n := len(s.mem) + len(b); n > cap(s.mem) {
		// Twice the room (up to the spill's): append grows a large
		// slice by a quarter, which copied the 4 MiB kept before the
		// spill about five times over (50,000 files signed with
		// RSA-2048: about 0.07 s of CPU in a profile).
		m := make([]byte, len(s.mem), max(n, min(2*cap(s.mem), xattrSpillAt+xattrStoreBuf)))
		copy(m, s.mem)
		s.mem = m
	}
	s.mem = append(s.mem, b...)
	s.size = s.memStart + uint64(len(s.mem))
	return off, s.spill()
}

// copyTo hands every byte stored to emit, in order: the file's, read back
// a buffer at a time, then memory's.
func (s *xattrStore) copyTo(emit func([]byte) error) error {
	for off := uint64(0); off < s.memStart; off += uint64(len(s.win)) {
		if err := s.fill(off, xattrStoreBuf); err != nil {
			return err
		}
		if err := emit(s.win); err != nil {
			return err
		}
	}
	return emit(s.mem)
}

// spill writes the buffered bytes to the file once there are enough.
func (s *xattrStore) spill() error {
	if s.f == nil {
		if len(s.mem) < xattrSpillAt {
			return nil
		}
		f, err := s.create()
		if err != nil {
			return err
		}
		s.f = f
	} else if len(s.mem) < xattrStoreBuf {
		return nil
	}
	if _, err := s.f.WriteAt(s.mem, int64(s.memStart)); err != nil {
		return fmt.Errorf("squashfs: keeping xattrs in %s: %w", s.f.Name(), err)
	}
	s.memStart = s.size
	if cap(s.mem) > 2*xattrStoreBuf {
		s.mem = make([]byte, 0, 2*xattrStoreBuf)
	}
	s.mem = s.mem[:0]
	return nil
}

// create makes the unlinked temporary file: in dir ($TMPDIR when empty),
// or if that cannot be written in fallback.
func (s *xattrStore) create() (*os.File, error) {
	dir := s.dir
	if dir == "" {
		dir = os.TempDir()
	}
	f, err := atomicfile.CreateUnlinked(dir, "imaforge-xattrs-*")
	if err != nil && s.dir == "" && s.fallback != "" {
		if f2, err2 := atomicfile.CreateUnlinked(s.fallback, ".imaforge-xattrs-*"); err2 == nil {
			f, err = f2, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("squashfs: a temporary file for %d bytes of xattrs: %w", len(s.mem), err)
	}
	return f, nil
}

// setOf returns the body of node index xs's set (0: none) and its offset,
// through get.
func (s *xattrStore) setOf(xs uint32) ([]byte, uint64, error) {
	if xs == 0 {
		return nil, 0, nil
	}
	off := s.at[xs-1]
	b, err := s.get(off)
	return b, off, err
}

// get returns the body of the set stored at off, valid until the next get:
// from memory, or from the file through a window that moves forward.
func (s *xattrStore) get(off uint64) ([]byte, error) {
	if off >= s.memStart {
		return body(s.mem[off-s.memStart:], off)
	}
	if off < s.winStart || off >= s.winStart+uint64(len(s.win)) {
		if err := s.fill(off, xattrStoreBuf); err != nil {
			return nil, err
		}
	}
	b, err := body(s.win[off-s.winStart:], off)
	if err == errShortSet {
		// The set runs past the window: start the window at it.
		n, k := binary.Uvarint(s.win[off-s.winStart:])
		if k <= 0 {
			n, k = 0, binary.MaxVarintLen64
		}
		if err := s.fill(off, max(xattrStoreBuf, int(n)+k)); err != nil {
			return nil, err
		}
		b, err = body(s.win, off)
	}
	return b, err
}

// fill reads up to n bytes of the file from off into the window.
func (s *xattrStore) fill(off uint64, n int) error {
	n = int(min(uint64(n), s.memStart-off))
	if cap(s.win) < n {
		s.win = make([]byte, n)
	}
	s.win = s.win[:n]
	s.winStart = off
	if _, err := s.f.ReadAt(s.win, int64(off)); err != nil {
		s.win = s.win[:0]
		return fmt.Errorf("squashfs: reading xattrs back from %s at %d: %w", s.f.Name(), off, err)
	}
	return nil
}

// getAt returns the body of the set stored at off like get, without
// moving get's window: a set or value stored long before. The bytes are
// valid until the next getAt.
func (s *xattrStore) getAt(off uint64) ([]byte, error) {
	if off >= s.memStart || (off >= s.winStart && off < s.winStart+uint64(len(s.win))) {
		if off >= s.memStart {
			return body(s.mem[off-s.memStart:], off)
		}
		if b, err := body(s.win[off-s.winStart:], off); err == nil {
			return b, nil
		}
	}
	return s.readAt(off, -1)
}

// valueAt returns the n bytes stored at off (an xattr value), like getAt.
func (s *xattrStore) valueAt(off uint64, n int) ([]byte, error) {
	switch {
	case off >= s.memStart:
		return s.mem[off-s.memStart:][:n], nil
	case off >= s.winStart && off+uint64(n) <= s.winStart+uint64(len(s.win)):
		return s.win[off-s.winStart:][:n], nil
	}
	return s.readAt(off, n)
}

// readAt reads n bytes at off from the file, or with n < 0 the set there.
func (s *xattrStore) readAt(off uint64, n int) ([]byte, error) {
	want := n
	if n < 0 {
		want = 512
	}
	want = int(min(uint64(want), s.memStart-off))
	for {
		if cap(s.scratch) < want {
			s.scratch = make([]byte, want)
		}
		b := s.scratch[:want]
		if _, err := s.f.ReadAt(b, int64(off)); err != nil && !(err == io.EOF && n < 0) {
			return nil, fmt.Errorf("squashfs: reading xattrs back from %s at %d: %w", s.f.Name(), off, err)
		}
		if n >= 0 {
			return b, nil
		}
		set, err := body(b, off)
		if err != errShortSet {
			return set, err
		}
		l, k := binary.Uvarint(b)
		if k <= 0 || uint64(want) >= s.memStart-off {
			return nil, fmt.Errorf("squashfs: internal: the xattr set stored at %d is damaged", off)
		}
		want = int(min(l+uint64(k), s.memStart-off))
	}
}

// errShortSet: the bytes given to body end before the set does.
var errShortSet = errors.New("squashfs: internal: short xattr set")

// body returns the set that b starts with (stored at off).
func body(b []byte, off uint64) ([]byte, error) {
	n, k := binary.Uvarint(b)
	switch {
	case k == 0 || (k > 0 && n > uint64(len(b)-k)):
		return nil, errShortSet
	case k < 0:
		return nil, fmt.Errorf("squashfs: internal: the xattr set stored at %d is damaged", off)
	}
	return b[k : k+int(n)], nil
}

// close removes the file.
func (s *xattrStore) close() {
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
	s.mem, s.win, s.scratch, s.at = nil, nil, nil, nil
}

// outputDir returns the directory of the file out writes to, if it is one.
func outputDir(out io.WriteSeeker) string {
	if f, ok := out.(interface{ Name() string }); ok && f.Name() != "" {
		return filepath.Dir(f.Name())
	}
	return ""
}
