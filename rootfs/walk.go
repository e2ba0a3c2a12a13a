package rootfs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"

	"github.com/pkg/xattr"
	"golang.org/x/sys/unix"

	"github.com/imaforge/imaforge/internal/rawfd"
	"github.com/imaforge/imaforge/manifest"
)

// Options tune Walk.
type Options struct {
	// Strict turns warnings (an override that matches nothing) into errors.
	Strict bool
	// TempDir is where compressed tarballs are decompressed for random
	// access; empty means os.TempDir().
	TempDir string
	// MaxSpool bounds the bytes of member data a walk may write to its
	// spool files (0: no bound but the file system's). Holes (runs of
	// zeros, sparse members) take no space and are not counted.
	MaxSpool int64
	// Output, if set, is the path of the image being built, and
	// OutputSuffixes the names beside it that the build writes
	// (IMAGE+suffix). A source directory holding them never packs them,
	// nor the hidden ".IMAGE.*" files of the build (its lock, stage
	// directories, temporary files); Tree.Skipped lists what was left out.
	Output         string
	OutputSuffixes []string
}

// Walk builds the image tree the manifest declares. Errors name the
// manifest line and the host path or image path concerned, and wrap the
// cause (the Err* values of this package, fs errors). The caller closes the
// tree when done reading contents.
func Walk(ctx context.Context, m *manifest.Manifest, opts Options) (*Tree, error) {
	b := &builder{
		ctx:   ctx,
		m:     m,
		opts:  opts,
		index: make(map[string]int32),
		links: make(map[int32]devIno),
	}
	if opts.Output != "" {
		var st unix.Stat_t
		if err := unix.Stat(filepath.Dir(opts.Output), &st); err == nil {
			b.outDir = devIno{uint64(st.Dev), st.Ino}
			b.outName = filepath.Base(opts.Output)
		}
	}
	t, err := b.build()
	if err != nil {
		for _, c := range b.closers {
			c.Close()
		}
		return nil, err
	}
	return t, nil
}

type devIno struct{ dev, ino uint64 }

// entryList holds the walk's entries in chunks of entryChunk, so that a
// million entries are never copied to a larger slice as they grow (append
// grows a large slice by a quarter: about four times the final entries
// were copied, and allocated, before); all makes the one slice a Tree
// keeps, of the exact length.
type entryList struct {
	chunks [][]Entry
	n      int
}

// entryChunk is how many entries one chunk of an entryList holds (256 KiB).
const entryChunk = 4096

// add appends e and returns its index.
func (l *entryList) add(e Entry) int32 {
	if l.n%entryChunk == 0 {
		l.chunks = append(l.chunks, make([]Entry, 0, entryChunk))
	}
	c := &l.chunks[len(l.chunks)-1]
	*c = append(*c, e)
	l.n++
	return int32(l.n - 1)
}

// at returns entry i (0 <= i < len).
func (l *entryList) at(i int32) *Entry { return &l.chunks[i/entryChunk][i%entryChunk] }

// len is the number of entries.
func (l *entryList) len() int { return l.n }

// all returns the entries in one slice of their number.
func (l *entryList) all() []Entry {
	out := make([]Entry, 0, l.n)
	for _, c := range l.chunks {
		out = append(out, c...)
	}
	return out
}

type builder struct {
	ctx     context.Context
	m       *manifest.Manifest
	opts    Options
	entries entryList
	index   map[string]int32 // path → index in entries
	implied []bool           // entries[i] is an implied directory (lazily grown)
	links   map[int32]devIno // entries with nlink > 1
	overl   []Overlap
	warn    []error
	closers []closer
	count   int
	spooled int64 // bytes written to spool files
	outDir  devIno
	outName string // the image's name in outDir; "" without Options.Output
	skipped []string
	kids    [][]hostChild // walkChildren's lists, by depth, reused
	ext     *entryExt     // newEntry's last: the entries of one origin share it
	devices map[hostDevice]*hostDevice
	lastDev *hostDevice // device's last
	dirent  []byte      // walkChildren's getdents buffer
}

// isOutput reports whether name, in the host directory id, is the build's
// own output or one of its hidden files.
func (b *builder) isOutput(id devIno, name string) bool {
	if b.outName == "" || id != b.outDir {
		return false
	}
	if strings.HasPrefix(name, "."+b.outName+".") {
		return true
	}
	if rest, ok := strings.CutPrefix(name, b.outName); ok {
		for _, suf := range b.opts.OutputSuffixes {
			if rest == suf {
				return true
			}
		}
		return rest == ""
	}
	return false
}

type closer interface{ Close() error }

func (b *builder) build() (*Tree, error) {
	m := b.m
	rootOrigin := &Origin{Kind: FromImplied, Pos: m.Pos}
	b.implyDir("/", rootOrigin)
	for i := range m.Sources {
		if err := b.source(i); err != nil {
			return nil, err
		}
	}
	for i := range m.Entries {
		if err := b.declared(i); err != nil {
			return nil, err
		}
	}
	if err := b.overrides(); err != nil {
		return nil, err
	}
	linkByPath := make(map[string]devIno, len(b.links))
	for i, k := range b.links {
		linkByPath[b.entries.at(i).Path] = k
	}
	b.index, b.links, b.implied, b.kids, b.dirent = nil, nil, nil, nil, nil
	t := &Tree{Entries: b.entries.all(), Overlaps: b.overl, Warnings: b.warn, Spooled: b.spooled, Skipped: b.skipped}
	b.entries = entryList{}
	sort.Slice(t.Entries, func(i, j int) bool { return ComparePaths(t.Entries[i].Path, t.Entries[j].Path) < 0 })
	groupLinks(t, linkByPath)
	sort.SliceStable(t.Overlaps, func(i, j int) bool { return ComparePaths(t.Overlaps[i].Path, t.Overlaps[j].Path) < 0 })
	for _, c := range b.closers {
		t.closers = append(t.closers, c)
	}
	b.closers = nil
	return t, nil
}

func (b *builder) owner() (uid, gid uint32, ok bool) {
	if o := b.m.Image.Owner; o != nil {
		return o.UID, o.GID, true
	}
	return 0, 0, false
}

// imageJoin joins an image directory and a relative path.
func imageJoin(dir, rel string) string {
	if rel == "" {
		return dir
	}
	if dir == "/" {
		return "/" + rel
	}
	return dir + "/" + rel
}

// implyDir makes sure p and its parents exist as directories, creating
// missing ones with mode 0755 and image.owner (or 0:0).
func (b *builder) implyDir(p string, o *Origin) error {
	if p != "/" {
		if err := b.implyDir(path.Dir(p), o); err != nil {
			return err
		}
	}
	if i, ok := b.index[p]; ok {
		e := b.entries.at(i)
		if e.Type != TypeDir {
			return b.m.Errorf(o.Pos, ErrTypeConflict, "%s is a %s from %s, but %s needs a directory there", p, e.Type, e.Origin(), o)
		}
		return nil
	}
	uid, gid, _ := b.owner()
	e := b.newEntry(p, TypeDir, o)
	e.Mode, e.UID, e.GID = 0o755, uid, gid
	i := b.entries.add(e)
	b.index[p] = i
	b.setImplied(int(i), true)
	return nil
}

// device returns the hostDevice of root's files on dev, shared by all of
// them.
func (b *builder) device(root *hostRoot, dev uint64) *hostDevice {
	if d := b.lastDev; d != nil && d.root == root && d.dev == dev {
		return d
	}
	k := hostDevice{root, dev}
	d, ok := b.devices[k]
	if !ok {
		if b.devices == nil {
			b.devices = make(map[hostDevice]*hostDevice)
		}
		d = &k
		b.devices[k] = d
	}
	b.lastDev = d
	return d
}

// newEntry is an entry at image path p, of type t, from origin o: entries
// of one origin share one extension record until one of them is changed
// (Entry.edit), so a plain file costs no record of its own.
func (b *builder) newEntry(p string, t Type, o *Origin) Entry {
	if b.ext == nil || b.ext.origin != o {
		b.ext = &entryExt{origin: o}
	}
	return Entry{Path: p, Type: t, x: b.ext}
}

func (b *builder) setImplied(i int, v bool) {
	for len(b.implied) <= i {
		b.implied = append(b.implied, false)
	}
	b.implied[i] = v
}

func (b *builder) isImplied(i int32) bool { return int(i) < len(b.implied) && b.implied[i] }

// put adds e, merging with an entry already at its path: a directory keeps
// its children and takes the new metadata; anything else is replaced; two
// types at one path are an error naming both origins.
func (b *builder) put(e Entry, link *devIno) error {
	b.count++
	if b.count&4095 == 0 {
		if err := b.ctx.Err(); err != nil {
			return err
		}
	}
	i, ok := b.index[e.Path]
	if !ok {
		i = b.entries.add(e)
		b.index[e.Path] = i
		if link != nil {
			b.links[i] = *link
		}
		return nil
	}
	old := b.entries.at(i)
	if old.Type != e.Type {
		return b.m.Errorf(e.Origin().Pos, ErrTypeConflict, "%s: a %s from %s and a %s from %s", e.Path, old.Type, old.Origin(), e.Type, e.Origin())
	}
	if b.isImplied(i) {
		b.setImplied(int(i), false)
	} else if e.Type != TypeDir {
		b.overl = append(b.overl, Overlap{Path: e.Path, Old: old.Origin(), New: e.Origin()})
	} else if old.Mode != e.Mode || old.UID != e.UID || old.GID != e.GID || !xattrsEqual(old.Xattrs(), e.Xattrs()) {
		b.overl = append(b.overl, Overlap{Path: e.Path, Old: old.Origin(), New: e.Origin(), Metadata: true})
	}
	*old = e
	delete(b.links, i)
	if link != nil {
		b.links[i] = *link
	}
	return nil
}

func xattrsEqual(a, b manifest.Xattrs) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || string(a[i].Value) != string(b[i].Value) {
			return false
		}
	}
	return true
}

// source walks m.Sources[i].
func (b *builder) source(i int) error {
	s := &b.m.Sources[i]
	o := &Origin{Kind: FromSource, Index: i, Pos: s.Pos, From: s.From}
	fromPos := s.FieldPos("from")
	st, err := os.Stat(s.From)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return b.m.Errorf(fromPos, fmt.Errorf("%w: %w", ErrSymlinkLoop, err), "sources[%d].from", i)
		}
		return b.m.Errorf(fromPos, err, "sources[%d].from", i)
	}
	format := s.Format
	if format == "" {
		switch {
		case st.IsDir():
			format = "dir"
		case st.Mode().IsRegular() && isTarName(s.From):
			format = "tar"
		default:
			format = "file"
		}
	}
	to := s.To
	if format == "file" && s.IntoDir {
		to = imageJoin(s.To, filepath.Base(s.From))
	}
	if err := b.implyDir(path.Dir(to), &Origin{Kind: FromImplied, Index: i, Pos: s.FieldPos("to")}); err != nil {
		return err
	}
	switch format {
	case "dir":
		if !st.IsDir() {
			return b.m.Errorf(fromPos, nil, "sources[%d].from: %s is not a directory", i, s.From)
		}
		return b.walkDir(s, o)
	case "tar":
		if !st.Mode().IsRegular() {
			return b.m.Errorf(fromPos, nil, "sources[%d].from: %s is not a file", i, s.From)
		}
		return b.walkTar(s, o)
	}
	if st.IsDir() {
		return b.m.Errorf(fromPos, nil, "sources[%d].from: %s is a directory, not a file", i, s.From)
	}
	// The file is opened without following symlinks: name the target.
	real, err := filepath.EvalSymlinks(s.From)
	if err != nil {
		return b.m.Errorf(fromPos, err, "sources[%d].from", i)
	}
	root := newHostRoot(real, len(to), -1)
	var sys unix.Stat_t
	if err := unix.Stat(real, &sys); err != nil {
		return b.m.Errorf(fromPos, &os.PathError{Op: "stat", Path: real, Err: err}, "sources[%d].from", i)
	}
	e, link, err := b.hostEntry(root, real, "", to, &sys, nil, o)
	if err != nil {
		return err
	}
	if s.Mode != nil {
		e.Mode = uint32(*s.Mode)
	}
	return b.put(e, link)
}

// walkDir walks a source directory into the tree, in sorted name order.
//
// The directory is opened once (O_PATH) and walked from that descriptor:
// its children are listed and stat'ed relative to their directory's
// descriptor, and its files opened relative to the source's (hostRoot),
// so that the kernel does not resolve every component of the source's
// path again for each file.
func (b *builder) walkDir(s *manifest.Source, o *Origin) error {
	toLen := len(s.To)
	if s.To == "/" {
		toLen = 0
	}
	dir, err := openDir(unix.AT_FDCWD, s.From, unix.O_PATH)
	if err != nil {
		return b.m.Errorf(s.FieldPos("from"), &os.PathError{Op: "open", Path: s.From, Err: err}, "sources[%d].from", o.Index)
	}
	root := newHostRoot(s.From, toLen, dir)
	b.closers = append(b.closers, root)
	var top unix.Stat_t
	if err := unix.Fstat(dir, &top); err != nil {
		return b.m.Errorf(s.FieldPos("from"), &os.PathError{Op: "stat", Path: s.From, Err: err}, "sources[%d].from", o.Index)
	}
	e, _, err := b.hostEntry(root, s.From, "", s.To, &top, nil, o)
	if err != nil {
		return err
	}
	if s.Mode != nil {
		e.Mode = uint32(*s.Mode)
	}
	if err := b.put(e, nil); err != nil {
		return err
	}
	stack := []devIno{{uint64(top.Dev), top.Ino}}
	return b.walkChildren(root, s.From, s.To, stack, o)
}

// openDir opens a directory to read (flags 0) or as a path (O_PATH).
func openDir(at int, p string, flags int) (int, error) {
	return rawfd.Openat(at, p, unix.O_RDONLY|unix.O_DIRECTORY|flags)
}

// hostChild is a name of a host directory as listChildren found it: its
// image path, its lstat and a symlink's target, or the error that stops the
// walk there.
type hostChild struct {
	name, ip string
	output   bool // the build's own output: skipped
	st       unix.Stat_t
	target   string
	err      error
	statErr  error // statChildren's, before listChildren names the source
}

// listChildren lists the children of the host directory hostDir (the
// source's top when len(stack) == 1), in sorted name order, without those
// the manifest excludes: each with its lstat and a symlink's target, all
// read relative to the directory's descriptor, which is closed before the
// caller descends (a deep tree does not hold one descriptor per level). The
// list ends at the first child whose name is bad or whose lstat or readlink
// failed, with the error. The list is b.kids[len(stack)], reused.
func (b *builder) listChildren(root *hostRoot, hostDir, imageDir string, stack []devIno, o *Origin) ([]hostChild, error) {
	var fd int
	var err error
	if len(stack) == 1 {
		root.mu.RLock()
		fd, err = openDir(root.dir, ".", 0)
		root.mu.RUnlock()
	} else {
		// a directory lstat'ed a moment ago: not a symlink now either
		fd, err = openDir(unix.AT_FDCWD, hostDir, unix.O_NOFOLLOW)
	}
	if err != nil {
		return nil, b.m.Errorf(o.Pos, &os.PathError{Op: "open", Path: hostDir, Err: err}, "sources[%d]", o.Index)
	}
	defer unix.Close(fd)
	names, err := b.readNames(fd)
	if err != nil {
		return nil, b.m.Errorf(o.Pos, &os.PathError{Op: "readdirent", Path: hostDir, Err: err}, "sources[%d]: reading %s", o.Index, hostDir)
	}
	sort.Strings(names)
	for len(b.kids) <= len(stack) {
		b.kids = append(b.kids, nil)
	}
	kids := b.kids[len(stack)][:0]
	defer func() { b.kids[len(stack)] = kids[:0] }()
	for _, name := range names {
		if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
			kids = append(kids, hostChild{err: b.m.Errorf(o.Pos, ErrBadName, "sources[%d]: %q in %s", o.Index, name, hostDir)})
			break
		}
		ip := imageJoin(imageDir, name)
		if b.m.Excluded(ip) {
			continue
		}
		kids = append(kids, hostChild{name: name, ip: ip, output: b.isOutput(stack[len(stack)-1], name)})
	}
	statChildren(fd, hostDir, kids)
	for i := range kids {
		k := &kids[i]
		if k.statErr != nil {
			k.err = b.m.Errorf(o.Pos, k.statErr, "sources[%d]", o.Index)
		}
		if k.err != nil {
			kids = kids[:i+1]
			break
		}
	}
	return kids, nil
}

// parallelStat is the least number of children of a directory whose lstats
// statChildren splits between two goroutines: the lstats of a directory's
// files are most of a walk's time, and the walk runs before any file is
// read or signed, on one core while the others have nothing to do.
const parallelStat = 64

// statChildren lstats each child of the open directory fd, the host
// directory hostDir (but the build's outputs and a bad name's entry), and
// reads each symlink's target; a child whose lstat or readlink fails gets
// the error in statErr, naming its host path. A long list is split in two
// halves stat'ed side by side.
func statChildren(fd int, hostDir string, kids []hostChild) {
	if len(kids) < parallelStat {
		statEach(fd, hostDir, kids)
		return
	}
	half := len(kids) / 2
	var wg sync.WaitGroup
	wg.Go(func() { statEach(fd, hostDir, kids[half:]) })
	statEach(fd, hostDir, kids[:half])
	wg.Wait()
}

// statEach is statChildren on one goroutine.
func statEach(fd int, hostDir string, kids []hostChild) {
	for i := range kids {
		k := &kids[i]
		if k.output || k.err != nil {
			continue
		}
		if err := fstatat(fd, k.name, &k.st); err != nil {
			k.statErr = &os.PathError{Op: "lstat", Path: hostDir + "/" + k.name, Err: err}
			continue
		}
		if k.st.Mode&unix.S_IFMT == unix.S_IFLNK {
			var err error
			if k.target, err = readlinkat(fd, k.name); err != nil {
				k.statErr = &os.PathError{Op: "readlink", Path: hostDir + "/" + k.name, Err: err}
			}
		}
	}
}

// readNames reads the names of the open directory fd, without "." and "..".
func (b *builder) readNames(fd int) ([]string, error) {
	if b.dirent == nil {
		b.dirent = make([]byte, 32<<10)
	}
	var names []string
	for {
		var n int
		err := rawfd.Retry(func() (err error) { n, err = unix.ReadDirent(fd, b.dirent); return err })
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(b.dirent[:n], -1, names)
	}
}

// fstatat lstats name in the directory dir.
func fstatat(dir int, name string, st *unix.Stat_t) error {
	return rawfd.Retry(func() error { return unix.Fstatat(dir, name, st, unix.AT_SYMLINK_NOFOLLOW) })
}

// readlinkat reads the target of the symlink name in the directory dir.
func readlinkat(dir int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		var n int
		err := rawfd.Retry(func() (err error) { n, err = unix.Readlinkat(dir, name, buf); return err })
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

func (b *builder) walkChildren(root *hostRoot, hostDir, imageDir string, stack []devIno, o *Origin) error {
	kids, err := b.listChildren(root, hostDir, imageDir, stack, o)
	if err != nil {
		return err
	}
	for i := range kids {
		k := &kids[i]
		if k.err != nil {
			return k.err
		}
		if k.output {
			b.skipped = append(b.skipped, hostDir+"/"+k.name)
			continue
		}
		e, link, err := b.hostEntry(root, hostDir, k.name, k.ip, &k.st, &k.target, o)
		if err != nil {
			return err
		}
		if err := b.put(e, link); err != nil {
			return err
		}
		if e.Type == TypeDir {
			hp := hostDir + "/" + k.name
			id := devIno{uint64(k.st.Dev), k.st.Ino}
			for _, a := range stack {
				if a == id {
					return b.m.Errorf(o.Pos, ErrCycle, "sources[%d]: %s is its own ancestor (a bind mount?)", o.Index, hp)
				}
			}
			if err := b.walkChildren(root, hp, k.ip, append(stack, id), o); err != nil {
				return err
			}
			// the deeper walk reused the lists below this depth only
		}
	}
	return nil
}

// hostEntry makes the entry of a host file from its lstat (or stat, for a
// source's top) result. Its host path is dir + "/" + name, or dir when name
// is empty; target, if not nil, is a symlink's target as already read.
func (b *builder) hostEntry(root *hostRoot, dir, name, ip string, st *unix.Stat_t, target *string, o *Origin) (Entry, *devIno, error) {
	hp := func() string { // not made for every file: most never need it
		if name == "" {
			return dir
		}
		return dir + "/" + name
	}
	e := b.newEntry(ip, 0, o)
	e.Mode, e.UID, e.GID = st.Mode&0o7777, st.Uid, st.Gid
	if uid, gid, ok := b.owner(); ok {
		e.UID, e.GID = uid, gid
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		e.Type = TypeDir
	case unix.S_IFREG:
		e.Type = TypeReg
		e.Size = st.Size
		e.Content = &HostFile{at: b.device(root, uint64(st.Dev)), path: ip, ino: st.Ino, size: st.Size, mtime: st.Mtim.Nano()}
	case unix.S_IFLNK:
		e.Type = TypeSymlink
		if target == nil {
			t, err := os.Readlink(hp())
			if err != nil {
				return e, nil, b.m.Errorf(o.Pos, err, "sources[%d]", o.Index)
			}
			target = &t
		}
		e.SetTarget(*target)
		e.Size = int64(len(*target))
	case unix.S_IFCHR, unix.S_IFBLK:
		e.Type = TypeChar
		if st.Mode&unix.S_IFMT == unix.S_IFBLK {
			e.Type = TypeBlock
		}
		e.SetDev(unix.Major(st.Rdev), unix.Minor(st.Rdev))
	case unix.S_IFIFO:
		e.Type = TypeFifo
	case unix.S_IFSOCK:
		e.Type = TypeSocket
	default:
		return e, nil, b.m.Errorf(o.Pos, ErrUnsupportedType, "sources[%d]: %s has file type %#o", o.Index, hp(), st.Mode&unix.S_IFMT)
	}
	if b.m.Image.KeepXattrs {
		x, err := readXattrs(hp())
		if err != nil {
			return e, nil, b.m.Errorf(o.Pos, err, "sources[%d]: reading xattrs", o.Index)
		}
		e.SetXattrs(x)
	}
	var link *devIno
	if e.Type != TypeDir && st.Nlink > 1 {
		link = &devIno{uint64(st.Dev), st.Ino}
	}
	return e, link, nil
}

// readXattrs reads the xattrs SquashFS can store, without security.ima.
func readXattrs(p string) (manifest.Xattrs, error) {
	names, err := xattr.LList(p)
	if err != nil {
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		return nil, err
	}
	sort.Strings(names)
	var out manifest.Xattrs
	for _, n := range names {
		if manifest.CheckXattrName(n) != nil {
			continue
		}
		v, err := xattr.LGet(p, n)
		if err != nil {
			if errors.Is(err, xattr.ENOATTR) {
				continue
			}
			return nil, err
		}
		out = append(out, manifest.Xattr{Name: n, Value: v})
	}
	return out, nil
}

// groupLinks numbers the hard-link groups in tree order. A member whose
// metadata differs from the group's first (an override or a source's mode
// hit only one name) leaves the group: it becomes an inode of its own.
func groupLinks(t *Tree, byPath map[string]devIno) {
	if len(byPath) == 0 {
		return
	}
	first := map[devIno]int{}
	ids := map[devIno]uint32{}
	var next uint32
	for i := range t.Entries {
		e := &t.Entries[i]
		k, ok := byPath[e.Path]
		if !ok {
			continue
		}
		j, seen := first[k]
		if !seen {
			first[k] = i
			continue
		}
		f := &t.Entries[j]
		if !sameInode(f, e) {
			continue
		}
		id, ok := ids[k]
		if !ok {
			next++
			id = next
			ids[k] = id
			f.SetLink(id)
		}
		e.SetLink(id)
	}
}

// sameInode reports whether two entries can share one inode.
func sameInode(a, b *Entry) bool {
	return a.Type == b.Type && a.Mode == b.Mode && a.UID == b.UID && a.GID == b.GID &&
		a.Size == b.Size && a.Target() == b.Target() && a.Major() == b.Major() && a.Minor() == b.Minor() &&
		xattrsEqual(a.Xattrs(), b.Xattrs())
}
