package squashfs

import (
	"bytes"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"math"
	"math/bits"
	"sync"
)

// mdWriter builds a table of metadata blocks (MetadataHeader + at most 8 KiB
// payload each), handing each finished block to emit. Refs are
// (compressed bytes emitted before the current block) << 16 | offset.
type mdWriter struct {
	codec   *codec
	cache   *blockCacheUse // nil: none
	buf     []byte
	emitted uint64   // bytes emitted so far: the relative start of the current block
	starts  []uint64 // relative start of every emitted block
	emit    func([]byte) error
	scratch []byte
	rec     []byte
	par     *mdParallel // nil: each block compressed and emitted at flush
}

func newMdWriter(c *codec, cache *blockCacheUse, emit func([]byte) error) *mdWriter {
	return &mdWriter{codec: c, cache: cache, buf: make([]byte, 0, MetadataSize), emit: emit}
}

// mdParallel compresses an mdWriter's blocks on several goroutines (or
// checks them against the block cache: an xz hit is a decompression) and
// emits them in order: the image is the same. A block's compressed start
// is known only once every block before it is compressed, so such a
// writer's positions are taken with upos and turned into refs by resolve.
type mdParallel struct {
	jobs    chan *mdJob
	pending []*mdJob // flushed, not yet emitted, in order
	flushed int      // blocks flushed
	wg      sync.WaitGroup
}

type mdJob struct {
	raw, out []byte
	comp     bool
	err      error
	done     chan struct{}
}

// newParallelMdWriter is newMdWriter compressing on workers goroutines (1
// or less: newMdWriter). Call stop when done with it, also after an error.
func newParallelMdWriter(c *codec, cache *blockCacheUse, workers int, emit func([]byte) error) *mdWriter {
	m := newMdWriter(c, cache, emit)
	if workers <= 1 || c.comp == CompNone {
		return m
	}
	queue, batch := 2*workers, 1
	if cache.batches() {
		queue, batch = maxBatch*workers, maxBatch // compressPool.workBatches
	}
	m.par = &mdParallel{jobs: make(chan *mdJob, queue)}
	for range workers {
		m.par.wg.Add(1)
		go func() {
			defer m.par.wg.Done()
			compressQueued(m.par.jobs, batch, workers, cache, c,
				func(j *mdJob) blockJob { return blockJob{raw: j.raw} },
				func(j *mdJob, b *blockJob) {
					j.out, j.comp, j.err = b.out, b.comp, b.err
					close(j.done)
				})
		}()
	}
	return m
}

// stop ends a parallel writer's goroutines once the blocks given to them
// are compressed; the blocks not yet emitted are dropped.
func (m *mdWriter) stop() {
	if m.par != nil && m.par.jobs != nil {
		close(m.par.jobs)
		m.par.wg.Wait()
		m.par.jobs = nil
	}
}

// ref returns the reference of the next byte written. A parallel writer
// waits for every block flushed before.
func (m *mdWriter) ref() uint64 {
	if err := m.drain(true); err != nil {
		return 0 // the error comes again from the next flush
	}
	return InodeRef(m.emitted, uint16(len(m.buf)))
}

// upos returns the position of the next byte written, for resolve: the
// index of its block and its offset in it.
func (m *mdWriter) upos() uint64 { return m.offset() }

// resolve returns the reference of the byte at position u (from upos),
// waiting for the blocks before its own.
func (m *mdWriter) resolve(u uint64) (uint64, error) {
	k, off := u/MetadataSize, uint16(u%MetadataSize)
	if k >= uint64(len(m.starts)) {
		if err := m.drain(true); err != nil {
			return 0, err
		}
	}
	if k == uint64(len(m.starts)) {
		return InodeRef(m.emitted, off), nil
	}
	return InodeRef(m.starts[k], off), nil
}

// offset returns the uncompressed offset of the next byte written.
func (m *mdWriter) offset() uint64 {
	n := len(m.starts)
	if m.par != nil {
		n = m.par.flushed
	}
	return uint64(n)*MetadataSize + uint64(len(m.buf))
}

// blockStart returns the relative start of the block holding uncompressed
// offset u (which must be before offset()).
func (m *mdWriter) blockStart(u uint64) uint64 {
	k := u / MetadataSize
	if k == uint64(len(m.starts)) {
		return m.emitted
	}
	return m.starts[k]
}

func (m *mdWriter) write(p []byte) error {
	for len(p) > 0 {
		n := copy(m.buf[len(m.buf):MetadataSize], p)
		m.buf = m.buf[:len(m.buf)+n]
		p = p[n:]
		if len(m.buf) == MetadataSize {
			if err := m.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

// flush emits the current block, if it holds anything (a parallel writer
// hands it to its goroutines and emits the blocks done so far; finish
// emits the rest).
func (m *mdWriter) flush() error {
	if len(m.buf) == 0 {
		return nil
	}
	if p := m.par; p != nil {
		j := &mdJob{raw: bytes.Clone(m.buf), done: make(chan struct{})}
		p.pending = append(p.pending, j)
		p.flushed++
		p.jobs <- j
		m.buf = m.buf[:0]
		return m.drain(false)
	}
	out, comp, err := m.cache.compress(m.codec, m.scratch, m.buf)
	if err != nil {
		return err
	}
	if comp {
		m.scratch = out[:0]
	}
	if err := m.emitBlock(out, comp); err != nil {
		return err
	}
	m.buf = m.buf[:0]
	return nil
}

// finish flushes the current block and emits every block.
func (m *mdWriter) finish() error {
	if err := m.flush(); err != nil {
		return err
	}
	return m.drain(true)
}

// drain emits a parallel writer's blocks that are done, in order: all of
// them when all is set, else those done so far (waiting while more than
// the goroutines' queue are pending).
func (m *mdWriter) drain(all bool) error {
	p := m.par
	if p == nil {
		return nil
	}
	for len(p.pending) > 0 {
		j := p.pending[0]
		if !all && len(p.pending) <= cap(p.jobs) {
			select {
			case <-j.done:
			default:
				return nil
			}
		}
		<-j.done
		if j.err != nil {
			return j.err
		}
		if err := m.emitBlock(j.out, j.comp); err != nil {
			return err
		}
		p.pending[0] = nil
		p.pending = p.pending[1:]
	}
	return nil
}

// emitBlock emits one block: its header and stored bytes.
func (m *mdWriter) emitBlock(out []byte, comp bool) error {
	m.rec = MetadataHeader{Size: uint16(len(out)), Uncompressed: !comp}.appendTo(m.rec[:0])
	m.rec = append(m.rec, out...)
	if err := m.emit(m.rec); err != nil {
		return err
	}
	m.starts = append(m.starts, m.emitted)
	m.emitted += uint64(len(m.rec))
	return nil
}

// holder returns the node carrying the inode of directory entry n.
func (w *Writer) holder(n *node) *node {
	if n.kind == kindLink {
		return w.node(w.ext(n).link)
	}
	return n
}

// holderID is holder by node id.
func (w *Writer) holderID(id uint32) uint32 {
	if n := w.node(id); n.kind == kindLink {
		return w.ext(n).link
	}
	return id
}

func (n *node) basicType() InodeType {
	switch n.kind {
	case kindDir:
		return TypeDir
	case kindReg:
		return TypeReg
	case kindSymlink:
		return TypeSymlink
	case kindBlock:
		return TypeBlockDev
	case kindChar:
		return TypeCharDev
	case kindFifo:
		return TypeFifo
	}
	return TypeSocket
}

// tableState holds what Close computes before writing the tables.
type tableState struct {
	w       *Writer
	order   []uint32 // inode holders (node ids) by inode number
	ids     []uint32
	idIndex map[uint32]uint16
	// store holds the xattr sets; xsetAt are the distinct ones' offsets
	// in it, by xattr id.
	store  *xattrStore
	xsetAt []uint64
	// xsetByHash finds a set's id by the set's hash: the first id with
	// that hash; xsetNext[id] is the next (id+1; 0: none). A signed
	// file's set is its own, so this is one small entry per file.
	xsetByHash map[uint64]uint32
	xsetNext   []uint32
	// shared holds the bytes of the sets found again (by id), so a set
	// that many files share is read back from the store once.
	shared map[uint32][]byte
	seed   maphash.Seed

	// The xattr table (writeXattrs): next is how many nodes of order have
	// their xattr id; kv builds the key/value table, values finds values
	// stored before, xids are the XattrID records (positions in kv until
	// resolved). With Writer.ahead, kv's blocks go to kvOut while the
	// data is written; err is the first error there (errAheadStopped
	// once stopped).
	next   int
	kv     *mdWriter
	values *valueRefs
	xids   []byte
	kvOut  *xattrStore
	err    error
	b      []byte
	set    []storedXattr
}

func newTableState(w *Writer) *tableState {
	return &tableState{w: w, idIndex: make(map[uint32]uint16), store: &w.xattrs,
		shared: make(map[uint32][]byte), seed: maphash.MakeSeed()}
}

// errAheadStopped: the xattr table built ahead was dropped (WriteData
// failed, or Close).
var errAheadStopped = errors.New("squashfs: the image is not being written any more")

// aheadMaxLater is the most entries with XattrsLater for which the xattr
// table is built while the data is written (a variable for tests). The
// lookups of sets and values that Close would make at the end (about 130
// bytes a file) are then held beside the data's: at a million files
// (ECDSA P-256, zstd-3) the peak live heap was 474 MB against 345 MB and
// the peak RSS 623 against 465 MiB, over the 512 MiB the issue 22 goal
// allows; 50,000 files need 6 MB.
var aheadMaxLater = 1 << 18

// startAhead starts building the xattr table while the data is written
// (Entry.XattrsLater), with w.mu held after prepare: the inode order is
// final, and so are the xattrs of every node not waiting for SetXattrs.
func (w *Writer) startAhead() error {
	t := newTableState(w)
	t.kvOut = &xattrStore{dir: w.xattrs.dir, fallback: w.xattrs.fallback}
	if err := t.walk(rootID); err != nil {
		return err
	}
	t.startKV(w, func(b []byte) error { _, err := t.kvOut.add(b); return err })
	w.ahead = t
	return t.advance(false)
}

// startKV starts the key/value table, its blocks going to emit.
func (t *tableState) startKV(w *Writer, emit func([]byte) error) {
	t.kv = newParallelMdWriter(w.codec, w.cache, w.opts.Compressors, emit)
	t.values = newValueRefs(t.store, cap(t.xsetAt))
}

// advance gives the nodes of order their xattr ids, in order, up to the
// first one waiting for SetXattrs (all: to the end), and with the table
// built ahead adds each new set to it.
func (t *tableState) advance(all bool) error {
	if t.err != nil {
		return t.err
	}
	for ; t.next < len(t.order); t.next++ {
		n := t.w.node(t.order[t.next])
		if !all && n.later {
			return nil
		}
		set, off, err := t.store.setOf(n.xattr)
		if err != nil {
			t.err = err
			return err
		}
		ids := len(t.xsetAt)
		if n.xattr, err = t.xattrID(set, off); err != nil {
			t.err = err
			return err
		}
		if len(t.xsetAt) > ids && t.kv != nil {
			if err := t.addSet(set, off); err != nil {
				t.err = err
				return err
			}
		}
	}
	return nil
}

// stop ends building the table ahead (t may be nil).
func (t *tableState) stop() {
	if t == nil || t.err == errAheadStopped {
		return
	}
	t.err = errAheadStopped
	if t.kv != nil {
		t.kv.stop()
	}
	if t.kvOut != nil {
		t.kvOut.close()
	}
}

func (t *tableState) id(v uint32) (uint16, error) {
	if i, ok := t.idIndex[v]; ok {
		return i, nil
	}
	if len(t.ids) >= 1<<16 {
		return 0, fmt.Errorf("squashfs: more than 65536 distinct uids and gids")
	}
	i := uint16(len(t.ids))
	t.idIndex[v] = i
	t.ids = append(t.ids, v)
	return i, nil
}

// xattrID returns the id of the set set (encoded, stored at off), a new one
// if no earlier set is equal.
func (t *tableState) xattrID(set []byte, off uint64) (uint32, error) {
	if len(set) == 0 {
		return InvalidXattr, nil
	}
	k := maphash.Bytes(t.seed, set)
	if collideHashes {
		k = 0
	}
	first, ok := t.xsetByHash[k]
	if ok {
		for id := first; ; {
			old, seen := t.shared[id]
			if !seen {
				var err error
				if old, err = t.store.getAt(t.xsetAt[id]); err != nil {
					return 0, err
				}
			}
			if bytes.Equal(old, set) {
				if !seen {
					t.shared[id] = bytes.Clone(set)
				}
				return id, nil
			}
			if t.xsetNext[id] == 0 {
				break
			}
			id = t.xsetNext[id] - 1
		}
	}
	id := uint32(len(t.xsetAt))
	t.xsetAt = append(t.xsetAt, off)
	t.xsetNext = append(t.xsetNext, 0)
	if ok {
		t.xsetNext[id] = t.xsetNext[first] // after first in its chain
		t.xsetNext[first] = id + 1
	} else {
		t.xsetByHash[k] = id
	}
	return id, nil
}

// writeTables is Close's work, with w.mu held and the data written: the
// inode and directory tables, the fragment, export, id and xattr tables, the
// padding and the superblock, in that order.
func (w *Writer) writeTables() (Stats, error) {
	t := w.ahead
	if t == nil {
		t = newTableState(w)
	}
	if err := t.number(w.owners); err != nil {
		return Stats{}, err
	}
	w.xattrs.at = nil // the sets are numbered
	t.xsetByHash, t.xsetNext, t.shared = nil, nil, nil
	var sb Superblock
	var err error
	sb.InodeTableStart, sb.DirectoryTableStart, err = w.writeInodesAndDirs(t)
	if err != nil {
		return Stats{}, err
	}
	if sb.FragmentTableStart, err = w.writeFragmentTable(); err != nil {
		return Stats{}, err
	}
	sb.ExportTableStart = InvalidBlock
	if !w.opts.NoExport {
		if sb.ExportTableStart, err = w.writeExportTable(t); err != nil {
			return Stats{}, err
		}
	}
	if sb.IDTableStart, err = w.writeIDTable(t); err != nil {
		return Stats{}, err
	}
	if sb.XattrIDTableStart, err = w.writeXattrs(t); err != nil {
		return Stats{}, err
	}
	w.fillSuperblock(&sb, t)
	if err := w.finishImage(sb); err != nil {
		return Stats{}, err
	}
	st := Stats{Inodes: sb.Inodes, Fragments: sb.Fragments, Duplicates: w.dups, BytesUsed: sb.BytesUsed}
	if u := w.cache; u != nil {
		u.mu.Lock()
		st.CacheHits, st.CacheMisses, st.CacheRejected = u.hits, u.misses, u.rejections
		u.mu.Unlock()
	}
	return st, nil
}

// number gives inode numbers in the order inodes are written: depth first,
// a directory's entries by name (a subdirectory's whole subtree in its
// place), each directory after its entries, so the root is last. It counts
// links and subdirectories, and indexes the ids (of owners, by node.own)
// and xattr sets (those advance did not reach while the data was written).
func (t *tableState) number(owners []owner) error {
	if t.order == nil {
		if err := t.walk(rootID); err != nil {
			return err
		}
	}
	for _, id := range t.order {
		n := t.w.node(id)
		if _, err := t.id(owners[n.own].uid); err != nil {
			return err
		}
		if _, err := t.id(owners[n.own].gid); err != nil {
			return err
		}
	}
	return t.advance(true)
}

// walk numbers the inodes (number) and sizes the xattr sets' lookups.
func (t *tableState) walk(root uint32) error {
	w := t.w
	var walk func(id uint32)
	walk = func(id uint32) {
		d := w.node(id)
		subdir := uint32(0)
		for _, c := range w.children(d) {
			if w.node(c).kind == kindDir {
				walk(c)
				subdir++
				continue
			}
			hid := w.holderID(c)
			h := w.node(hid)
			if h.ino == 0 {
				t.order = append(t.order, hid)
				h.ino = uint32(len(t.order))
			}
			h.nlink++
		}
		t.order = append(t.order, id)
		d.ino = uint32(len(t.order))
		d.nlink = 2 + subdir
	}
	walk(root)
	if uint64(len(t.order)) >= math.MaxUint32 {
		return fmt.Errorf("squashfs: too many inodes")
	}
	// As many sets as inodes with xattrs at most, each file's its own
	// when signed: sized once, not grown (and rehashed) a dozen times.
	sets := 0
	for _, id := range t.order {
		if n := w.node(id); n.xattr != 0 || n.later {
			sets++
		}
	}
	t.xsetByHash = make(map[uint64]uint32, sets)
	t.xsetAt, t.xsetNext = make([]uint64, 0, sets), make([]uint32, 0, sets)
	return nil
}

// inodeWriter writes the inode table straight to the image and builds the
// directory table in memory (it follows the inode table, and directory
// inodes need their listing's position first).
type inodeWriter struct {
	w       *Writer
	t       *tableState
	inodes  *mdWriter
	dirs    *mdWriter
	dirBuf  []byte
	written []bool // by inode number
	rec     []byte
}

// writeInodesAndDirs writes the inode table then the directory table and
// returns where each starts.
func (w *Writer) writeInodesAndDirs(t *tableState) (inodeStart, dirStart uint64, err error) {
	inodeStart = w.pos
	iw := &inodeWriter{w: w, t: t, inodes: newMdWriter(w.codec, w.cache, w.write), written: make([]bool, len(t.order)+1)}
	iw.dirs = newMdWriter(w.codec, w.cache, func(b []byte) error { iw.dirBuf = append(iw.dirBuf, b...); return nil })
	if err := iw.dir(w.root, uint32(len(t.order)+1)); err != nil {
		return 0, 0, err
	}
	if err := iw.inodes.flush(); err != nil {
		return 0, 0, err
	}
	if err := iw.dirs.flush(); err != nil {
		return 0, 0, err
	}
	dirStart = w.pos
	return inodeStart, dirStart, w.write(iw.dirBuf)
}

// inode writes n's inode: dirInode when given (a directory's), else the
// record inodeRecord makes.
func (iw *inodeWriter) inode(n *node, dirInode []byte) error {
	ref := iw.inodes.ref()
	iw.written[n.ino] = true
	var err error
	if dirInode != nil {
		iw.rec = dirInode
	} else if iw.rec, err = iw.w.inodeRecord(iw.rec[:0], n, iw.t); err != nil {
		return err
	}
	n.at = ref // the data start, read by inodeRecord, is not needed again
	return iw.inodes.write(iw.rec)
}

// dir writes the inodes of d's subtree, d's listing, then d's inode.
func (iw *inodeWriter) dir(d *node, parentIno uint32) error {
	w := iw.w
	for _, id := range w.children(d) {
		c := w.node(id)
		if c.kind == kindDir {
			if err := iw.dir(c, d.ino); err != nil {
				return err
			}
			continue
		}
		if h := w.holder(c); !iw.written[h.ino] {
			if err := iw.inode(h, nil); err != nil {
				return err
			}
		}
	}
	listRef := iw.dirs.ref()
	listOff := iw.dirs.offset()
	listing, index, err := iw.w.listing(d)
	if err != nil {
		return err
	}
	if err := iw.dirs.write(listing); err != nil {
		return err
	}
	for i := range index {
		index[i].StartBlock = uint32(iw.dirs.blockStart(listOff + uint64(index[i].Index)))
	}
	b, err := iw.dirInode(d, parentIno, listRef, uint64(len(listing)), index)
	if err != nil {
		return err
	}
	return iw.inode(d, b)
}

// dirInode encodes directory d's inode: extended when it has a lookup index,
// xattrs or a listing too large for the basic one.
func (iw *inodeWriter) dirInode(d *node, parentIno uint32, listRef, listLen uint64, index []DirIndex) ([]byte, error) {
	blk, off := SplitRef(listRef)
	if blk > math.MaxUint32 {
		return nil, fmt.Errorf("squashfs: directory table larger than 4 GiB")
	}
	o := iw.w.owner(d)
	hdr := InodeHeader{Mode: o.mode, ModTime: d.mtime, Number: d.ino}
	hdr.UIDIndex, _ = iw.t.id(o.uid)
	hdr.GIDIndex, _ = iw.t.id(o.gid)
	size := listLen + dirSizeDotEntries
	if len(index) > 0 || size > math.MaxUint16 || d.xattr != InvalidXattr {
		hdr.Type = TypeExtDir
		in := ExtDirInode{InodeHeader: hdr, Nlink: d.nlink, FileSize: uint32(size), StartBlock: uint32(blk),
			Parent: parentIno, Offset: off, Xattr: d.xattr, Index: index}
		if size > math.MaxUint32 {
			return nil, perr(iw.w.pathOf(d), "directory listing too large")
		}
		return in.appendTo(nil), nil
	}
	hdr.Type = TypeDir
	in := DirInode{InodeHeader: hdr, StartBlock: uint32(blk), Nlink: d.nlink, FileSize: uint16(size), Offset: off, Parent: parentIno}
	return in.appendTo(nil), nil
}

// writeFragmentTable writes the fragment entries WriteData filled in.
func (w *Writer) writeFragmentTable() (uint64, error) {
	var recs []byte
	for i := range w.fragments {
		recs = w.fragments[i].appendTo(recs)
	}
	return w.writeLookupTable(recs, nil)
}

// writeExportTable writes every inode's reference, by inode number.
func (w *Writer) writeExportTable(t *tableState) (uint64, error) {
	recs := make([]byte, 0, 8*len(t.order))
	for _, id := range t.order {
		recs = le.AppendUint64(recs, w.node(id).at)
	}
	return w.writeLookupTable(recs, nil)
}

// writeIDTable writes the distinct uids and gids, by index.
func (w *Writer) writeIDTable(t *tableState) (uint64, error) {
	recs := make([]byte, 0, 4*len(t.ids))
	for _, id := range t.ids {
		recs = le.AppendUint32(recs, id)
	}
	return w.writeLookupTable(recs, nil)
}

// fillSuperblock sets everything but the table starts.
func (w *Writer) fillSuperblock(sb *Superblock, t *tableState) {
	sb.Magic, sb.Major, sb.Minor = Magic, VersionMajor, VersionMinor
	sb.Inodes, sb.ModTime = uint32(len(t.order)), uint32(w.opts.ModTime)
	sb.BlockSize, sb.Fragments = uint32(w.opts.BlockSize), uint32(len(w.fragments))
	sb.Compression, sb.IDs = w.codec.id(), uint16(len(t.ids))
	sb.RootInode, sb.BytesUsed = w.root.at, w.pos
	sb.Flags = FlagDuplicates | w.codec.flags()
	for sb.BlockLog = 0; 1<<sb.BlockLog < sb.BlockSize; sb.BlockLog++ {
	}
	if !w.opts.NoExport {
		sb.Flags |= FlagExportable
	}
	if w.opts.NoFragments {
		sb.Flags |= FlagNoFragments
	}
	if w.opts.TailEnds {
		sb.Flags |= FlagAlwaysFragments
	}
	if w.codec.options() != nil {
		sb.Flags |= FlagCompressorOptions
	}
}

// finishImage pads the image to 4 KiB as mksquashfs does, cuts what a
// rolled-back duplicate left past the end, and writes sb at offset 0.
func (w *Writer) finishImage(sb Superblock) error {
	if pad := (4096 - w.pos%4096) % 4096; pad > 0 {
		if err := w.write(make([]byte, pad)); err != nil {
			return err
		}
	}
	if err := w.flush(); err != nil {
		return err
	}
	end := w.pos
	if end < w.maxPos {
		if tr, ok := w.out.(interface{ Truncate(int64) error }); ok {
			if err := tr.Truncate(int64(end)); err != nil {
				return fmt.Errorf("squashfs: %w", err)
			}
		} else if err := w.write(make([]byte, w.maxPos-end)); err != nil { // no Truncate: zero the rest
			return err
		} else if err := w.flush(); err != nil {
			return err
		}
	}
	if _, err := w.out.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("squashfs: %w", err)
	}
	if _, err := w.out.Write(sb.appendTo(nil)); err != nil {
		return fmt.Errorf("squashfs: writing superblock: %w", err)
	}
	if _, err := w.out.Seek(int64(w.pos), io.SeekStart); err != nil {
		return fmt.Errorf("squashfs: %w", err)
	}
	return nil
}

// inodeRecord encodes the inode of a non-directory.
func (w *Writer) inodeRecord(b []byte, n *node, t *tableState) ([]byte, error) {
	o := w.owner(n)
	hdr := InodeHeader{Type: n.basicType(), Mode: o.mode, ModTime: n.mtime, Number: n.ino}
	hdr.UIDIndex, _ = t.id(o.uid)
	hdr.GIDIndex, _ = t.id(o.gid)
	ext := n.xattr != InvalidXattr
	if ext {
		hdr.Type += 7
	}
	switch n.kind {
	case kindReg:
		blocks := w.blocksOf(n)
		sparse := w.sparseBytes(n.size, blocks)
		if ext || n.nlink > 1 || n.size > math.MaxUint32 || n.at > math.MaxUint32 || sparse > 0 {
			hdr.Type = TypeExtReg
			in := ExtRegInode{InodeHeader: hdr, StartBlock: n.at, FileSize: uint64(n.size), Sparse: sparse,
				Nlink: n.nlink, Fragment: n.frag, Offset: n.fragOff, Xattr: n.xattr, Blocks: blocks}
			return in.appendTo(b), nil
		}
		in := RegInode{InodeHeader: hdr, StartBlock: uint32(n.at), Fragment: n.frag, Offset: n.fragOff,
			FileSize: uint32(n.size), Blocks: blocks}
		return in.appendTo(b), nil
	case kindSymlink:
		in := SymlinkInode{InodeHeader: hdr, Nlink: n.nlink, Target: []byte(w.ext(n).target), Xattr: n.xattr}
		return in.appendTo(b), nil
	case kindBlock, kindChar:
		in := DevInode{InodeHeader: hdr, Nlink: n.nlink, Rdev: w.ext(n).rdev, Xattr: n.xattr}
		return in.appendTo(b), nil
	case kindFifo, kindSocket:
		in := IPCInode{InodeHeader: hdr, Nlink: n.nlink, Xattr: n.xattr}
		return in.appendTo(b), nil
	}
	return nil, perr(w.pathOf(n), "internal: no inode for kind %d", n.kind)
}

// blockCount is the number of data blocks (block size words) of a regular
// file of size n: every stream item but a tail packed into a fragment.
func (w *Writer) blockCount(n int64) int {
	if n == 0 {
		return 0
	}
	count, tail := w.itemsOf(n)
	if tail {
		count--
	}
	return int(count)
}

// blocksOf returns regular file n's block list, once WriteData has
// committed it.
func (w *Writer) blocksOf(n *node) []uint32 {
	c := w.blockCount(n.size)
	if c == 0 {
		return nil
	}
	at := int(n.blockAt)
	return w.blockWords[at : at+c : at+c]
}

// sparseBytes is what a file of size n with these blocks does not store:
// the length of every all-zero block (size word 0; a stored block is never
// empty), as the ExtRegInode's sparse field counts it.
func (w *Writer) sparseBytes(n int64, blocks []uint32) uint64 {
	bs := int64(w.opts.BlockSize)
	var sparse uint64
	for i, b := range blocks {
		if b == 0 {
			sparse += uint64(min(bs, n-int64(i)*bs))
		}
	}
	return sparse
}

// listing encodes directory d's entries (headers and entries, as mksquashfs's
// add_dir does): a new header for every 256 entries, whenever the inode block
// changes or an inode number is out of the header's signed 16-bit reach, and
// before an entry would cross an 8 KiB boundary of the listing counted from
// the last index point; such a header also gets a DirIndex entry (its
// StartBlock is filled in by the caller).
func (w *Writer) listing(d *node) ([]byte, []DirIndex, error) {
	var (
		b        []byte
		index    []DirIndex
		hdrAt    = -1
		count    uint32
		hdrBlock uint64
		hdrIno   uint32
		base     int
	)
	for _, id := range w.children(d) {
		c := w.node(id)
		name := w.name(c)
		h := w.holder(c)
		blk, off := SplitRef(h.at)
		esize := DirEntrySize + len(name)
		delta := int64(h.ino) - int64(hdrIno)
		if hdrAt < 0 || count == DirHeaderMaxCount || blk != hdrBlock || delta > math.MaxInt16 || delta < math.MinInt16 ||
			len(b)+esize >= base+MetadataSize {
			if hdrAt >= 0 {
				le.PutUint32(b[hdrAt:], count-1)
				if len(b)+DirHeaderSize+esize >= base+MetadataSize {
					index = append(index, DirIndex{Index: uint32(len(b)), Name: name})
					base = len(b)
				}
			}
			if blk > math.MaxUint32 {
				return nil, nil, fmt.Errorf("squashfs: inode table larger than 4 GiB")
			}
			hdrAt, count, hdrBlock, hdrIno = len(b), 0, blk, h.ino
			hh := DirHeader{StartBlock: uint32(blk), InodeNumber: h.ino}
			b = hh.appendTo(b)
			delta = 0
		}
		e := DirEntry{Offset: off, InodeDelta: int16(delta), Type: h.basicType(), Name: name}
		b = e.appendTo(b)
		count++
	}
	if hdrAt >= 0 {
		le.PutUint32(b[hdrAt:], count-1)
	}
	return b, index, nil
}

// writeLookupTable writes records as metadata blocks followed by the u64
// image offsets of those blocks, and returns the offset of that list (the
// id, fragment and export tables' shape). pre, if not nil, is written just
// before the list (the xattr id table header).
func (w *Writer) writeLookupTable(records, pre []byte) (uint64, error) {
	var starts []uint64
	md := newMdWriter(w.codec, w.cache, func(b []byte) error {
		starts = append(starts, w.pos)
		return w.write(b)
	})
	if err := md.write(records); err != nil {
		return 0, err
	}
	if err := md.flush(); err != nil {
		return 0, err
	}
	at := w.pos
	list := pre
	for _, s := range starts {
		list = le.AppendUint64(list, s)
	}
	return at, w.write(list)
}

// collideHashes makes every xattr set and value hash 0 (tests: the image
// must not change).
var collideHashes = false

// valueRefs finds where an xattr value was first stored, as a map from
// the value's bytes would, in less memory (a signed file's security.ima is
// a value of its own): by a 64-bit hash of the value, the bytes compared
// with the value the entry points at in the xattr store; a value found
// again, and a value whose hash an earlier, different value has, goes in
// an exact map. The entries by hash are an open-addressing table of
// indexes (+1; 0: free, at most half full) into a list of entries: 40
// bytes a value at a million, where a map took about 87.
type valueRefs struct {
	store *xattrStore
	seed  maphash.Seed
	vals  []valueAt
	slots []uint32
	exact map[string]uint64
}

// valueAt is a stored value: its hash, where its bytes are in the xattr
// store, and its position in the table (mdWriter.upos).
type valueAt struct {
	hash, at, ref uint64
	n             uint32
}

// newValueRefs sizes its lookup for about sets values (a signed file's set
// holds one of its own).
func newValueRefs(s *xattrStore, sets int) *valueRefs {
	return &valueRefs{store: s, seed: maphash.MakeSeed(), vals: make([]valueAt, 0, sets),
		slots: make([]uint32, 1<<bits.Len(uint(2*max(sets, 8)))), exact: make(map[string]uint64)}
}

// lookup returns the index in vr.vals of the first value stored with hash,
// or -1, and the slot where it is or would go.
func (vr *valueRefs) lookup(hash uint64) (int, int) {
	mask := len(vr.slots) - 1
	for i := int(hash) & mask; ; i = (i + 1) & mask {
		j := int(vr.slots[i]) - 1
		if j < 0 || vr.vals[j].hash == hash {
			return j, i
		}
	}
}

// find returns the position of v if it was stored, and v's hash for add.
func (vr *valueRefs) find(v []byte) (ref uint64, seen bool, hash uint64, err error) {
	hash = maphash.Bytes(vr.seed, v)
	if collideHashes {
		hash = 0
	}
	j, _ := vr.lookup(hash)
	if j < 0 {
		return 0, false, hash, nil
	}
	at := vr.vals[j]
	if ref, ok := vr.exact[string(v)]; ok {
		return ref, true, hash, nil
	}
	if int(at.n) != len(v) {
		return 0, false, hash, nil
	}
	old, err := vr.store.valueAt(at.at, len(v))
	if err != nil || !bytes.Equal(old, v) {
		return 0, false, hash, err
	}
	vr.exact[string(v)] = at.ref
	return at.ref, true, hash, nil
}

// add records that v (stored at at in the xattr store, with the hash find
// gave) is in the table at position ref.
func (vr *valueRefs) add(hash uint64, v []byte, at, ref uint64) {
	j, slot := vr.lookup(hash)
	if j >= 0 || len(vr.vals) >= math.MaxUint32-1 {
		vr.exact[string(v)] = ref
		return
	}
	if 2*(len(vr.vals)+1) > len(vr.slots) {
		vr.slots = make([]uint32, 2*len(vr.slots))
		for k, e := range vr.vals {
			_, sl := vr.lookup(e.hash)
			vr.slots[sl] = uint32(k + 1)
		}
		_, slot = vr.lookup(hash)
	}
	vr.vals = append(vr.vals, valueAt{hash: hash, at: at, ref: ref, n: uint32(len(v))})
	vr.slots[slot] = uint32(len(vr.vals))
}

// writeXattrs writes the xattr key/value table, the xattr ids and the xattr
// id table (kernel fs/squashfs/xattr.c, xattr_id.c). A value already stored
// (longer than the 8-byte reference that replaces it) is stored once and
// referenced out of line, as mksquashfs does. Returns InvalidBlock when no
// inode has xattrs. The key/value table's refs are relative to its start,
// so one built ahead (Writer.ahead) is copied in as it is.
func (w *Writer) writeXattrs(t *tableState) (uint64, error) {
	if len(t.xsetAt) == 0 {
		return InvalidBlock, nil
	}
	kvStart := w.pos
	if t.kv == nil {
		// The table is most of the metadata of a signed image (a
		// signature per file): its blocks are compressed in parallel,
		// so positions (upos) are turned into refs once the blocks
		// before them are.
		t.startKV(w, w.write)
		defer t.kv.stop()
		for _, at := range t.xsetAt {
			enc, err := t.store.get(at)
			if err != nil {
				return 0, err
			}
			if err := t.addSet(enc, at); err != nil {
				return 0, err
			}
		}
	}
	if err := t.kv.finish(); err != nil {
		return 0, err
	}
	if t.kvOut != nil {
		if err := t.kvOut.copyTo(w.write); err != nil {
			return 0, err
		}
	}
	ids := t.xids
	for i := 0; i < len(ids); i += XattrIDSize { // positions to refs
		ref, err := t.kv.resolve(le.Uint64(ids[i:]))
		if err != nil {
			return 0, err
		}
		le.PutUint64(ids[i:], ref)
	}
	// The header goes right before the list of block offsets.
	hdr := XattrIDTable{TableStart: kvStart, IDs: uint32(len(t.xsetAt))}
	return w.writeLookupTable(ids, hdr.appendTo(nil))
}

// addSet adds the set enc (stored at at) to the key/value table: the next
// xattr id's.
func (t *tableState) addSet(enc []byte, at uint64) error {
	kv, values := t.kv, t.values
	var err error
	if t.set, err = decodeXattrs(t.set[:0], enc, at+uint64(uvarintLen(len(enc)))); err != nil {
		return err
	}
	pos := kv.upos()
	var size uint32
	b := t.b
	defer func() { t.b = b }()
	for _, x := range t.set {
		prefix, name, _ := splitXattrName(x.name)
		vpos, seen, hash, err := values.find(x.value)
		if err != nil {
			return err
		}
		key := XattrKey{Type: prefix, Name: name}
		if seen && len(x.value) > 8 {
			key.Type |= XattrValueOOL
		}
		b = key.appendTo(b[:0])
		if key.Type&XattrValueOOL != 0 {
			vref, err := kv.resolve(vpos)
			if err != nil {
				return err
			}
			v := XattrValue{Value: le.AppendUint64(nil, vref)}
			b = v.appendTo(b)
			if err := kv.write(b); err != nil {
				return err
			}
		} else {
			if err := kv.write(b); err != nil {
				return err
			}
			if !seen {
				values.add(hash, x.value, x.valueAt, kv.upos())
			}
			v := XattrValue{Value: x.value}
			b = v.appendTo(b[:0])
			if err := kv.write(b); err != nil {
				return err
			}
		}
		size += uint32(len(x.name)) + 1 + uint32(len(x.value))
	}
	id := XattrID{Ref: pos, Count: uint32(len(t.set)), Size: size}
	t.xids = id.appendTo(t.xids)
	return nil
}
