package squashfs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
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
//	compressors (Workers goroutines) compress full blocks and fragment blocks.
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
	done  chan struct{} // closed when out is ready
	frag  int           // fragment blocks: their index
	isFrg bool
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
	if err := w.prepare(); err != nil {
		w.mu.Unlock()
		return err
	}
	w.mu.Unlock()
	err := w.runData(ctx)
	if err != nil {
		w.mu.Lock()
		w.failed = err
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

func (w *Writer) runData(ctx context.Context) error {
	files := w.files
	// Only files whose size another file shares can be duplicates: only
	// those are hashed.
	sizes := make(map[int64]int32, len(files))
	for _, f := range files {
		sizes[f.size]++
	}
	for _, f := range files {
		f.dupCandidate = sizes[f.size] > 1 && f.size > 0
	}
	sizes = nil
	var total int64
	for _, f := range files {
		f.firstSeq = total
		n, _ := w.itemsOf(f.size)
		total += n
	}
	if total == 0 {
		return nil
	}
	bs := w.opts.BlockSize
	workers := w.opts.Workers
	window := max(16, 8*workers)
	if lim := (32 << 20) / bs; window > lim {
		window = max(lim, 2*workers+2)
	}

	g, ctx := errgroup.WithContext(ctx)
	ring := make([]chan *item, window)
	for i := range ring {
		ring[i] = make(chan *item, 1)
	}
	var (
		admitMu   sync.Mutex
		admit     = sync.NewCond(&admitMu)
		committed int64
	)
	stop := context.AfterFunc(ctx, func() {
		admitMu.Lock()
		admit.Broadcast()
		admitMu.Unlock()
	})
	defer stop()
	waitAdmit := func(seq int64) error {
		admitMu.Lock()
		defer admitMu.Unlock()
		for seq >= committed+int64(window) {
			if err := ctx.Err(); err != nil {
				return err
			}
			admit.Wait()
		}
		return ctx.Err()
	}
	rawPool := sync.Pool{New: func() any { return make([]byte, bs) }}
	outPool := sync.Pool{New: func() any { return make([]byte, 0, bs+bs/8+1024) }}
	jobs := make(chan *item, workers)

	// compressors
	var compWG sync.WaitGroup
	for range workers {
		compWG.Add(1)
		go func() {
			defer compWG.Done()
			for it := range jobs {
				dst := outPool.Get().([]byte)
				it.out, it.comp, it.err = w.codec.compress(dst, it.raw)
				close(it.done)
			}
		}()
	}
	defer func() { close(jobs); compWG.Wait() }()
	submit := func(it *item) error {
		select {
		case jobs <- it:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}

	// readers
	var next atomic.Int64
	zero := make([]byte, bs)
	closedDone := make(chan struct{})
	close(closedDone)
	for range workers {
		g.Go(func() error {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(files) {
					return nil
				}
				if err := w.readFile(ctx, i, files[i], waitAdmit, ring, &rawPool, zero, closedDone, submit); err != nil {
					return err
				}
			}
		})
	}

	// committer
	g.Go(func() error {
		c := committer{w: w, ctx: ctx, submit: submit, outPool: &outPool, rawPool: &rawPool,
			dedup: make(map[dupKey]*node), maxPending: workers + 1}
		for seq := int64(0); seq < total; seq++ {
			var it *item
			select {
			case it = <-ring[seq%int64(window)]:
			case <-ctx.Done():
				return ctx.Err()
			}
			select {
			case <-it.done:
			case <-ctx.Done():
				return ctx.Err()
			}
			if err := c.commit(it); err != nil {
				return err
			}
			admitMu.Lock()
			committed++
			admit.Broadcast()
			admitMu.Unlock()
		}
		if err := c.flushFragment(); err != nil {
			return err
		}
		if err := c.drain(0); err != nil {
			return err
		}
		w.dups = c.dups
		return nil
	})
	return g.Wait()
}

// readFile streams file i into the ring.
func (w *Writer) readFile(ctx context.Context, i int, f *node, waitAdmit func(int64) error,
	ring []chan *item, rawPool *sync.Pool, zero []byte, closedDone chan struct{}, submit func(*item) error) (err error) {
	name := func() string { return w.pathOf(f) }
	n, tail := w.itemsOf(f.size)
	put := func(seq int64, it *item) error {
		select {
		case ring[seq%int64(len(ring))] <- it:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := waitAdmit(f.firstSeq); err != nil {
		return err
	}
	var h hash.Hash = nopHash{}
	if f.dupCandidate {
		h = sha256.New()
	}
	if f.open == nil {
		it := &item{file: i, kind: itemEmpty, last: true, done: closedDone}
		h.Sum(it.sum[:0])
		return put(f.firstSeq, it)
	}
	r, err := f.open()
	if err != nil {
		return &PathError{Path: name(), Err: err}
	}
	defer func() {
		if cerr := r.Close(); cerr != nil && err == nil {
			err = &PathError{Path: name(), Err: cerr}
		}
	}()
	bs := int64(w.opts.BlockSize)
	if f.size == 0 {
		var one [1]byte
		if k, _ := io.ReadFull(r, one[:]); k != 0 {
			return &PathError{Path: name(), Err: fmt.Errorf("%w: content longer than the declared 0 bytes", ErrSizeMismatch)}
		}
		it := &item{file: i, kind: itemEmpty, last: true, done: closedDone}
		h.Sum(it.sum[:0])
		return put(f.firstSeq, it)
	}
	for b := int64(0); b < n; b++ {
		seq := f.firstSeq + b
		if err := waitAdmit(seq); err != nil {
			return err
		}
		size := min(bs, f.size-b*bs)
		raw := rawPool.Get().([]byte)[:size]
		if k, err := io.ReadFull(r, raw); err != nil {
			rawPool.Put(raw[:cap(raw)])
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
				rawPool.Put(raw[:cap(raw)])
				return &PathError{Path: name(), Err: fmt.Errorf("%w: content longer than the declared %d bytes", ErrSizeMismatch, f.size)}
			}
			if err != nil && err != io.EOF {
				rawPool.Put(raw[:cap(raw)])
				return &PathError{Path: name(), Err: err}
			}
			h.Sum(it.sum[:0])
		}
		switch {
		case it.last && tail:
			it.kind, it.done = itemTail, closedDone
		case bytes.Equal(raw, zero[:size]):
			it.kind, it.done = itemSparse, closedDone
		default:
			it.kind, it.done = itemData, make(chan struct{})
			if err := submit(it); err != nil {
				return err
			}
		}
		if err := put(seq, it); err != nil {
			return err
		}
	}
	return nil
}

// nopHash stands in for the digest of files that cannot be duplicates.
type nopHash struct{}

func (nopHash) Write(p []byte) (int, error) { return len(p), nil }
func (nopHash) Sum(b []byte) []byte         { return append(b, make([]byte, sha256.Size)...) }
func (nopHash) Reset()                      {}
func (nopHash) Size() int                   { return sha256.Size }
func (nopHash) BlockSize() int              { return 64 }

type dupKey struct {
	sum  [sha256.Size]byte
	size int64
}

// committer is the ordered end of the pipeline.
type committer struct {
	w          *Writer
	ctx        context.Context
	submit     func(*item) error
	outPool    *sync.Pool
	rawPool    *sync.Pool
	dedup      map[dupKey]*node
	dups       int
	frag       []byte  // fragment block being filled
	pending    []*item // fragment blocks compressing, in fill order
	maxPending int
	cur        *node // file being committed
	wrote      bool  // cur has data blocks in the image
	tail       []byte
}

func (c *committer) commit(it *item) error {
	w := c.w
	if it.err != nil {
		return &PathError{Path: w.pathOf(w.files[it.file]), Err: it.err}
	}
	f := w.files[it.file]
	if c.cur != f {
		c.cur, c.wrote, c.tail = f, false, nil
		f.frag = InvalidFragment
		if it.kind == itemData || it.kind == itemSparse {
			// fragment blocks filled so far go first, so that this file's
			// blocks are contiguous and last (for a roll-back)
			if err := c.drain(0); err != nil {
				return err
			}
			f.start = w.pos
		}
	}
	switch it.kind {
	case itemData:
		if err := w.write(it.out); err != nil {
			return err
		}
		f.blocks = append(f.blocks, uint32(MakeBlockSizeWord(len(it.out), it.comp)))
		c.wrote = true
	case itemSparse:
		f.blocks = append(f.blocks, 0)
		f.sparse += uint64(len(it.raw))
	case itemTail:
		c.tail = it.raw
	}
	if it.last {
		key := dupKey{it.sum, f.size}
		if g, ok := c.dedup[key]; ok && f.dupCandidate {
			if c.wrote {
				if err := w.seekTo(f.start); err != nil {
					return err
				}
			}
			f.start, f.blocks, f.frag, f.fragOff, f.sparse = g.start, g.blocks, g.frag, g.fragOff, g.sparse
			c.dups++
		} else {
			if f.dupCandidate {
				c.dedup[key] = f
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
		c.rawPool.Put(it.raw[:cap(it.raw)])
		it.raw = nil
	}
	if it.kind == itemData && it.out != nil && it.comp {
		c.outPool.Put(it.out[:0])
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
		c.frag = make([]byte, 0, bs)
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
	if err := c.submit(it); err != nil {
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
		c.pending = c.pending[1:]
	}
	return nil
}
