package squashfs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"math"
	"math/bits"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"
)

// The data pipeline of WriteData:
//
//	readers (Workers goroutines) take files in tree order, call Open once and
//	read them block by block; each block gets a global sequence number (known
//	in advance from the declared sizes) and may be read only inside a window
//	of W sequence numbers past the last committed one, so memory is bounded
//	and the lowest outstanding block can always make progress.
//	compressors (Compressors goroutines) compress full blocks and fragment blocks.
//	the committer (one goroutine) takes blocks in sequence order and writes
//	them, packs tails into fragment blocks in that order, and rolls back a
//	file whose content (SHA-256 and size) equals an earlier one's.
//
// Everything written, and where, is a function of the tree and the content
// only. Fragment blocks are written, in the order they were filled, before the
// next data block, so their positions are also fixed.

type itemKind uint8

const (
	itemData   itemKind = iota // a block to compress and write
	itemSparse                 // an all-zero block, stored as size 0
	itemTail                   // the end of a file, packed into a fragment
	itemEmpty                  // an empty file: no data, only its end
)

// item is one unit of the ordered stream: a block, a tail, or an empty file.
type item struct {
	file  int
	kind  itemKind
	last  bool
	raw   []byte // block content (pooled)
	out   []byte // what to store (compressed, or raw when not smaller)
	comp  bool
	sum   [sha256.Size]byte // content digest, on the last item
	err   error
	done  chan struct{} // closed when out is ready (and raw hashed: finish)
	frag  int           // fragment blocks: their index
	isFrg bool
	extra atomic.Int32 // finish calls before the one that closes done
}

// WriteData reads every regular file's content once, in tree order, in
// parallel, and writes the data and fragment blocks. It returns the first
// error (naming the file), after which the Writer is unusable. It must be
// called at most once, after all Add calls.
func (w *Writer) WriteData(ctx context.Context) error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return ErrClosed
	}
	if w.wroteData {
		w.mu.Unlock()
		return errors.New("squashfs: WriteData called twice")
	}
	w.wroteData = true
	err := w.prepare()
	if err == nil && w.later > 0 && w.later <= aheadMaxLater {
		err = w.startAhead()
	}
	if err != nil {
		w.failed = err
		w.ahead.stop()
		w.mu.Unlock()
		return err
	}
	w.mu.Unlock()
	err = w.runData(ctx)
	if err != nil {
		w.mu.Lock()
		w.failed = err
		w.ahead.stop()
		w.mu.Unlock()
	}
	return err
}

// itemsOf is the number of stream items of a file of size n, and whether its
// last one is a tail packed into a fragment.
func (w *Writer) itemsOf(n int64) (count int64, tail bool) {
	bs := int64(w.opts.BlockSize)
	if n == 0 {
		return 1, false
	}
	full := n / bs
	rest := n % bs
	if rest == 0 {
		return full, false
	}
	tail = !w.opts.NoFragments && (full == 0 || w.opts.TailEnds)
	return full + 1, tail
}

// planData marks the files that can be duplicates (only those whose size
// another file shares are hashed) and numbers their stream items; it returns
// the number of items and of candidates. A file's first item must be
// below 2^32 (node.firstSeq): 16 TiB of data at the smallest block size.
func (w *Writer) planData() (total int64, candidates int, err error) {
	sizes := make(map[int64]int32, len(w.files))
	for _, id := range w.files {
		sizes[w.node(id).size]++
	}
	for _, id := range w.files {
		f := w.node(id)
		f.set(dupCandidate, sizes[f.size] > 1 && f.size > 0)
		if f.is(dupCandidate) {
			candidates++
		}
		if total > math.MaxUint32 {
			return 0, 0, fmt.Errorf("squashfs: more than 2^32 data blocks")
		}
		f.firstSeq = uint32(total)
		n, _ := w.itemsOf(f.size)
		total += n
	}
	return total, candidates, nil
}

// windowSize is the number of items that may be in flight: enough to keep
// every worker busy, at most 32 MiB of blocks (but at least two per worker).
func windowSize(blockSize, workers int) int {
	window := max(16, 8*workers)
	if lim := (32 << 20) / blockSize; window > lim {
		window = max(lim, 2*workers+2)
	}
	return window
}

// pipelineDepth returns how many items the readers may hold ahead of the
// writing (the window, windowSize) and how many filled fragment blocks may
// wait for compression and writing (Options.FragmentsAhead, or its
// default).
func (w *Writer) pipelineDepth() (ahead, fragsAhead int) {
	all := w.opts.Compressors + max(0, w.opts.FragmentCompressors)
	ahead, fragsAhead = windowSize(w.opts.BlockSize, max(w.opts.Workers, all)), all+1
	if w.opts.FragmentsAhead > 0 {
		fragsAhead = w.opts.FragmentsAhead
	}
	return ahead, fragsAhead
}

func (w *Writer) runData(ctx context.Context) error {
	defer func() { w.sources, w.opens = nil, nil }()
	total, candidates, err := w.planData()
	if err != nil {
		return err
	}
	if total == 0 {
		return nil
	}
	bs := w.opts.BlockSize
	workers, compressors := w.opts.Workers, w.opts.Compressors
	g, ctx := errgroup.WithContext(ctx)
	all := compressors + max(0, w.opts.FragmentCompressors)
	ahead, fragsAhead := w.pipelineDepth()
	if w.cache.batches() {
		// A compressor holds up to maxBatch items and its queue as many
		// again: room for those beyond the window's own, or the readers
		// wait on a full window for the oldest item of a batch while the
		// other compressors have nothing queued.
		ahead += 2 * maxBatch * all
	}
	win := newWindow(ctx, ahead)
	defer win.stop()
	bufs := newBlockBuffers(bs, ahead+2*all+4+max(0, fragsAhead-all-1))
	if testBlockBuffers != nil {
		testBlockBuffers(bufs)
	}
	comp := startCompressors(ctx, w.codec, w.cache, bufs, compressors)
	defer comp.close()
	frags := comp
	if n := w.opts.FragmentCompressors; n > 0 {
		frags = startCompressors(ctx, w.codec, w.cache, bufs, n)
		defer frags.close()
	}

	rd := &blockReader{w: w, ctx: ctx, win: win, bufs: bufs, comp: comp, zero: make([]byte, bs), ready: make(chan struct{})}
	close(rd.ready)
	var next atomic.Int64
	for range workers {
		g.Go(func() error {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(w.files) {
					return nil
				}
				if err := rd.readFile(i, w.node(w.files[i])); err != nil {
					return err
				}
			}
		})
	}
	g.Go(func() error {
		c := committer{w: w, ctx: ctx, comp: frags, bufs: bufs,
			dedup: newDupTable(w, candidates), maxPending: fragsAhead}
		return c.run(win, total)
	})
	return g.Wait()
}

// window is the bounded, ordered hand-off from the readers to the
// committer: item seq goes into slot seq mod size, and may be read only once
// every item before seq-size has been committed. The lowest outstanding item
// can therefore always be read, and at most size items are in memory.
type window struct {
	ctx       context.Context
	ring      []chan *item
	mu        sync.Mutex
	admit     *sync.Cond
	committed int64 // items committed so far
	// next is the lowest item a reader waits to read (math.MaxInt64: none
	// waits). advance wakes the readers only once it is admitted, not at
	// every commit: the reader waiting for the next file's first item was
	// woken by each commit of the file before it, to sleep again.
	next  int64
	wakes int // times advance woke the readers (a test's count)
	stop  func() bool
}

func newWindow(ctx context.Context, size int) *window {
	win := &window{ctx: ctx, ring: make([]chan *item, size), next: math.MaxInt64}
	for i := range win.ring {
		win.ring[i] = make(chan *item, 1)
	}
	win.admit = sync.NewCond(&win.mu)
	// a cancelled build wakes every reader waiting for admission
	win.stop = context.AfterFunc(ctx, func() {
		win.mu.Lock()
		win.admit.Broadcast()
		win.mu.Unlock()
	})
	return win
}

// wait blocks until item seq may be read.
func (win *window) wait(seq int64) error {
	win.mu.Lock()
	defer win.mu.Unlock()
	for seq >= win.committed+int64(len(win.ring)) {
		if err := win.ctx.Err(); err != nil {
			return err
		}
		win.next = min(win.next, seq)
		win.admit.Wait()
	}
	return win.ctx.Err()
}

// put hands item seq to the committer.
func (win *window) put(seq int64, it *item) error {
	select {
	case win.ring[seq%int64(len(win.ring))] <- it:
		return nil
	case <-win.ctx.Done():
		return win.ctx.Err()
	}
}

// take returns item seq once it is ready (compressed, if it is a block).
func (win *window) take(seq int64) (*item, error) {
	var it *item
	select {
	case it = <-win.ring[seq%int64(len(win.ring))]:
	case <-win.ctx.Done():
		return nil, win.ctx.Err()
	}
	select {
	case <-it.done:
	case <-win.ctx.Done():
		return nil, win.ctx.Err()
	}
	return it, nil
}

// advance records one more committed item, admitting one more read.
func (win *window) advance() {
	win.mu.Lock()
	win.committed++
	if win.next < win.committed+int64(len(win.ring)) {
		// every waiter wakes; those still not admitted set next again
		win.next = math.MaxInt64
		win.wakes++
		win.admit.Broadcast()
	}
	win.mu.Unlock()
}

// blockBuffers pools the block-sized buffers: raw content (owned by an item
// from its read to its commit, or a fragment block from its first tail to
// its commit) and compressed output (owned by an item from its compression
// to its commit).
type blockBuffers struct {
	raw, out freeList
}

// newBlockBuffers keeps up to keep buffers of each kind: as many as can be
// in flight (the window, the compressors' queue, the pending fragments).
func newBlockBuffers(bs, keep int) *blockBuffers {
	return &blockBuffers{
		raw: freeList{list: make(chan []byte, keep), new: func() []byte { return make([]byte, bs) }},
		out: freeList{list: make(chan []byte, keep), new: func() []byte { return make([]byte, 0, bs+bs/8+1024) }},
	}
}

// testBlockBuffers, when set by a test, is given WriteData's buffers.
var testBlockBuffers func(*blockBuffers)

func (b *blockBuffers) getRaw(n int) []byte { return b.raw.get()[:n] }
func (b *blockBuffers) putRaw(p []byte)     { b.raw.put(p[:cap(p)]) }

// freeList keeps buffers for reuse across garbage collections, which a
// sync.Pool does not: it dropped its blocks at every collection, so a build
// of 100,000 small files allocated 960 MB of block buffers for 460 MB of
// data, and that garbage drove most collections.
type freeList struct {
	list chan []byte
	new  func() []byte
	made atomic.Int64 // buffers new made (a test's count)
}

func (f *freeList) get() []byte {
	select {
	case b := <-f.list:
		return b
	default:
		f.made.Add(1)
		return f.new()
	}
}

func (f *freeList) put(b []byte) {
	select {
	case f.list <- b:
	default: // enough kept: the collector takes it
	}
}

// compressPool is the pool of goroutines that compress submitted items
// (data blocks and fragment blocks), in any order, closing each item's done
// channel when its out is set.
type compressPool struct {
	ctx   context.Context
	codec *codec
	cache *blockCacheUse // nil: none
	bufs  *blockBuffers
	jobs  chan *item
	wg    sync.WaitGroup

	workers int
}

func startCompressors(ctx context.Context, c *codec, cache *blockCacheUse, bufs *blockBuffers, workers int) *compressPool {
	queue := workers
	if cache.batches() {
		queue = maxBatch * workers
	}
	p := &compressPool{ctx: ctx, codec: c, cache: cache, bufs: bufs, jobs: make(chan *item, queue), workers: workers}
	for range workers {
		p.wg.Add(1)
		go p.work()
	}
	return p
}

func (p *compressPool) work() {
	defer p.wg.Done()
	if p.cache.batches() {
		p.workBatches()
		return
	}
	for it := range p.jobs {
		p.compress(it)
		it.finish()
	}
}

// workBatches is work taking up to maxBatch queued items at once, so that
// their cache checks go into C together (blockCacheUse.compressAll). It
// never waits for more: what the queue holds when the first is taken.
func (p *compressPool) workBatches() {
	compressQueued(p.jobs, maxBatch, p.workers, p.cache, p.codec,
		func(it *item) blockJob { return blockJob{dst: p.bufs.out.get(), raw: it.raw} },
		func(it *item, j *blockJob) {
			it.out, it.comp, it.err = j.out, j.comp, j.err
			p.keepUnused(j.dst, j.comp)
			it.finish()
		})
}

// compressQueued is a compressor's loop over ch (the data blocks'
// compressPool, the metadata's mdParallel): each value taken, with what
// ch holds then up to max (takeQueued), is compressed together through
// cache (compressAll: the xz checks of their hits in one call). job makes
// a value's blockJob; done hands the value its results.
func compressQueued[T any](ch <-chan T, max, workers int, cache *blockCacheUse, c *codec, job func(T) blockJob, done func(T, *blockJob)) {
	var batch []T
	var jobs []blockJob
	for v := range ch {
		batch = takeQueued(ch, append(batch[:0], v), max, workers)
		jobs = jobs[:0]
		for _, v := range batch {
			jobs = append(jobs, job(v))
		}
		cache.compressAll(c, jobs)
		for i, v := range batch {
			done(v, &jobs[i])
		}
		clear(jobs)
		clear(batch)
	}
}

// takeQueued appends to batch what ch holds now, up to max in all, without
// waiting, and leaving the other workers of ch their share.
func takeQueued[T any](ch <-chan T, batch []T, max, workers int) []T {
	max = min(max, len(batch)+len(ch)/workers)
	for len(batch) < max {
		select {
		case v, ok := <-ch:
			if !ok {
				return batch
			}
			batch = append(batch, v)
		default:
			return batch
		}
	}
	return batch
}

// finish records that one of the item's users is done with it (its
// compressor, its hashBehind); the last one closes done.
func (it *item) finish() {
	if it.extra.Add(-1) < 0 {
		close(it.done)
	}
}

// compress sets it.out, it.comp and it.err.
func (p *compressPool) compress(it *item) {
	dst := p.bufs.out.get()
	it.out, it.comp, it.err = p.cache.compress(p.codec, dst, it.raw)
	p.keepUnused(dst, it.comp)
}

// keepUnused returns dst, the output buffer a block was compressed into, to
// the pool when the block is stored uncompressed (comp false: it did not
// shrink, or failed, or was a cache hit stored raw). Its out is then the raw
// block, never dst's storage, so dst is free; the committer gives back only
// the buffers of compressed blocks. Without this every block that did not
// shrink lost its buffer (147 KiB at a block size of 128 KiB) to the
// collector, and the next block got a new one to fault in.
func (p *compressPool) keepUnused(dst []byte, comp bool) {
	if !comp {
		p.bufs.out.put(dst[:0])
	}
}

// submit queues it for compression.
func (p *compressPool) submit(it *item) error {
	select {
	case p.jobs <- it:
		return nil
	case <-p.ctx.Done():
		return p.ctx.Err()
	}
}

// close stops the pool once the queued items are compressed.
func (p *compressPool) close() {
	close(p.jobs)
	p.wg.Wait()
}

// blockReader is what the reader goroutines share: each reads whole files,
// in tree order of their first item, into the window.
type blockReader struct {
	w     *Writer
	ctx   context.Context
	win   *window
	bufs  *blockBuffers
	comp  *compressPool
	zero  []byte        // an all-zero block, to detect sparse ones
	ready chan struct{} // closed: the done of items needing no compression
}

// readFile streams file i into the window.
func (rd *blockReader) readFile(i int, f *node) (err error) {
	w, win := rd.w, rd.win
	name := func() string { return w.pathOf(f) }
	n, tail := w.itemsOf(f.size)
	first := int64(f.firstSeq)
	if err := win.wait(first); err != nil {
		return err
	}
	var h hash.Hash = nopHash{}
	// The file is opened here, not through a function value made for
	// it: with an opener (a build) nothing is allocated for the open.
	var r io.ReadCloser
	if src := w.sources[i]; src < 0 {
		open := w.opens[-1-src]
		w.opens[-1-src] = nil // read once: what it holds is not kept until Close
		if open == nil {
			it := &item{file: i, kind: itemEmpty, last: true, done: rd.ready}
			h.Sum(it.sum[:0])
			return win.put(first, it)
		}
		r, err = open()
	} else {
		r, err = w.opener.OpenFile(src)
	}
	if err != nil {
		return &PathError{Path: name(), Err: err}
	}
	if f.is(dupCandidate) {
		// A reader that hashes with SHA-256 gives its digest: no
		// hash of the writer's (112 bytes a file) is made for it.
		if cs, ok := r.(ContentSHA256); ok && cs.HashesSHA256() {
			h = readerSHA256{cs}
		} else {
			h = sha256.New()
		}
	}
	defer func() {
		if cerr := r.Close(); cerr != nil && err == nil {
			err = &PathError{Path: name(), Err: cerr}
		}
	}()
	// A large file's SHA-256 is computed beside the reads (hashBehind),
	// when its reader lets the writer make it; the reader is closed
	// (deferred above) only after the last block has been hashed.
	var hb *hashBehind
	if t, ok := r.(SHA256Taker); ok && f.size >= hashBehindMin && t.TakeSHA256() {
		hb = startHashBehind(rd.ctx, t, len(win.ring))
		defer hb.stop()
		h = nopHash{}
	}
	bs := int64(w.opts.BlockSize)
	if f.size == 0 {
		var one [1]byte
		if k, _ := io.ReadFull(r, one[:]); k != 0 {
			return &PathError{Path: name(), Err: fmt.Errorf("%w: content longer than the declared 0 bytes", ErrSizeMismatch)}
		}
		it := &item{file: i, kind: itemEmpty, last: true, done: rd.ready}
		h.Sum(it.sum[:0])
		return win.put(first, it)
	}
	for b := int64(0); b < n; b++ {
		seq := first + b
		if err := win.wait(seq); err != nil {
			return err
		}
		size := min(bs, f.size-b*bs)
		raw := rd.bufs.getRaw(int(size))
		if k, err := io.ReadFull(r, raw); err != nil {
			rd.bufs.putRaw(raw)
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return &PathError{Path: name(), Err: fmt.Errorf("%w: content ended after %d bytes, %d declared", ErrSizeMismatch, b*bs+int64(k), f.size)}
			}
			return &PathError{Path: name(), Err: err}
		}
		h.Write(raw)
		it := &item{file: i, raw: raw, last: b == n-1}
		if it.last {
			var one [1]byte
			k, err := io.ReadFull(r, one[:])
			if k != 0 {
				rd.bufs.putRaw(raw)
				return &PathError{Path: name(), Err: fmt.Errorf("%w: content longer than the declared %d bytes", ErrSizeMismatch, f.size)}
			}
			if err != nil && err != io.EOF {
				rd.bufs.putRaw(raw)
				return &PathError{Path: name(), Err: err}
			}
			h.Sum(it.sum[:0])
		}
		switch {
		case it.last && tail:
			it.kind, it.done = itemTail, rd.ready
		case bytes.Equal(raw, rd.zero[:size]):
			it.kind, it.done = itemSparse, rd.ready
		default:
			it.kind, it.done = itemData, make(chan struct{})
		}
		if hb != nil {
			// the committer waits for the hash too: raw is released
			// after the commit
			if it.kind == itemData {
				it.extra.Store(1)
			} else {
				it.done = make(chan struct{})
			}
			if err := hb.add(it); err != nil {
				return err
			}
		}
		if it.kind == itemData {
			if err := rd.comp.submit(it); err != nil {
				return err
			}
		}
		if err := win.put(seq, it); err != nil {
			return err
		}
	}
	return nil
}

// ContentSHA256 is a file's reader (Entry.Open) that hashes the bytes it
// returns, as a build does for the file's IMA digest: when HashesSHA256
// reports that it uses SHA-256, the writer takes SumSHA256, asked once the
// content has been read to its end (before Close), as the digest that finds
// duplicate files instead of hashing the same bytes again.
type ContentSHA256 interface {
	HashesSHA256() bool
	SumSHA256() [sha256.Size]byte
}

// SHA256Taker is a file's reader (Entry.Open) that can leave the SHA-256 of
// its content to the writer, as a build's reader does for a file's IMA
// digest: when TakeSHA256 returns true, the reader stops hashing the bytes
// Read returns, and the writer hashes every byte it reads from it (the
// bytes it compresses) and gives the digest of all n of them to SetSHA256
// before Close. The writer asks, once and before the first Read, only for
// files of at least hashBehindMin bytes, and hashes them on a goroutine
// beside the reads: the SHA-256 chain of a large file then runs beside its
// reads and the window instead of between them.
type SHA256Taker interface {
	TakeSHA256() bool
	SetSHA256(sum [sha256.Size]byte, n int64)
}

// hashBehindMin is the size from which a file is hashed beside its reads
// (SHA256Taker): a goroutine and a hand-off per block pay off only for large
// files (a tree of small files keeps its path).
const hashBehindMin = 4 << 20

// hashBehind hashes one file's blocks, in order, on a goroutine of its own,
// and finishes each item (the committer waits for it) once its raw content
// has been hashed. After the last block it gives the digest to the reader.
//
// It finishes the items it has hashed in groups (hashedBatch): the SHA-256
// chain is the slowest stage of a large file, so the committer waited on
// every block's hash, and each finished block woke it (and a thread for
// it) to write one block and admit one more read. Finishing up to
// hashedBatch blocks at once, and whatever is hashed whenever the queue
// runs dry or the file ends, wakes it once a group: on the 8 files of
// 64-256 MiB (scripts/bench-peer.sh, zstd-3), 40% fewer futex calls
// (about 4,400 against 7,400) and a quarter fewer context switches, 4% less
// CPU time (median 2.29 against 2.38 s, lower in 10 of 12 alternating
// pairs at load 6-10), the same image and record. The window (at least 16
// blocks, windowSize) lets the reads run that far ahead of the last block
// committed: with at most hashedBatch of them held hashed, the hash still
// has the rest queued when a group is handed on.
type hashBehind struct {
	ctx    context.Context
	t      SHA256Taker
	h      hash.Hash // SHA-256
	blocks chan *item
	done   chan struct{}
}

func startHashBehind(ctx context.Context, t SHA256Taker, depth int) *hashBehind {
	hb := &hashBehind{ctx: ctx, t: t, h: sha256.New(), blocks: make(chan *item, depth), done: make(chan struct{})}
	go hb.run()
	return hb
}

func (hb *hashBehind) run() {
	defer close(hb.done)
	h := hb.h
	var n int64
	hashed := make([]*item, 0, hashedBatch)
	finish := func() {
		for _, it := range hashed {
			it.finish()
		}
		hashed = hashed[:0]
	}
	for it := range hb.blocks {
		h.Write(it.raw)
		n += int64(len(it.raw))
		if it.last {
			h.Sum(it.sum[:0])
			hb.t.SetSHA256(it.sum, n)
		}
		hashed = append(hashed, it)
		// the next receive must not wait while hashed blocks are held
		if it.last || len(hashed) == hashedBatch || len(hb.blocks) == 0 {
			finish()
		}
	}
}

// hashedBatch is the most blocks hashBehind holds hashed before finishing
// them (128 KiB blocks: 1 MiB).
const hashedBatch = 8

// add queues the next block (it.raw, read and not written to again until
// the committer releases it).
func (hb *hashBehind) add(it *item) error {
	select {
	case hb.blocks <- it:
		return nil
	case <-hb.ctx.Done():
		return hb.ctx.Err()
	}
}

// stop waits until every block added has been hashed.
func (hb *hashBehind) stop() {
	close(hb.blocks)
	<-hb.done
}

// readerSHA256 is the hash.Hash of readFile for a ContentSHA256 reader:
// writes are dropped (the reader has hashed them), Sum is the reader's.
type readerSHA256 struct{ r ContentSHA256 }

func (readerSHA256) Write(p []byte) (int, error) { return len(p), nil }
func (h readerSHA256) Sum(b []byte) []byte {
	s := h.r.SumSHA256()
	return append(b, s[:]...)
}
func (readerSHA256) Reset()         {}
func (readerSHA256) Size() int      { return sha256.Size }
func (readerSHA256) BlockSize() int { return 64 }

// nopHash stands in for the digest of files that cannot be duplicates.
type nopHash struct{}

func (nopHash) Write(p []byte) (int, error) { return len(p), nil }
func (nopHash) Sum(b []byte) []byte         { return append(b, make([]byte, sha256.Size)...) }
func (nopHash) Reset()                      {}
func (nopHash) Size() int                   { return sha256.Size }
func (nopHash) BlockSize() int              { return 64 }

// dupTable finds an earlier file with the same content (SHA-256 and size),
// as a map from (digest, size) to the file would, in 40 bytes per file
// rather than about 110 (a million small files of few sizes are all
// candidates): the digests by file index (w.files), and an open-addressing
// table of file indexes (+1; 0: empty) at most half full, probed from the
// digest's first 8 bytes. Neither holds a pointer, so the garbage
// collector does not scan them: a reference per file to the digest the
// reader's owner kept (a string, 16 bytes instead of 32) was a pointer
// followed per file in every cycle.
type dupTable struct {
	w     *Writer             // its files (node ids): Writer.files
	sums  [][sha256.Size]byte // by file index; made at the first digest
	slots []uint32
}

func newDupTable(w *Writer, candidates int) *dupTable {
	t := &dupTable{w: w}
	if candidates > 0 {
		t.slots = make([]uint32, 1<<bits.Len(uint(2*candidates)))
	}
	return t
}

// find returns the index of the file recorded with sum and size, or -1,
// and the slot where such a file would go.
func (t *dupTable) find(sum *[sha256.Size]byte, size int64) (file, slot int) {
	mask := len(t.slots) - 1
	h := binary.LittleEndian.Uint64(sum[:8]) ^ uint64(size)*0x9e3779b97f4a7c15
	for i := int(h) & mask; ; i = (i + 1) & mask {
		j := int(t.slots[i]) - 1
		if j < 0 {
			return -1, i
		}
		if t.w.node(t.w.files[j]).size == size && t.sums[j] == *sum {
			return j, i
		}
	}
}

// add records file i, whose content has sum, at slot (from find).
func (t *dupTable) add(i int, sum *[sha256.Size]byte, slot int) {
	if t.sums == nil {
		t.sums = make([][sha256.Size]byte, len(t.w.files))
	}
	t.sums[i] = *sum
	t.slots[slot] = uint32(i + 1)
}

// committer is the ordered end of the pipeline, one goroutine: it owns the
// image's write offset, the fragment block being filled and the duplicate
// index.
type committer struct {
	w          *Writer
	ctx        context.Context
	comp       *compressPool // compresses the fragment blocks
	bufs       *blockBuffers
	dedup      *dupTable
	dups       int
	frag       []byte  // fragment block being filled
	pending    []*item // fragment blocks compressing, in fill order
	maxPending int
	cur        *node // file being committed
	wrote      bool  // cur has data blocks in the image
	tail       []byte
}

// run commits the total items in sequence order, then the last fragment
// block.
func (c *committer) run(win *window, total int64) error {
	for seq := int64(0); seq < total; seq++ {
		it, err := win.take(seq)
		if err != nil {
			return err
		}
		if err := c.commit(it); err != nil {
			return err
		}
		win.advance()
	}
	if err := c.flushFragment(); err != nil {
		return err
	}
	if err := c.drain(0); err != nil {
		return err
	}
	c.w.dups = c.dups
	return nil
}

// commit writes one item (or keeps a tail for the fragment block).
func (c *committer) commit(it *item) error {
	w := c.w
	if it.err != nil {
		return &PathError{Path: w.pathOf(w.node(w.files[it.file])), Err: it.err}
	}
	f := w.node(w.files[it.file])
	if c.cur != f {
		c.cur, c.wrote, c.tail = f, false, nil
		f.frag = InvalidFragment
		if len(w.blockWords) > math.MaxUint32 {
			return fmt.Errorf("squashfs: more than 2^32 data blocks")
		}
		f.blockAt = uint32(len(w.blockWords))
		if it.kind == itemData || it.kind == itemSparse {
			// fragment blocks filled so far go first, so that this file's
			// blocks are contiguous and last (for a roll-back)
			if err := c.drain(0); err != nil {
				return err
			}
			f.at = w.pos
		}
	}
	switch it.kind {
	case itemData:
		if err := w.write(it.out); err != nil {
			return err
		}
		w.blockWords = append(w.blockWords, uint32(MakeBlockSizeWord(len(it.out), it.comp)))
		c.wrote = true
	case itemSparse:
		w.blockWords = append(w.blockWords, 0)
	case itemTail:
		c.tail = it.raw
	}
	if it.last {
		gi, slot := -1, 0
		if f.is(dupCandidate) {
			gi, slot = c.dedup.find(&it.sum, f.size)
		}
		if gi >= 0 {
			g := w.node(w.files[gi])
			if c.wrote {
				if err := w.seekTo(f.at); err != nil {
					return err
				}
			}
			// this file's blocks are the last listed: drop them too
			w.blockWords = w.blockWords[:f.blockAt]
			f.at, f.blockAt, f.frag, f.fragOff = g.at, g.blockAt, g.frag, g.fragOff
			c.dups++
		} else {
			if f.is(dupCandidate) {
				c.dedup.add(it.file, &it.sum, slot)
			}
			if c.tail != nil {
				if err := c.pack(f, c.tail); err != nil {
					return err
				}
			}
		}
		c.cur, c.tail = nil, nil
	}
	if it.kind != itemTail || it.last {
		c.release(it)
	}
	return nil
}

func (c *committer) release(it *item) {
	if it.raw != nil {
		c.bufs.putRaw(it.raw)
		it.raw = nil
	}
	if it.kind == itemData && it.out != nil && it.comp {
		c.bufs.out.put(it.out[:0])
	}
	it.out = nil
}

// pack appends a tail to the fragment block being filled.
func (c *committer) pack(f *node, tail []byte) error {
	bs := c.w.opts.BlockSize
	if len(c.frag)+len(tail) > bs {
		if err := c.flushFragment(); err != nil {
			return err
		}
	}
	if c.frag == nil {
		c.frag = c.bufs.getRaw(0)
	}
	f.frag = uint32(len(c.w.fragments))
	f.fragOff = uint32(len(c.frag))
	c.frag = append(c.frag, tail...)
	return nil
}

// flushFragment sends the fragment block being filled to the compressors.
func (c *committer) flushFragment() error {
	if len(c.frag) == 0 {
		return nil
	}
	it := &item{raw: c.frag, done: make(chan struct{}), isFrg: true, frag: len(c.w.fragments)}
	c.w.fragments = append(c.w.fragments, FragmentEntry{})
	c.frag = nil
	if err := c.comp.submit(it); err != nil {
		return err
	}
	c.pending = append(c.pending, it)
	return c.drain(c.maxPending)
}

// drain writes pending fragment blocks, oldest first, until at most keep
// remain.
func (c *committer) drain(keep int) error {
	for len(c.pending) > keep {
		it := c.pending[0]
		select {
		case <-it.done:
		case <-c.ctx.Done():
			return c.ctx.Err()
		}
		if it.err != nil {
			return it.err
		}
		c.w.fragments[it.frag] = FragmentEntry{StartBlock: c.w.pos, Size: MakeBlockSizeWord(len(it.out), it.comp)}
		if err := c.w.write(it.out); err != nil {
			return err
		}
		c.release(it)
		c.pending = c.pending[1:]
	}
	return nil
}
