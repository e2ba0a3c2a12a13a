package squashfs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"math/rand"
	"runtime"
	"sync"
	"testing"
	"testing/iotest"
	"time"
)

// TestFragmentCompressors: Options.FragmentCompressors gives fragment
// blocks a pool of their own beside the Compressors (as mksquashfs runs a
// deflator and a fragment deflator thread per CPU; squashfs pack and builds
// use one pool, FragmentCompressors 0, where a tree of small and large
// files never has more blocks compressing than Compressors). A tree of small files (all fragment blocks) never has
// more than FragmentCompressors blocks compressing at once, a tree of large
// files (all data blocks) never more than Compressors: the codec made no
// more encoders than that. Before the separate pool, squashfs pack ran two
// data compressors per worker, and a tree of large files had four zstd-15
// contexts taking turns on two CPUs. The image is the one a single shared
// pool writes, whatever the pools.
func TestFragmentCompressors(t *testing.T) {
	rnd := rand.New(rand.NewSource(9))
	text := func(n int) []byte {
		data := make([]byte, n)
		for j := range data {
			data[j] = "abcdefgh \n"[rnd.Intn(10)] // compressible, no two alike
		}
		return data
	}
	var small, large []Entry
	for i := range 600 {
		data := text(1000 + rnd.Intn(2500))
		small = append(small, Entry{Path: fmt.Sprintf("/d%d/f%d", i%7, i), Mode: 0o644, Size: int64(len(data)), Open: opener(data)})
	}
	for i := range 8 {
		data := text(4096 * (20 + i)) // whole blocks: no tails
		large = append(large, Entry{Path: fmt.Sprintf("/d%d/big%d", i%7, i), Mode: 0o644, Size: int64(len(data)), Open: opener(data)})
	}
	for i := range 7 {
		dir := Entry{Path: fmt.Sprintf("/d%d", i), Mode: fs.ModeDir | 0o755}
		small, large = append(small, dir), append(large, dir)
	}
	for _, tree := range []struct {
		name string
		es   []Entry
	}{{"small files", small}, {"large files", large}, {"both", append(append([]Entry(nil), large...), small[:300]...)}} {
		opts := Options{Compression: Zstd, Level: 19, BlockSize: 4096, Workers: 2, Compressors: 2}
		want := sum(build(t, tree.es, opts))
		for _, pools := range []struct{ compressors, frags int }{{4, 0}, {2, 0}, {2, 2}, {4, 2}, {1, 1}, {1, 3}, {3, 1}} {
			o := opts
			o.Compressors, o.FragmentCompressors = pools.compressors, pools.frags
			var m memFile
			w, err := NewWriter(&m, o)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range tree.es {
				must(t, w.Add(e))
			}
			must(t, w.WriteData(context.Background()))
			if _, err := w.Finish(); err != nil {
				t.Fatal(err)
			}
			limit := pools.compressors + pools.frags
			switch tree.name {
			case "small files":
				limit = pools.frags
			case "large files":
				limit = pools.compressors
			}
			if pools.frags == 0 { // one pool
				limit = pools.compressors
			}
			if n := len(w.codec.free); n > limit {
				t.Errorf("%s, %d compressors + %d fragment compressors: %d blocks compressed at once, want at most %d",
					tree.name, pools.compressors, pools.frags, n, limit)
			}
			if got := sum(m.b); got != want {
				t.Errorf("%s, %d compressors + %d fragment compressors: image %s, want %s (one pool of 2)",
					tree.name, pools.compressors, pools.frags, got, want)
			}
		}
	}
}

// takerReader is a reader that leaves its SHA-256 to the writer
// (SHA256Taker) and records what the writer did with it.
type takerReader struct {
	io.Reader
	took, set, setBeforeClose bool
	sum                       [sha256.Size]byte
	n                         int64
	readBeforeTake            bool
}

func (r *takerReader) Read(p []byte) (int, error) {
	if !r.took {
		r.readBeforeTake = true
	}
	return r.Reader.Read(p)
}
func (r *takerReader) TakeSHA256() bool { r.took = true; return true }
func (r *takerReader) SetSHA256(sum [sha256.Size]byte, n int64) {
	r.sum, r.n, r.set = sum, n, true
}
func (r *takerReader) Close() error { r.setBeforeClose = r.set; return nil }

// TestSHA256Taker: a file of hashBehindMin bytes or more whose reader is a
// SHA256Taker is hashed by the writer beside the reads: the reader is asked
// before its first Read, gets the SHA-256 of all its bytes before Close,
// and that digest finds its duplicate; a smaller file is not asked; the
// image is the one written from plain readers, with one worker or two.
func TestSHA256Taker(t *testing.T) {
	rnd := rand.New(rand.NewSource(5))
	big := make([]byte, hashBehindMin+3*4096+1000) // full blocks, a zero block, a tail
	rnd.Read(big)
	clear(big[4096 : 2*4096])
	small := big[:3000]
	files := []struct {
		path string
		data []byte
	}{{"/a", big}, {"/b", big}, {"/c", small}, {"/d", big[:hashBehindMin]}}
	plain := make([]Entry, len(files))
	for i, f := range files {
		plain[i] = Entry{Path: f.path, Mode: 0o644, Size: int64(len(f.data)), Open: opener(f.data)}
	}
	for _, workers := range []int{1, 2} {
		opts := Options{Compression: Zstd, BlockSize: 4096, Workers: workers}
		want := sum(build(t, plain, opts))
		readers := make([]*takerReader, len(files))
		es := make([]Entry, len(files))
		for i, f := range files {
			es[i] = plain[i]
			es[i].Open = func() (io.ReadCloser, error) {
				readers[i] = &takerReader{Reader: bytes.NewReader(f.data)}
				return readers[i], nil
			}
		}
		img, st := buildStats(t, es, opts)
		if got := sum(img); got != want {
			t.Errorf("workers %d: image %s, want %s (plain readers)", workers, got, want)
		}
		if st.Duplicates != 1 {
			t.Errorf("workers %d: Duplicates = %d, want 1", workers, st.Duplicates)
		}
		for i, f := range files {
			r := readers[i]
			if len(f.data) < hashBehindMin {
				if r.took || r.set {
					t.Errorf("workers %d: %s (%d bytes) was asked for its hash", workers, f.path, len(f.data))
				}
				continue
			}
			if !r.took || r.readBeforeTake || !r.setBeforeClose {
				t.Errorf("workers %d: %s: took %v, read before %v, digest before Close %v", workers, f.path, r.took, r.readBeforeTake, r.setBeforeClose)
			}
			if r.sum != sha256.Sum256(f.data) || r.n != int64(len(f.data)) {
				t.Errorf("workers %d: %s: digest %x of %d bytes, want the SHA-256 of %d", workers, f.path, r.sum, r.n, len(f.data))
			}
		}
	}
}

// TestSHA256TakerReadError: a file that fails half way fails WriteData
// naming it, and its reader gets no digest (of the bytes read so far, or
// any).
func TestSHA256TakerReadError(t *testing.T) {
	data := make([]byte, 2*hashBehindMin)
	boom := errors.New("boom")
	r := &takerReader{Reader: io.MultiReader(bytes.NewReader(data[:hashBehindMin+100]), iotest.ErrReader(boom))}
	w, err := NewWriter(&memFile{}, Options{Compression: Zstd, BlockSize: 4096, Workers: 2})
	must(t, err)
	must(t, w.Add(Entry{Path: "/big", Mode: 0o644, Size: int64(len(data)), Open: func() (io.ReadCloser, error) { return r, nil }}))
	err = w.WriteData(context.Background())
	var pe *PathError
	if !errors.Is(err, boom) || !errors.As(err, &pe) || pe.Path != "/big" {
		t.Fatalf("WriteData: %v, want boom naming /big", err)
	}
	if !r.took || r.set {
		t.Errorf("took %v, digest given %v: want taken, none given", r.took, r.set)
	}
}

// doneProbe is hashBehind's hash in TestHashBehindGroups: at each Write it
// records how many of the items (in queue order) are finished.
type doneProbe struct {
	hash.Hash
	items    []*item
	finished []int
}

func (p *doneProbe) Write(b []byte) (int, error) {
	n := 0
	for _, it := range p.items {
		select {
		case <-it.done:
			n++
		default:
		}
	}
	p.finished = append(p.finished, n)
	return p.Hash.Write(b)
}

// TestHashBehindGroups: hashBehind finishes the blocks it hashed in groups
// of hashedBatch (the committer wakes once a group), the rest when the file
// ends; a block added to an empty queue is finished without waiting for
// more; the digest is still that of every byte, in order.
func TestHashBehindGroups(t *testing.T) {
	const n = hashedBatch + 4
	r := &takerReader{}
	probe := &doneProbe{Hash: sha256.New()}
	hb := &hashBehind{ctx: context.Background(), t: r, h: probe, blocks: make(chan *item, n), done: make(chan struct{})}
	all := sha256.New()
	for i := range n {
		it := &item{raw: bytes.Repeat([]byte{byte(i)}, 100+i), last: i == n-1, done: make(chan struct{})}
		all.Write(it.raw)
		probe.items = append(probe.items, it)
		hb.blocks <- it
	}
	close(hb.blocks)
	hb.run() // every block queued: groups of hashedBatch
	for i, got := range probe.finished {
		if want := i / hashedBatch * hashedBatch; got != want {
			t.Errorf("hashing block %d: %d blocks finished, want %d (%v)", i, got, want, probe.finished)
			break
		}
	}
	for i, it := range probe.items {
		select {
		case <-it.done:
		default:
			t.Errorf("block %d not finished after the last", i)
		}
	}
	if !r.set || r.n != int64(n*100+n*(n-1)/2) || r.sum != [sha256.Size]byte(all.Sum(nil)) {
		t.Errorf("digest %x of %d bytes (given %v), want %x", r.sum, r.n, r.set, all.Sum(nil))
	}

	// one block at a time: each is finished before the next is added
	// (a hang here is the failure)
	hb = startHashBehind(context.Background(), &takerReader{}, 4)
	for i := range 3 {
		it := &item{raw: []byte{byte(i)}, last: i == 2, done: make(chan struct{})}
		if err := hb.add(it); err != nil {
			t.Fatal(err)
		}
		<-it.done
	}
	hb.stop()
}

// TestFragmentsAhead: the image is the one the defaults write, whatever
// Options.FragmentsAhead; and while the writing waits for one small file
// (its open blocks), the other reader reads the next 15 files (the
// window's 16 items) and no more.
func TestFragmentsAhead(t *testing.T) {
	const files, stuck = 120, 5
	data := make([][]byte, files)
	rnd := rand.New(rand.NewSource(3))
	for i := range data {
		data[i] = make([]byte, 100+rnd.Intn(3000))
		for j := range data[i] {
			data[i][j] = "abcdefgh \n"[rnd.Intn(10)]
		}
	}
	entries := func(open func(i int) func() (io.ReadCloser, error)) []Entry {
		es := []Entry{{Path: "/d", Mode: fs.ModeDir | 0o755}}
		for i := range files {
			es = append(es, Entry{Path: fmt.Sprintf("/d/f%03d", i), Mode: 0o644, Size: int64(len(data[i])), Open: open(i)})
		}
		return es
	}
	plain := func(i int) func() (io.ReadCloser, error) { return opener(data[i]) }
	base := Options{Compression: Zstd, Level: 3, BlockSize: 4096, Workers: 2, Compressors: 2}
	want := sum(build(t, entries(plain), base))
	for _, fragsAhead := range []int{0, 1, 2, 12, 40} {
		o := base
		o.FragmentsAhead = fragsAhead
		if got := sum(build(t, entries(plain), o)); got != want {
			t.Errorf("FragmentsAhead %d: image %s, want %s (the defaults)", fragsAhead, got, want)
		}
		so := newStuckOpens(stuck)
		es := entries(func(i int) func() (io.ReadCloser, error) { return so.open(i, data[i]) })
		var m memFile
		w, err := NewWriter(&m, o)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			must(t, w.Add(e))
		}
		done := make(chan error, 1)
		go func() { done <- w.WriteData(context.Background()) }()
		const wantBeyond = 15
		if n := so.settle(wantBeyond); n != wantBeyond {
			t.Errorf("FragmentsAhead %d: %d files read past a file the writing waits for, want %d", fragsAhead, n, wantBeyond)
		}
		close(so.release)
		must(t, <-done)
		if _, err := w.Finish(); err != nil {
			t.Fatal(err)
		}
		if got := sum(m.b); got != want {
			t.Errorf("FragmentsAhead %d, one open held: image %s, want %s", fragsAhead, got, want)
		}
	}
}

// TestWindowBlocks: files of three data blocks are read at most the
// window's 16 blocks ahead of a file the writing waits for (5 files).
func TestWindowBlocks(t *testing.T) {
	const files, stuck, bs = 30, 3, 4096
	data := make([]byte, 3*bs)
	for i := range data {
		data[i] = byte(i * 7 / 5)
	}
	for _, fragsAhead := range []int{0, 40} {
		so := newStuckOpens(stuck)
		var m memFile
		w, err := NewWriter(&m, Options{Compression: LZ4, BlockSize: bs, Workers: 2, Compressors: 2, FragmentsAhead: fragsAhead})
		if err != nil {
			t.Fatal(err)
		}
		for i := range files {
			must(t, w.Add(Entry{Path: fmt.Sprintf("/f%03d", i), Mode: 0o644, Size: int64(len(data)), Open: so.open(i, data)}))
		}
		done := make(chan error, 1)
		go func() { done <- w.WriteData(context.Background()) }()
		if n := so.settle(5); n != 5 {
			t.Errorf("FragmentsAhead %d: %d files of 3 blocks opened past a file the writing waits for, want 5 (16 blocks)", fragsAhead, n)
		}
		close(so.release)
		must(t, <-done)
		if _, err := w.Finish(); err != nil {
			t.Fatal(err)
		}
	}
}

// stuckOpens opens files for TestFragmentsAhead and TestWindowBlocks: file stuck's open waits
// for release, and the files after it that were opened are counted.
type stuckOpens struct {
	stuck   int
	release chan struct{}
	mu      sync.Mutex
	beyond  int
}

func newStuckOpens(stuck int) *stuckOpens {
	return &stuckOpens{stuck: stuck, release: make(chan struct{})}
}

func (so *stuckOpens) open(i int, data []byte) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) {
		if i == so.stuck {
			<-so.release
		} else if i > so.stuck {
			so.mu.Lock()
			so.beyond++
			so.mu.Unlock()
		}
		return opener(data)()
	}
}

// settle waits (up to 20 s) until want files past the stuck one are open,
// then 50 ms more, in which a reader past the window would open more, and
// returns how many are open.
func (so *stuckOpens) settle(want int) int {
	count := func() int { so.mu.Lock(); defer so.mu.Unlock(); return so.beyond }
	for deadline := time.Now().Add(20 * time.Second); count() < want && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	return count()
}

// TestWindowWakesAdmitted: a reader waiting for an item beyond the window
// is woken once, by the commit that admits it, not by each commit before
// (the reader of the next file slept through every commit of a large file);
// one waiting for an item already admitted does not wait.
func TestWindowWakesAdmitted(t *testing.T) {
	for _, c := range []struct {
		size, seq int64
		commits   int // before seq is admitted
	}{
		{size: 4, seq: 10, commits: 7},
		{size: 16, seq: 16, commits: 1},
		{size: 16, seq: 200, commits: 185},
	} {
		win := newWindow(context.Background(), int(c.size))
		done := make(chan error, 1)
		go func() { done <- win.wait(c.seq) }()
		untilWaiting(win, c.seq)
		for range c.commits - 1 {
			win.advance()
		}
		select {
		case err := <-done:
			t.Fatalf("size %d: item %d admitted after %d commits (%v), want %d", c.size, c.seq, c.commits-1, err, c.commits)
		default:
		}
		win.mu.Lock()
		wakes := win.wakes
		win.mu.Unlock()
		if wakes != 0 {
			t.Errorf("size %d, item %d: %d wake-ups in %d commits that do not admit it, want 0", c.size, c.seq, wakes, c.commits-1)
		}
		win.advance()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if win.wakes != 1 {
			t.Errorf("size %d, item %d: %d wake-ups, want 1", c.size, c.seq, win.wakes)
		}
		if err := win.wait(c.seq); err != nil {
			t.Fatal(err)
		}
		win.stop()
	}
}

// TestWindowWaitCancelled: a reader waiting beyond the window returns the
// context's error when the build is cancelled.
func TestWindowWaitCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	win := newWindow(ctx, 4)
	defer win.stop()
	done := make(chan error, 1)
	go func() { done <- win.wait(100) }()
	untilWaiting(win, 100)
	win.advance()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("wait: %v, want %v", err, context.Canceled)
	}
}

// untilWaiting returns once a reader waits in win for item seq.
func untilWaiting(win *window, seq int64) {
	for {
		win.mu.Lock()
		next := win.next
		win.mu.Unlock()
		if next == seq {
			return
		}
		runtime.Gosched()
	}
}

// TestOutBuffersReused: a block that does not shrink is stored raw, and the
// output buffer it was compressed into goes back to the pool, as a
// compressed block's does once written. Before, each such block lost its
// buffer to the collector: 400 incompressible blocks made about 400 output
// buffers (147 KiB each at 128 KiB blocks; a 256 MiB file of random bytes
// took 47 collections instead of 3). Every compressor, with and without a
// block cache (xz with a cache compresses in batches, workBatches).
func TestOutBuffersReused(t *testing.T) {
	const bs, blocks = 4096, 400
	data := make([]byte, bs*blocks)
	rand.New(rand.NewSource(7)).Read(data)
	es := []Entry{{Path: "/random", Mode: 0o644, Size: int64(len(data)), Open: opener(data)}}
	var bufs *blockBuffers
	testBlockBuffers = func(b *blockBuffers) { bufs = b }
	defer func() { testBlockBuffers = nil }()
	for _, ci := range Compressors() {
		if ci.Comp == CompNone {
			continue
		}
		for _, cached := range []bool{false, true} {
			opts := Options{Compression: ci.Comp, BlockSize: bs, Workers: 2}
			if cached {
				opts.Cache = &mapCache{}
			}
			bufs = nil
			build(t, es, opts)
			if bufs == nil {
				t.Fatalf("%s: WriteData gave no buffers to the test hook", ci.Name)
			}
			keep := int64(cap(bufs.out.list))
			if made := bufs.out.made.Load(); made > keep {
				t.Errorf("%s, cache %v: %d output buffers made for %d incompressible blocks, want at most the %d the pool keeps", ci.Name, cached, made, blocks, keep)
			}
		}
	}
}
