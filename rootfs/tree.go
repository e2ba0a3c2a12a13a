// Package rootfs builds the tree of an image as a manifest declares it: the
// sources walked (directories, single files, tarballs), declared entries and
// path overrides merged into one sorted list of entries with their metadata
// and where each regular file's bytes come from.
//
// The tree depends only on the sources' content and declared metadata: names
// are read in sorted order, no host time enters it (every entry's mtime is
// the manifest's epoch, applied by the image writer), and when image.owner is
// set neither does host ownership. Precedence, lowest first: sources in
// manifest order (a later source wins for the same path), image.owner,
// declared entries, overrides. See docs/manifest.md.
package rootfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sort"

	"github.com/imaforge/imaforge/internal/fsmode"
	"github.com/imaforge/imaforge/manifest"
)

// Type is the type of an entry.
type Type uint8

// Entry types (the SquashFS basic inode types).
const (
	TypeDir Type = iota + 1
	TypeReg
	TypeSymlink
	TypeBlock
	TypeChar
	TypeFifo
	TypeSocket
)

var typeNames = [...]string{"", "directory", "regular file", "symlink", "block device", "char device", "fifo", "socket"}

func (t Type) String() string {
	if int(t) < len(typeNames) && t != 0 {
		return typeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// fsType maps a Type to the fs.FileMode type bits.
func (t Type) fsType() fs.FileMode {
	switch t {
	case TypeDir:
		return fs.ModeDir
	case TypeSymlink:
		return fs.ModeSymlink
	case TypeBlock:
		return fs.ModeDevice
	case TypeChar:
		return fs.ModeDevice | fs.ModeCharDevice
	case TypeFifo:
		return fs.ModeNamedPipe
	case TypeSocket:
		return fs.ModeSocket
	}
	return 0
}

// Content is where a regular file's bytes come from. Open returns a reader
// of exactly the entry's Size bytes; a reader of a host file fails (with an
// error wrapping ErrModified) when the file changed since the walk: when it
// yields more or fewer bytes than Size, and at Close, which checks the
// file's identity, size and modification time once its bytes are read. A
// reader's bytes are good only once its Close succeeded.
type Content interface {
	Open() (io.ReadCloser, error)
}

// Entry is one path of the image: 64 bytes on 64-bit (TestEntrySize), plus
// the path and, for host files until read, a 64-byte HostFile. What only
// some entries have (a symlink's target, a device's numbers, a hard-link
// group, xattrs) and where an entry came from are in one extension record
// that entries share: every plain file of a source points at the same one.
// Read them through the methods (Target, Major, Minor, Link, Xattrs,
// Origin) and change them through the setters (SetTarget, SetDev,
// SetLink, SetXattrs, SetOrigin), which copy a shared record before
// changing it.
type Entry struct {
	// Path is the absolute, clean path in the image ("/" for the root).
	Path string
	// Size is a regular file's size, or a symlink target's length.
	Size int64
	// Content gives a regular file's bytes; nil for other types.
	Content Content
	// Mode is the permission bits with setuid, setgid and sticky (07777).
	Mode uint32
	UID  uint32
	GID  uint32
	Type Type
	x    *entryExt // shared, never changed in place; nil: none of it
}

// entryExt is what only some entries have, and the entry's origin. One
// record is shared by many entries (Entry.edit copies it before a change).
type entryExt struct {
	origin       *Origin
	xattrs       manifest.Xattrs
	target       string
	major, minor uint32
	link         uint32
}

// edit returns the entry's own copy of its extension record, to change.
func (e *Entry) edit() *entryExt {
	x := new(entryExt)
	if e.x != nil {
		*x = *e.x
	}
	e.x = x
	return x
}

// Target is a symlink's target, as stored.
func (e *Entry) Target() string {
	if e.x == nil {
		return ""
	}
	return e.x.target
}

// SetTarget sets a symlink's target.
func (e *Entry) SetTarget(t string) {
	if e.Target() != t {
		e.edit().target = t
	}
}

// Major and Minor are a device's numbers.
func (e *Entry) Major() uint32 {
	if e.x == nil {
		return 0
	}
	return e.x.major
}

// Minor: see Major.
func (e *Entry) Minor() uint32 {
	if e.x == nil {
		return 0
	}
	return e.x.minor
}

// SetDev sets a device's numbers.
func (e *Entry) SetDev(major, minor uint32) {
	if e.Major() != major || e.Minor() != minor {
		x := e.edit()
		x.major, x.minor = major, minor
	}
}

// Link is the hard-link group: entries with the same non-zero Link are one
// inode. Groups are numbered from 1 in tree order.
func (e *Entry) Link() uint32 {
	if e.x == nil {
		return 0
	}
	return e.x.link
}

// SetLink sets the hard-link group (0: none).
func (e *Entry) SetLink(l uint32) {
	if e.Link() != l {
		e.edit().link = l
	}
}

// Xattrs are the extended attributes other than security.ima, sorted. The
// slice may be shared with other entries: do not change it in place.
func (e *Entry) Xattrs() manifest.Xattrs {
	if e.x == nil {
		return nil
	}
	return e.x.xattrs
}

// SetXattrs sets the extended attributes (sorted, without security.ima);
// the entry keeps xs, which must not be changed afterwards.
func (e *Entry) SetXattrs(xs manifest.Xattrs) {
	if len(xs) == 0 && len(e.Xattrs()) == 0 {
		return
	}
	e.edit().xattrs = xs
}

// Origin says which part of the manifest produced the entry (nil: not
// known, as for entries made by hand).
func (e *Entry) Origin() *Origin {
	if e.x == nil {
		return nil
	}
	return e.x.origin
}

// SetOrigin sets the part of the manifest that produced the entry.
func (e *Entry) SetOrigin(o *Origin) {
	if e.Origin() != o {
		e.edit().origin = o
	}
}

// FileMode returns the entry's type and permission bits as an fs.FileMode.
func (e *Entry) FileMode() fs.FileMode {
	return e.Type.fsType() | fsmode.FromPerm(uint32(e.Mode))
}

// Rdev returns the device number in the Linux encoding used by SquashFS
// device inodes (new_encode_dev: minor low 8 bits, major, minor high bits).
func (e *Entry) Rdev() uint32 {
	major, minor := e.Major(), e.Minor()
	return (minor & 0xff) | (major << 8) | ((minor &^ 0xff) << 12)
}

// OriginKind says what produced an entry.
type OriginKind uint8

// The kinds of origins.
const (
	FromSource  OriginKind = iota + 1 // a manifest source
	FromEntry                         // a declared entry
	FromImplied                       // a directory implied by a path in the manifest
)

// Origin is a part of the manifest that produced entries.
type Origin struct {
	Kind OriginKind
	// Index is the index in manifest.Sources or manifest.Entries.
	Index int
	// Pos is the position of the source or entry in the manifest.
	Pos manifest.Pos
	// From is the source's host path (for FromSource).
	From string
}

func (o *Origin) String() string {
	switch o.Kind {
	case FromSource:
		return fmt.Sprintf("sources[%d] %s (line %d)", o.Index, o.From, o.Pos.Line)
	case FromEntry:
		return fmt.Sprintf("entries[%d] (line %d)", o.Index, o.Pos.Line)
	}
	return fmt.Sprintf("a directory implied by line %d", o.Pos.Line)
}

// Overlap notes a path provided by two parts of the manifest: the later one
// won. Directories that merge with the same metadata are not noted.
type Overlap struct {
	Path     string
	Old, New *Origin
	// Metadata is true when both were directories that differ only in
	// metadata (the later metadata was kept).
	Metadata bool
}

func (o Overlap) String() string {
	if o.Metadata {
		return fmt.Sprintf("%s: directory metadata from %s replaces %s", o.Path, o.New, o.Old)
	}
	return fmt.Sprintf("%s: %s replaces %s", o.Path, o.New, o.Old)
}

// Tree is the image's content: every entry sorted by ComparePaths, the root
// "/" first.
type Tree struct {
	Entries []Entry
	// Overlaps lists paths provided more than once, sorted by path.
	Overlaps []Overlap
	// Warnings are problems that do not stop a build (overrides that match
	// nothing, outside strict mode), each a *manifest.Error.
	Warnings []error
	// Spooled counts the bytes of tarball member data written to spool
	// files (holes not counted).
	Spooled int64
	// Skipped lists the host paths of the build's own outputs that a
	// source directory held and the walk left out (Options.Output).
	Skipped []string

	closers []io.Closer
}

// Lookup finds the entry at an absolute image path.
func (t *Tree) Lookup(path string) (*Entry, bool) {
	i := sort.Search(len(t.Entries), func(i int) bool { return ComparePaths(t.Entries[i].Path, path) >= 0 })
	if i < len(t.Entries) && t.Entries[i].Path == path {
		return &t.Entries[i], true
	}
	return nil, false
}

// Close releases what the tree holds open (spooled tarballs).
func (t *Tree) Close() error {
	var errs []error
	for _, c := range t.closers {
		errs = append(errs, c.Close())
	}
	t.closers = nil
	return errors.Join(errs...)
}

// ComparePaths orders image paths depth first, the entries of a directory
// sorted by name bytes, each directory followed by everything below it:
// bytes compare as bytes except that "/" sorts before any other byte. It
// returns -1, 0 or +1.
func ComparePaths(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		ca, cb := a[i], b[i]
		if ca == cb {
			continue
		}
		switch {
		case ca == '/':
			return -1
		case cb == '/':
			return 1
		case ca < cb:
			return -1
		}
		return 1
	}
	switch {
	case len(a) < len(b):
		return -1
	case len(a) > len(b):
		return 1
	}
	return 0
}

// Errors of the walk; each error returned wraps one of them.
var (
	ErrTypeConflict      = errors.New("type conflict")
	ErrSymlinkLoop       = errors.New("symlink loop")
	ErrCycle             = errors.New("directory cycle")
	ErrBadName           = errors.New("bad name")
	ErrModified          = errors.New("file changed during the build")
	ErrOverrideConflict  = errors.New("conflicting overrides")
	ErrUnmatchedOverride = errors.New("override matches nothing")
	ErrUnsafeMember      = errors.New("unsafe tar member")
	ErrUnsupportedType   = errors.New("unsupported file type")
)
