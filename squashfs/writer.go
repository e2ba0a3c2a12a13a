package squashfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"path"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/imaforge/imaforge/internal/fsmode"
)

// Options configure a Writer. The zero value is usable except for BlockSize 0,
// which means 128 KiB.
type Options struct {
	// Compression of data, fragment and metadata blocks: 0 means gzip, as
	// for mksquashfs; CompNone stores everything uncompressed.
	Compression Compression
	// Level is the compressor's level; 0 means its default (gzip 9,
	// zstd 15, lz4 fast; xz and none take no level). Compressors lists the
	// ranges; lz4 1..12 is high compression.
	Level int
	// BlockSize is the data block size, a power of two from 4 KiB to 1 MiB
	// (0 means 128 KiB).
	BlockSize int
	// ModTime is the image's creation time (superblock mkfs_time) and the
	// time of directories implied by Add.
	ModTime int64
	// Workers is the number of goroutines reading and compressing data
	// (0 means GOMAXPROCS). It never changes the image.
	Workers int
	// Compressors is the number of goroutines compressing blocks (0 means
	// Workers). A compressor spends its time in a C library call, which
	// holds an OS thread but not one of GOMAXPROCS, so more compressors
	// than CPUs are more threads competing for the CPUs, as mksquashfs runs
	// a block and a fragment compressor thread per CPU; on a machine
	// shared with other work that is a larger share of it. It never
	// changes the image.
	Compressors int
	// FragmentCompressors, when above 0, is the number of goroutines
	// compressing fragment blocks in a pool of their own, beside the
	// Compressors that then compress only full data blocks: mksquashfs
	// runs a deflator and a fragment deflator thread per CPU. 0: fragment
	// blocks go to the Compressors. It never changes the image.
	FragmentCompressors int
	// FragmentsAhead, when above 0, is how many filled fragment blocks may
	// wait for their compression and writing before filling the next one
	// waits for the oldest (default: one more than all compressors). It
	// never changes the image.
	FragmentsAhead int
	// NoFragments stores tails of small files in their own blocks instead of
	// packing them into fragment blocks (mksquashfs -no-fragments).
	NoFragments bool
	// TailEnds packs the tail ends of files larger than a block into
	// fragments too (mksquashfs -tailends); by default only files smaller
	// than a block go into fragments, as mksquashfs does.
	TailEnds bool
	// NoExport omits the export (NFS lookup) table (mksquashfs -no-exports).
	NoExport bool
	// Cache, when not nil, supplies and keeps the compressed form of data
	// and fragment blocks (see BlockCache). It never changes the image.
	Cache BlockCache
	// TempDir is where the Writer keeps the entries' xattrs beyond the
	// first 4 MiB until Close (an unlinked file; empty: $TMPDIR, or the
	// image's directory if $TMPDIR cannot be written).
	TempDir string
}

// Entry describes one file of the image for Writer.Add.
type Entry struct {
	// Path is the absolute, clean path in the image ("/" for the root,
	// "/usr/bin/sh"); names are bytes, at most 256 of them, without NUL.
	Path string
	// Mode holds the type bits (fs.ModeDir, fs.ModeSymlink, fs.ModeDevice,
	// fs.ModeDevice|fs.ModeCharDevice, fs.ModeNamedPipe, fs.ModeSocket, none
	// for a regular file), the permission bits and fs.ModeSetuid,
	// fs.ModeSetgid, fs.ModeSticky.
	Mode     fs.FileMode
	UID, GID uint32
	ModTime  int64 // seconds since the epoch, 0..2^32-1
	// Size is the exact length of a regular file's content; Open must yield
	// exactly this many bytes (a mismatch fails WriteData, naming Path).
	Size int64
	// Open returns a regular file's content. WriteData calls it once, reads
	// to EOF once and closes it; the reader may tee the bytes (into a hash)
	// and learn from Close that they were all read. nil means empty content
	// (Size must be 0). Open is called from WriteData's reader goroutines,
	// several at once for different entries. A reader that is a
	// ContentSHA256 and hashes with SHA-256 gives the digest that finds
	// duplicate files, so the content is not hashed a second time.
	Open func() (io.ReadCloser, error)
	// Opener and File, instead of Open: the content is
	// Opener.OpenFile(File), under the same terms. One Opener and an
	// index, not a function per file: the Writer holds 4 bytes a file
	// until it is read instead of a function and what it captures. The
	// entries with an Opener must all have the same one.
	Opener FileOpener
	File   int32
	// Target is a symlink's target (1..4095 bytes).
	Target string
	// Rdev is a device's number in the Linux dev_t encoding
	// (syscall.Stat_t.Rdev, unix.Mkdev).
	Rdev uint64
	// LinkTo makes this entry a hard link to the entry at that path (which
	// must not be a directory; it may be added before or after). All other
	// fields but Path and Xattrs are ignored; xattrs belong to the shared
	// inode, so they may be given on either entry, not on both.
	LinkTo string
	// Xattrs are stored with the inode (sorted by name; SetXattrs replaces
	// them).
	Xattrs []Xattr
	// XattrsLater tells that SetXattrs will give this regular file its
	// final xattrs, once, during or after WriteData (a signed file's
	// security.ima). When entries have it, an entry's xattrs are final
	// from WriteData on, or for one with XattrsLater once SetXattrs gave
	// them, and SetXattrs on any other entry from then on fails; and the
	// Writer builds the xattr table while the data is written (up to
	// 262,144 such entries; with more, at Close), in inode order, each
	// entry's set as soon as it and every set before it are final. The
	// image is the same; Close is left only the sets not final before it.
	XattrsLater bool
}

// FileOpener opens regular files' content by index (Entry.Opener).
type FileOpener interface {
	OpenFile(file int32) (io.ReadCloser, error)
}

// sameOpener reports whether a and b are the same Opener (false when
// they cannot be compared: a slice, a map or a function).
func sameOpener(a, b FileOpener) (same bool) {
	defer func() {
		if recover() != nil {
			same = false
		}
	}()
	return a == b
}

type kind uint8

const (
	kindDir kind = iota
	kindReg
	kindSymlink
	kindBlock
	kindChar
	kindFifo
	kindSocket
	kindLink // a hard link entry (LinkTo)
)

// node is one directory entry of the tree; hard links share the inode fields
// of their target (ext.link). It is kept small (64 bytes on 64-bit,
// TestNodeSize; allocated in slabs), since a Writer holds one per entry
// until Close: what only directories, symlinks, devices and hard links need
// is in ext, a regular file's block list is a range of Writer.blockWords,
// and its sparse byte count follows from that list. A node has no parent
// pointer: only error messages need a node's path, and Writer.pathOf
// searches the tree for it; nor a regular file's content (Writer.sources).
// Fields used in one phase only share their space with another phase's
// (at, xattr).
//
// A node holds no pointer (TestNodeNoPointers): its name is an offset into
// Writer.names, its extension an index into Writer.exts, and nodes refer to
// each other by id (Writer.node). A slab of nodes is then marked by the
// garbage collector but never scanned: with a string and a *nodeExt per
// node, every cycle followed two pointers per file (at a million files,
// about 90 cycles of a build).
type node struct {
	size int64

	// at is a regular file's data start (set by WriteData) until Close
	// writes its inode, then every node's inode reference (inodeWriter).
	at uint64

	// data layout, set by WriteData
	firstSeq uint32 // the file's first stream item (planData); until prepare, its index in Writer.sources
	blockAt  uint32 // the file's block list: blockWords[blockAt:][:w.blockCount(size)]

	mtime         uint32
	frag, fragOff uint32
	nlink, ino    uint32
	own           uint32 // the permission bits and owner: Writer.owners[own]
	// xattr is, until Close numbers the xattr sets (tableState.number),
	// the node's xattrs in the store: Writer.xattrs.at[xattr-1] (0: none);
	// from then on its xattr id (InvalidXattr: none).
	xattr uint32
	name  uint32 // the name's offset in Writer.names (the root has none)
	ext   uint32 // directories, symlinks, devices, hard links: Writer.exts[ext] (0: none)

	nameLen uint8 // the name's length less one (names are 1..256 bytes)
	kind    kind
	flags   nodeFlags
	// later is Entry.XattrsLater until SetXattrs gives the set. It is
	// not a flag: SetXattrs changes it (w.mu held) while WriteData's
	// goroutines read flags without the lock.
	later bool
}

// owner is a node's permission bits and owner. A tree has few distinct
// ones, so each is kept once (Writer.owners), and a node has its index:
// 4 bytes instead of 10.
type owner struct {
	uid, gid uint32
	mode     uint16
}

// dirOwner is an implicit directory's (and the root's until added):
// Writer.owners[0], so a zero node.own.
var dirOwner = owner{mode: 0o755}

// ownerIndex returns o's index in w.owners, adding it (w.mu held).
func (w *Writer) ownerIndex(o owner) uint32 {
	i, ok := w.ownerIx[o]
	if !ok {
		i = uint32(len(w.owners))
		w.owners = append(w.owners, o)
		w.ownerIx[o] = i
	}
	return i
}

// owner is n's permission bits and owner.
func (w *Writer) owner(n *node) owner { return w.owners[n.own] }

// nodeFlags are a node's yes-or-no properties.
type nodeFlags uint8

const (
	implicit     nodeFlags = 1 << iota // a directory implied by a descendant, not added
	dupCandidate                       // another regular file has the same size
)

// is reports whether n has flag f.
func (n *node) is(f nodeFlags) bool { return n.flags&f != 0 }

// set sets or clears flag f.
func (n *node) set(f nodeFlags, on bool) {
	if on {
		n.flags |= f
	} else {
		n.flags &^= f
	}
}

// nodeExt holds the fields of a node that regular files do not need.
type nodeExt struct {
	children []uint32 // directories: node ids, sorted by name bytes before writing
	target   string   // symlink target or LinkTo path
	rdev     uint32
	link     uint32 // kindLink: the resolved inode holder's id (0, the root's: not resolved)
}

// nodeSlabBits: nodes are allocated 1<<nodeSlabBits at once, in slabs
// that never move, so a node id is a slab and an index in it.
const (
	nodeSlabBits = 10
	nodeSlab     = 1 << nodeSlabBits
	// maxNodes is how many nodes ids can number.
	maxNodes = 1 << 32
)

// newNode returns a zero node and its id (w.mu held).
func (w *Writer) newNode() (uint32, *node, error) {
	k := len(w.slabs)
	if k == 0 || len(w.slabs[k-1]) == nodeSlab {
		if uint64(k)*nodeSlab >= maxNodes {
			return 0, nil, fmt.Errorf("squashfs: more than 2^32 entries")
		}
		w.slabs = append(w.slabs, make([]node, 0, nodeSlab))
		k++
	}
	s := &w.slabs[k-1]
	*s = append(*s, node{})
	return uint32((k-1)<<nodeSlabBits | (len(*s) - 1)), &(*s)[len(*s)-1], nil
}

// rootID is the root's node id (NewWriter's first node).
const rootID = 0

// node returns the node with id.
func (w *Writer) node(id uint32) *node {
	return &w.slabs[id>>nodeSlabBits][id&(nodeSlab-1)]
}

// ext returns n's extension, or nil. The pointer is valid until the next
// newExt.
func (w *Writer) ext(n *node) *nodeExt {
	if n.ext == 0 {
		return nil
	}
	return &w.exts[n.ext]
}

// newExt gives n an extension (w.mu held) and returns it.
func (w *Writer) newExt(n *node, e nodeExt) (*nodeExt, error) {
	if len(w.exts) == 0 {
		w.exts = append(w.exts, nodeExt{}) // index 0: none
	}
	if len(w.exts) >= math.MaxUint32 {
		return nil, fmt.Errorf("squashfs: more than 2^32 directories, symlinks, devices and hard links")
	}
	n.ext = uint32(len(w.exts))
	w.exts = append(w.exts, e)
	return &w.exts[n.ext], nil
}

// children returns a directory's entries (node ids).
func (w *Writer) children(n *node) []uint32 {
	if e := w.ext(n); e != nil {
		return e.children
	}
	return nil
}

// addChild appends c (id) to directory d's entries.
func (w *Writer) addChild(d *node, c uint32) error {
	e := w.ext(d)
	if e == nil {
		var err error
		if e, err = w.newExt(d, nodeExt{}); err != nil {
			return err
		}
	}
	e.children = append(e.children, c)
	return nil
}

// name returns n's name, from the name store; the root has none.
func (w *Writer) name(n *node) []byte {
	return w.names.get(n.name, int(n.nameLen)+1)
}

// setName stores name (1..MaxNameLen bytes) as n's.
func (w *Writer) setName(n *node, name string) error {
	off, err := w.names.add(name)
	if err != nil {
		return err
	}
	n.name, n.nameLen = off, uint8(len(name)-1)
	return nil
}

// nameChunk is the size of a nameStore chunk: a name (at most MaxNameLen
// bytes) never crosses one.
const nameChunk = 64 << 10

// nameStore keeps the entries' names, without pointers per name: a name
// is an offset (chunk index<<16 | offset in it), and chunks, once filled,
// never change or move, so the bytes get returns stay valid.
type nameStore struct {
	chunks [][]byte
}

// add stores name and returns its offset.
func (s *nameStore) add(name string) (uint32, error) {
	k := len(s.chunks)
	if k == 0 || len(s.chunks[k-1])+len(name) > nameChunk {
		if k == 1<<16 {
			return 0, fmt.Errorf("squashfs: more than 4 GiB of names")
		}
		s.chunks = append(s.chunks, make([]byte, 0, nameChunk))
		k++
	}
	c := &s.chunks[k-1]
	off := uint32((k-1)<<16 | len(*c))
	*c = append(*c, name...)
	return off, nil
}

// get returns the n bytes stored at off.
func (s *nameStore) get(off uint32, n int) []byte {
	c, i := s.chunks[off>>16], int(off&0xffff)
	return c[i : i+n : i+n]
}

// compareName orders a stored name b against name, as bytes.
func compareName(b []byte, name string) int {
	switch {
	case string(b) < name:
		return -1
	case string(b) > name:
		return 1
	}
	return 0
}

// Writer writes a SquashFS image. Add every entry (any order), call WriteData
// once to read and compress the regular files' content, set xattrs with
// SetXattrs at any time before Close, then Close to write the tables and the
// superblock. The image depends only on the entries, their content and the
// Options (not on the order of Add calls, on Workers, or on timing).
//
// Layout, as mksquashfs makes it and the kernel reads it: data in tree order
// (depth first, a directory's entries sorted by name bytes), each file's
// blocks contiguous, fragment blocks written in the order they fill; files
// smaller than a block are packed into fragments (Options.TailEnds: tails
// too); all-zero blocks are stored sparse (size 0), so an image depends on
// content, not on whether the source had holes; a file whose size and
// SHA-256 equal an earlier file's is stored once (its blocks are written,
// then rolled back). Inode numbers follow the same walk with each directory
// after its entries, so the root is inode_count; directory nlink is
// 2 + subdirectories; directories whose listing crosses 8 KiB get an
// extended inode with a lookup index; the export table maps every inode
// number to its inode.
//
// Memory: data is streamed through a fixed window of blocks (at most 32 MiB
// of block buffers, and at least 2 per worker); per entry the Writer keeps
// its metadata (a 64-byte node without pointers, its name's bytes, a
// directory also its path in a map, and 4 bytes per data block) until
// Close, and its xattrs encoded in a store that
// goes to a temporary file beyond 4 MiB (xattrStore, Options.TempDir);
// Close keeps, per distinct xattr set, its offset and a small hash entry.
type Writer struct {
	out   io.WriteSeeker
	opts  Options
	codec *codec
	cache *blockCacheUse // nil: no Options.Cache

	mu sync.Mutex // guards nodes' xattrs and the fields below during WriteData
	// xattrEnc is SetXattrs's encoding buffer (under mu), reused: a
	// build's signed files each took a new one.
	xattrEnc []byte
	root     *node
	// dirs finds directories by path; other entries are found in their
	// directory's children (lookup), so a million files need no map
	// entry each.
	dirs map[string]uint32
	// xattrs holds the xattrs of nodes until Close numbers them
	// (node.xs): a regular file's are set only at the end, by SetXattrs,
	// so a node keeps an index, not a slice header, while the data is
	// written.
	xattrs xattrStore
	// later counts the entries added with XattrsLater; with any (at most
	// aheadMaxLater), ahead builds the xattr table from WriteData on (nil
	// before, and otherwise).
	later     int
	ahead     *tableState
	prepared  bool
	wroteData bool
	closed    bool
	failed    error    // WriteData's error: the image cannot be finished
	files     []uint32 // regular files with content (node ids), in tree order
	// sources are the regular files' contents: in the order they were
	// added (node.firstSeq) until prepare, then by index in files; all
	// dropped once the data is written (a node has no field for what is
	// dead from then on). A source is an index for opener (Entry.File),
	// or -1-k for opens[k] (Entry.Open, nil for no content; each dropped
	// once called).
	sources []int32
	opener  FileOpener
	opens   []func() (io.ReadCloser, error)
	// slabs hold the nodes (newNode; Writer.node finds one by id), exts
	// their extensions (node.ext), names their names (node.name).
	slabs [][]node
	exts  []nodeExt
	names nameStore
	// owners are the distinct permission bits and owners of the nodes
	// (node.own), dirOwner first; ownerIx finds one.
	owners  []owner
	ownerIx map[owner]uint32
	// blockWords holds every regular file's block list (block size
	// words), each file's contiguous, in commit order (node.blockAt).
	blockWords []uint32

	pos       uint64 // next write offset in out
	maxPos    uint64 // largest offset written (for truncation after a roll-back)
	wbuf      []byte // written bytes not yet in out, ending at pos (flush)
	fragments []FragmentEntry
	dups      int // files stored once for several entries (for Stats)
}

// NewWriter prepares to write an image to w, starting at its current offset 0
// (the superblock is written there by Close). If w has a Truncate(int64)
// error method (*os.File), Close truncates it to the image size.
func NewWriter(w io.WriteSeeker, opts Options) (*Writer, error) {
	if opts.BlockSize == 0 {
		opts.BlockSize = 128 << 10
	}
	bs := opts.BlockSize
	if bs < MinBlockSize || bs > MaxBlockSize || bs&(bs-1) != 0 {
		return nil, fmt.Errorf("squashfs: block size %d is not a power of two from 4 KiB to 1 MiB", bs)
	}
	comp := opts.Compression
	if comp == 0 {
		comp = Gzip // mksquashfs's default
	}
	c, err := newCodec(comp, opts.Level, bs)
	if err != nil {
		return nil, err
	}
	if opts.ModTime < 0 || opts.ModTime > math.MaxUint32 {
		return nil, fmt.Errorf("squashfs: image time %d outside 0..2^32-1", opts.ModTime)
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.Compressors <= 0 {
		opts.Compressors = opts.Workers
	}
	cache, err := newBlockCacheUse(opts.Cache, c)
	if err != nil {
		return nil, err
	}
	wr := &Writer{out: w, opts: opts, codec: c, cache: cache, dirs: make(map[string]uint32),
		owners: []owner{dirOwner}, ownerIx: map[owner]uint32{dirOwner: 0}}
	wr.xattrs.dir, wr.xattrs.fallback = opts.TempDir, outputDir(w)
	_, root, err := wr.newNode() // rootID
	if err != nil {
		return nil, err
	}
	*root = node{kind: kindDir, flags: implicit, mtime: uint32(opts.ModTime)}
	if _, err := wr.newExt(root, nodeExt{}); err != nil {
		return nil, err
	}
	wr.root, wr.dirs["/"] = root, rootID
	// Reserve the superblock and the compressor options block.
	head := make([]byte, SuperblockSize)
	if o := c.options(); o != nil {
		head = MetadataHeader{Size: uint16(len(o)), Uncompressed: true}.appendTo(head)
		head = append(head, o...)
	}
	if _, err := w.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("squashfs: %w", err)
	}
	if err := wr.write(head); err != nil {
		return nil, err
	}
	return wr, nil
}

// writeBufSize is how many bytes write gathers before it writes them to
// out: one write(2) per block cost a system call per 20-60 KB of image
// (10,000 for an image of 1.3 GB of large files), one per MiB does not.
const writeBufSize = 1 << 20

// write appends p at w.pos. The bytes reach out by flush, at the latest
// before a seek.
func (w *Writer) write(p []byte) error {
	if len(w.wbuf)+len(p) > writeBufSize {
		if err := w.flush(); err != nil {
			return err
		}
	}
	if len(p) >= writeBufSize {
		if _, err := w.out.Write(p); err != nil {
			return fmt.Errorf("squashfs: writing image: %w", err)
		}
	} else {
		if w.wbuf == nil {
			w.wbuf = make([]byte, 0, writeBufSize)
		}
		w.wbuf = append(w.wbuf, p...)
	}
	w.pos += uint64(len(p))
	w.maxPos = max(w.maxPos, w.pos)
	return nil
}

// flush writes the gathered bytes to out.
func (w *Writer) flush() error {
	if len(w.wbuf) == 0 {
		return nil
	}
	_, err := w.out.Write(w.wbuf)
	w.wbuf = w.wbuf[:0]
	if err != nil {
		return fmt.Errorf("squashfs: writing image: %w", err)
	}
	return nil
}

// seekTo moves the write offset back to off (rolling back a duplicate).
func (w *Writer) seekTo(off uint64) error {
	if err := w.flush(); err != nil {
		return err
	}
	if _, err := w.out.Seek(int64(off), io.SeekStart); err != nil {
		return fmt.Errorf("squashfs: rolling back a duplicate: %w", err)
	}
	w.pos = off
	return nil
}

// SetModTime changes the image time (Options.ModTime) before Close.
// Directories already implied by Add keep the time they were given.
func (w *Writer) SetModTime(t int64) error {
	if t < 0 || t > math.MaxUint32 {
		return fmt.Errorf("squashfs: image time %d outside 0..2^32-1", t)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	w.opts.ModTime = t
	return nil
}

// validEntryName reports whether name can be a SquashFS directory entry name.
func validEntryName(name string) bool {
	return name != "" && name != "." && name != ".." && len(name) <= MaxNameLen &&
		!strings.ContainsAny(name, "/\x00")
}

// PathError reports an entry the Writer cannot store, or a failure reading
// its content; it wraps the cause.
type PathError struct {
	Path string
	Err  error
}

func (e *PathError) Error() string { return "squashfs: " + e.Path + ": " + e.Err.Error() }
func (e *PathError) Unwrap() error { return e.Err }

func perr(p string, format string, args ...any) error {
	return &PathError{Path: p, Err: fmt.Errorf(format, args...)}
}

// Add records an entry (metadata only; content is read by WriteData). Entries
// may come in any order. Missing parent directories are implied with mode
// 0755, owner 0:0 and Options.ModTime; adding the directory later (before
// WriteData) replaces those. Adding a path twice is an error: Add reports it
// when the two come one after the other (as in path order), WriteData
// otherwise.
func (w *Writer) Add(e Entry) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	if w.prepared {
		return perr(e.Path, "Add after WriteData")
	}
	p := e.Path
	if !strings.HasPrefix(p, "/") || path.Clean(p) != p {
		return perr(p, "not an absolute clean path")
	}
	n := &node{own: w.ownerIndex(owner{uid: e.UID, gid: e.GID, mode: uint16(fsmode.Perm(e.Mode))})}
	var ext *nodeExt // n's, if it has one
	if e.ModTime < 0 || e.ModTime > math.MaxUint32 {
		return perr(p, "modification time %d outside 0..2^32-1", e.ModTime)
	}
	n.mtime = uint32(e.ModTime)
	if err := w.checkXattrs(p, e.Xattrs); err != nil {
		return err
	}
	var err error
	if len(e.Xattrs) > 0 { // none: index 0, nothing to encode (xattrStore.keep)
		if n.xattr, err = w.xattrs.keep(0, encodeXattrs(nil, e.Xattrs)); err != nil {
			return &PathError{Path: p, Err: err}
		}
	}
	if e.XattrsLater {
		if e.LinkTo != "" || e.Mode.Type() != 0 {
			return perr(p, "XattrsLater on an entry that is not a regular file")
		}
		n.later = true
	}
	switch t := e.Mode.Type(); {
	case e.LinkTo != "":
		if !strings.HasPrefix(e.LinkTo, "/") || path.Clean(e.LinkTo) != e.LinkTo || e.LinkTo == p {
			return perr(p, "bad hard link target %q", e.LinkTo)
		}
		n.kind, ext = kindLink, &nodeExt{target: e.LinkTo}
	case t == 0:
		if e.Size < 0 || (e.Open == nil && e.Opener == nil && e.Size != 0) {
			return perr(p, "regular file of size %d without content", e.Size)
		}
		if len(w.sources) >= math.MaxInt32 || len(w.opens) >= math.MaxInt32 {
			return perr(p, "more than 2^31 regular files")
		}
		src := int32(-1 - len(w.opens))
		switch {
		case e.Open != nil && e.Opener != nil:
			return perr(p, "both Open and Opener")
		case e.Opener != nil && w.opener != nil && !sameOpener(e.Opener, w.opener):
			return perr(p, "a second Opener")
		case e.Opener != nil:
			if e.File < 0 {
				return perr(p, "Opener file index %d", e.File)
			}
			w.opener, src = e.Opener, e.File
		default:
			w.opens = append(w.opens, e.Open)
		}
		n.kind, n.size, n.firstSeq = kindReg, e.Size, uint32(len(w.sources))
		w.sources = append(w.sources, src)
	case t == fs.ModeDir:
		n.kind = kindDir
	case t == fs.ModeSymlink:
		if len(e.Target) == 0 || len(e.Target) > MaxSymlinkLen {
			return perr(p, "symlink target of %d bytes (want 1..%d)", len(e.Target), MaxSymlinkLen)
		}
		n.kind, ext = kindSymlink, &nodeExt{target: e.Target}
	case t == fs.ModeDevice, t == fs.ModeDevice|fs.ModeCharDevice:
		n.kind = kindBlock
		if t&fs.ModeCharDevice != 0 {
			n.kind = kindChar
		}
		major := uint32((e.Rdev>>8)&0xfff | (e.Rdev>>32)&^0xfff)
		minor := uint32(e.Rdev&0xff | (e.Rdev>>12)&^0xff)
		if major > 0xfff || minor > 0xfffff {
			return perr(p, "device number %d:%d does not fit SquashFS's 32-bit encoding", major, minor)
		}
		ext = &nodeExt{rdev: EncodeDev(major, minor)}
	case t == fs.ModeNamedPipe:
		n.kind = kindFifo
	case t == fs.ModeSocket:
		n.kind = kindSocket
	default:
		return perr(p, "unsupported file type %v", t)
	}
	if p == "/" {
		if n.kind != kindDir {
			return perr(p, "the root must be a directory")
		}
		if !w.root.is(implicit) {
			return perr(p, "added twice")
		}
		w.root.set(implicit, false)
		w.root.own, w.root.mtime, w.root.xattr = n.own, n.mtime, n.xattr
		return nil
	}
	dir, name := path.Split(p)
	if !validEntryName(name) {
		return perr(p, "bad name")
	}
	parent, err := w.dirFor(path.Clean(dir))
	if err != nil {
		return err
	}
	if id, ok := w.dirs[p]; ok {
		old := w.node(id)
		if !old.is(implicit) || n.kind != kindDir {
			if old.is(implicit) {
				return perr(p, "is a directory (a parent of another entry)")
			}
			return perr(p, "added twice")
		}
		old.set(implicit, false)
		old.own, old.mtime, old.xattr = n.own, n.mtime, n.xattr
		return nil
	}
	if w.lastChildIs(parent, name) {
		// In path order a repeated path follows itself; prepare finds
		// the others.
		return perr(p, "added twice")
	}
	id, nn, err := w.newNode()
	if err != nil {
		return &PathError{Path: p, Err: err}
	}
	*nn = *n
	if err := w.setName(nn, name); err != nil {
		return &PathError{Path: p, Err: err}
	}
	if ext != nil {
		if _, err := w.newExt(nn, *ext); err != nil {
			return &PathError{Path: p, Err: err}
		}
	}
	if err := w.addChild(parent, id); err != nil {
		return &PathError{Path: p, Err: err}
	}
	if nn.kind == kindDir {
		w.dirs[p] = id
	}
	if nn.later {
		w.later++
	}
	return nil
}

// lastChildIs reports whether directory d's last added entry is name.
func (w *Writer) lastChildIs(d *node, name string) bool {
	cs := w.children(d)
	return len(cs) > 0 && string(w.name(w.node(cs[len(cs)-1]))) == name
}

// lookup returns the entry at the clean absolute path p, or nil: a
// directory from w.dirs, anything else by name in its directory's entries
// (binary search once prepare has sorted them, else a linear search).
func (w *Writer) lookup(p string) *node {
	if id, ok := w.lookupID(p); ok {
		return w.node(id)
	}
	return nil
}

// lookupID is lookup returning the node's id.
func (w *Writer) lookupID(p string) (uint32, bool) {
	if d, ok := w.dirs[p]; ok {
		return d, true
	}
	dir, name := path.Split(p)
	parent, ok := w.dirs[path.Clean(dir)]
	if !ok || name == "" {
		return 0, false
	}
	cs := w.children(w.node(parent))
	if w.prepared {
		if i, ok := slices.BinarySearchFunc(cs, name, func(c uint32, name string) int { return compareName(w.name(w.node(c)), name) }); ok {
			return cs[i], true
		}
		return 0, false
	}
	for i := len(cs) - 1; i >= 0; i-- {
		if string(w.name(w.node(cs[i]))) == name {
			return cs[i], true
		}
	}
	return 0, false
}

// dirFor returns the directory node at p, implying missing ones.
func (w *Writer) dirFor(p string) (*node, error) {
	if id, ok := w.dirs[p]; ok {
		return w.node(id), nil
	}
	dir, name := path.Split(p)
	parent, err := w.dirFor(path.Clean(dir))
	if err != nil {
		return nil, err
	}
	if w.lastChildIs(parent, name) {
		// (a non-directory; prepare finds one added earlier)
		return nil, perr(p, "is not a directory but has entries below it")
	}
	id, n, err := w.newNode()
	if err != nil {
		return nil, &PathError{Path: p, Err: err}
	}
	*n = node{kind: kindDir, flags: implicit, mtime: uint32(w.opts.ModTime)}
	if err := w.setName(n, name); err != nil {
		return nil, &PathError{Path: p, Err: err}
	}
	if err := w.addChild(parent, id); err != nil {
		return nil, &PathError{Path: p, Err: err}
	}
	w.dirs[p] = id
	return n, nil
}

func (w *Writer) checkXattrs(p string, xs []Xattr) error {
	for i, x := range xs {
		_, name, ok := SplitXattrName(x.Name)
		if !ok || len(name) > 255 {
			return perr(p, "xattr %q cannot be stored in SquashFS (only user., trusted. and security.)", x.Name)
		}
		if len(x.Value) > 65536 {
			return perr(p, "xattr %q value of %d bytes exceeds 64 KiB", x.Name, len(x.Value))
		}
		for _, y := range xs[:i] {
			if y.Name == x.Name {
				return perr(p, "xattr %q given twice", x.Name)
			}
		}
	}
	return nil
}

// SetXattrs replaces the xattrs of the entry at path (for a hard link, of
// its shared inode). It may be called concurrently with itself and with
// WriteData, up to Close. Before WriteData it searches the entry's
// directory from its last entry, after it by binary search.
func (w *Writer) SetXattrs(p string, xs []Xattr) error {
	if err := w.checkXattrs(p, xs); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	// encoded into one buffer, reused: the store copies it (keep)
	w.xattrEnc = encodeXattrs(w.xattrEnc[:0], xs)
	enc := w.xattrEnc
	n := w.lookup(p)
	if n == nil {
		return perr(p, "no such entry")
	}
	if n.kind == kindLink {
		e := w.ext(n)
		if e.link == 0 {
			return perr(p, "hard link not resolved yet (call SetXattrs on %s, or after WriteData)", e.target)
		}
		n = w.node(e.link)
	}
	if w.wroteData && w.later > 0 && !n.later {
		return perr(p, "xattrs already final (the xattr table is built while the data is written: only an entry added with XattrsLater takes them, once)")
	}
	var err error
	if n.xattr, err = w.xattrs.keep(n.xattr, enc); err != nil {
		return &PathError{Path: p, Err: err}
	}
	if n.later {
		n.later = false
		if w.ahead != nil {
			return w.ahead.advance(false)
		}
	}
	return nil
}

// hasXattrs reports whether n has xattrs before Close numbers them.
func (w *Writer) hasXattrs(n *node) (bool, error) {
	b, _, err := w.xattrs.setOf(n.xattr)
	return len(b) > 0, err
}

// prepare sorts the tree, resolves hard links and lists the regular files in
// tree order (depth first, entries of a directory by name bytes). Called
// once, with w.mu held.
func (w *Writer) prepare() error {
	if w.prepared {
		return nil
	}
	w.prepared = true
	var walk func(d *node)
	var links []uint32
	var dup *node
	walk = func(d *node) {
		cs := w.children(d)
		slices.SortFunc(cs, func(a, b uint32) int { return bytes.Compare(w.name(w.node(a)), w.name(w.node(b))) })
		for i, id := range cs {
			c := w.node(id)
			if i > 0 && dup == nil && bytes.Equal(w.name(c), w.name(w.node(cs[i-1]))) {
				dup = c
			}
			switch c.kind {
			case kindDir:
				walk(c)
			case kindReg:
				w.files = append(w.files, id)
			case kindLink:
				links = append(links, id)
			}
		}
	}
	walk(w.root)
	if dup != nil {
		return perr(w.pathOf(dup), "added twice")
	}
	sources := make([]int32, len(w.files))
	for i, f := range w.files {
		sources[i] = w.sources[w.node(f).firstSeq]
	}
	w.sources = sources
	for _, lid := range links {
		l := w.node(lid)
		t, tid := l, lid
		for i := 0; t.kind == kindLink; i++ {
			target := w.ext(t).target
			next, ok := w.lookupID(target)
			if !ok {
				return perr(w.pathOf(l), "hard link to %s, which was not added", target)
			}
			if i > len(links) {
				return perr(w.pathOf(l), "hard link loop")
			}
			t, tid = w.node(next), next
		}
		if t.kind == kindDir {
			return perr(w.pathOf(l), "hard link to directory %s", w.ext(l).target)
		}
		lx, err := w.hasXattrs(l)
		if err != nil {
			return err
		}
		if lx {
			tx, err := w.hasXattrs(t)
			if err != nil {
				return err
			}
			if tx {
				return perr(w.pathOf(l), "xattrs given on two links of one inode")
			}
			t.xattr, l.xattr = l.xattr, 0
		}
		w.ext(l).link = tid
	}
	return nil
}

// pathOf returns the image path of n, found by searching the tree (nodes
// keep no parent: only error messages need a path).
func (w *Writer) pathOf(n *node) string {
	var parts []string
	var find func(d *node) bool
	find = func(d *node) bool {
		if d == n {
			return true
		}
		for _, id := range w.children(d) {
			if c := w.node(id); find(c) {
				parts = append(parts, string(w.name(c)))
				return true
			}
		}
		return false
	}
	if !find(w.root) {
		return "(a node not in the tree)"
	}
	slices.Reverse(parts)
	return "/" + strings.Join(parts, "/")
}

// sortXattrs returns xs sorted by name (the stored order).
func sortXattrs(xs []Xattr) []Xattr {
	xs = slices.Clone(xs)
	slices.SortFunc(xs, compareXattrs)
	return xs
}

// compareXattrs orders xattrs by name, then value.
func compareXattrs(a, b Xattr) int {
	if c := strings.Compare(a.Name, b.Name); c != 0 {
		return c
	}
	return bytes.Compare(a.Value, b.Value)
}

// Stats describe a finished image.
type Stats struct {
	Inodes     uint32
	Fragments  uint32
	Duplicates int    // regular files stored as a copy of an earlier one
	BytesUsed  uint64 // image size before padding to 4 KiB
	// With Options.Cache: blocks taken from the cache, blocks compressed
	// (and offered to it), and cache entries that did not decompress to
	// their block's content (compressed again: counted in CacheMisses too).
	CacheHits, CacheMisses, CacheRejected int
}

// errNotPrepared is returned when Close finds entries never prepared.
var errNotPrepared = errors.New("squashfs: internal: tree not prepared")

// Close writes the inode, directory, fragment, export, id and xattr tables
// and finally the superblock at offset 0, pads the image to a multiple of
// 4 KiB and truncates w to that size when it can. WriteData is run first if
// it was not.
func (w *Writer) Close() error {
	_, err := w.Finish()
	return err
}

// Finish is Close returning the image's Stats.
func (w *Writer) Finish() (Stats, error) {
	w.mu.Lock()
	wrote, closed := w.wroteData, w.closed
	w.mu.Unlock()
	if closed {
		return Stats{}, ErrClosed
	}
	if !wrote {
		if err := w.WriteData(context.Background()); err != nil {
			return Stats{}, err
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	defer w.xattrs.close()
	defer w.ahead.stop()
	if w.failed != nil {
		return Stats{}, fmt.Errorf("squashfs: not finishing an image whose data failed: %w", w.failed)
	}
	if !w.prepared {
		return Stats{}, errNotPrepared
	}
	return w.writeTables()
}
