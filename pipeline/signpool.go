package pipeline

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/maphash"
	"math"
	"sync"

	"github.com/imaforge/imaforge/signer"
)

// signFunc signs a file digest and returns the complete security.ima value;
// path is the image path of the first file with that digest (a signing
// service checks it against the key's scope).
type signFunc func(path string, digest []byte) ([]byte, error)

// signPool signs each unique (key, digest) pair exactly once, on a fixed
// number of workers, while the data of later files is still being read and
// compressed. Identical files share one signature. Signature bytes depend only
// on (key, digest) (RSA PKCS#1 v1.5 and RFC 6979 ECDSA are deterministic), so
// completion order never reaches the image.
//
// A result stays from its submit until every file given it is sealed (the
// last 65,536 released ones are kept for identical files that follow; a
// late key's, EVM's, also stay after forget: lateKey), and a build holds
// many at once, so the pool's state is kept small: results are found by
// (key index, the digest's first 8 bytes), with the whole digest compared;
// a finished result is told apart by a flag under the pool's lock, not by
// a channel or WaitGroup of its own; errors (rare) are kept aside, and so
// are the channels of results someone waits for before they are done (a
// tar build's Seals wait for each file's signature as soon as it is read:
// one Cond broadcast per signature woke every waiting Seal, thousands,
// each time).
type signPool struct {
	names []string    // key names, by index
	fns   []signFunc  // by key index
	batch []batchFunc // by key index; nil: the key signs one at a time
	index map[string]uint16
	given int // len of newSignPool's keys

	mu sync.Mutex
	// results finds a result that is not released by (key index,
	// digest): an open-addressing table (nil: a free slot, at most 3/4
	// used) probed from the hash of the key and the digest's first 8
	// bytes, 16 bytes a slot (a map from those bytes took 24 a slot and a
	// chain field in every result). A slot keeps the hash beside the
	// result, so that a probe passes the other results of its run, and a
	// removal moves them, without reading them (at a million files, when
	// each slot passed read its result and digest, probes and removals
	// took 2.3 CPU-s of 97).
	// A result leaves it once released (remove); one that a file was
	// given and has not released stays, also after forget: the file's
	// Seal finds it there (lookup).
	results []resultSlot
	nres    int
	// forgotten: forget was called; a result released from then on
	// leaves results at once, but a late key's (lateKey).
	forgotten bool
	// late holds, by key index, the digestOf of a late key (lateKey);
	// nil for the others.
	late []func(file int32) string
	// signed holds, by key index, the digests of the released results,
	// each as the index of a file that has it (digestOf): a later submit
	// of one signs it again without counting another unique pair. 4
	// bytes a slot, no pointer, instead of a 48-byte result and its 8-byte
	// slot: a million files keep a pair each to the end of their data.
	signed   []fileSet
	digestOf func(file int32) string // the digest of a file given to release
	seed     maphash.Seed
	errs     map[*sigResult]error
	waiting  map[*sigResult]chan struct{} // closed when the result is done
	unique   int
	perKey   []int // unique pairs by key index
	// kept are the last results whose files were all sealed, with the
	// last file sealed, a ring from keptAt (release).
	kept   []keptResult
	keptAt int
	keep   int // the ring's size: keptReleased

	jobs chan sigJob
	// lateJobs are the late keys' jobs (lateKey), which the workers take
	// first: a file that waits for one (EVM) holds its first signature
	// meanwhile, and behind the queue of the files read after it, the
	// files read ahead piled up with theirs.
	lateJobs chan sigJob
	// maxBatch bounds the digests a worker takes at once for a key with
	// a batchFunc (newSignPool).
	maxBatch  int
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// fingerprint is the first 8 bytes of digest (zero-padded).
func fingerprint(digest string) uint64 {
	var b [8]byte
	copy(b[:], digest)
	return binary.LittleEndian.Uint64(b[:])
}

// sigResult is a signature that is, or will be, computed: its value is
// valid once signPool.wait returns. digest is what was signed (the file's
// digest in the layout's digest store, not copied). The pool holds one per
// unique digest until the files given it are sealed (and a few after,
// release): 48 bytes (TestPerFileStateSize), the digest a string and the
// key 16 bits for that. A file finds its result by key and digest
// (lookup), so that its state holds no pointer to it.
type sigResult struct {
	digest string
	value  []byte
	// refs counts the files given this result and not yet sealed
	// (release); under signPool.mu, like done and released.
	refs     uint32
	key      uint16
	done     bool
	released bool // value dropped: every file given it was sealed
}

// resultSlot is a slot of signPool.results: r and the hash of its key and
// digest (signPool.hash); r nil for a free slot.
type resultSlot struct {
	h uint64
	r *sigResult
}

// sigJob is one signature to make.
type sigJob struct {
	r    *sigResult
	path string
}

// batchFunc signs several digests of one key at once (one value per digest,
// the bytes its signFunc gives).
type batchFunc func(digests [][]byte) ([][]byte, error)

// newSignPool starts workers signing with keys; batch, which may be nil or
// lack keys, gives the keys that sign several digests in one call (a
// libcrypto RSA key: one hand-off to a signing thread per batch), at most
// maxBatch at a time (waitedBatch or queuedBatch; at least 1).
func newSignPool(ctx context.Context, keys map[string]signFunc, batch map[string]batchFunc, workers, maxBatch int) *signPool {
	if workers < 1 {
		workers = 1
	}
	p := &signPool{
		index:    make(map[string]uint16, len(keys)),
		errs:     make(map[*sigResult]error),
		jobs:     make(chan sigJob, 4096),
		lateJobs: make(chan sigJob, 4096),
		seed:     maphash.MakeSeed(),
		keep:     keptReleased,
		maxBatch: max(1, maxBatch),
		given:    len(keys),
	}
	p.waiting = make(map[*sigResult]chan struct{})
	for name, fn := range keys {
		if len(keys) > math.MaxUint16+1 {
			break // more than a result's key index holds: submit fails every file
		}
		p.index[name] = uint16(len(p.names))
		p.names = append(p.names, name)
		p.fns = append(p.fns, fn)
		p.batch = append(p.batch, batch[name])
	}
	p.perKey = make([]int, len(p.names))
	for range workers {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			js := make([]sigJob, 0, p.maxBatch)
			jobs, late := p.jobs, p.lateJobs
			for jobs != nil || late != nil {
				var j sigJob
				var ok bool
				from := late
				select {
				case j, ok = <-late:
				default:
					select {
					case j, ok = <-late:
					case j, ok = <-jobs:
						from = jobs
					}
				}
				if !ok {
					if from == late {
						late = nil
					} else {
						jobs = nil
					}
					continue
				}
				js = append(js[:0], j)
				if p.batch[j.r.key] != nil {
					js = p.more(js, workers, from)
				}
				p.sign(ctx, js)
			}
		}()
	}
	return p
}

// Batch limits (newSignPool's maxBatch). A build whose files wait for
// their signatures as they are read (a tar image writes each file's xattrs
// before its data) takes waitedBatch: 8 RSA-2048 signatures take about
// 2 ms. A SquashFS build waits for none before its tables, and its readers
// keep the queue full: queuedBatch, the most one hand-off to a libcrypto
// signing thread takes, so that the signing goroutines, the files' readers
// (blocked on a full queue) and the early sealing each wake once per 64
// signatures instead of once per 8 (50,000 small files at RSA-2048: about
// 8,000 futex calls instead of 20,000, 52,000 context switches instead of
// 70,000).
const (
	waitedBatch = 8
	queuedBatch = signer.BatchSize
)

// more adds to js the jobs already queued in from, up to a batch, and no
// more than the worker's share of the queue (so that the last jobs are not
// all taken by one worker while the others wait).
func (p *signPool) more(js []sigJob, workers int, from chan sigJob) []sigJob {
	n := min(p.maxBatch, 1+len(from)/workers)
	for len(js) < n {
		select {
		case j, ok := <-from:
			if !ok {
				return js
			}
			js = append(js, j)
		default:
			return js
		}
	}
	return js
}

// sign makes the signatures of js, the jobs of one key with a batchFunc
// together, and marks them done.
func (p *signPool) sign(ctx context.Context, js []sigJob) {
	values := make([][]byte, len(js))
	errs := make([]error, len(js))
	var digests [][]byte
	var at []int
	for i, j := range js {
		if err := ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		bf := p.batch[j.r.key]
		if bf == nil || len(js) == 1 {
			values[i], errs[i] = p.fns[j.r.key](j.path, []byte(j.r.digest))
			continue
		}
		if len(at) > 0 && js[at[0]].r.key != j.r.key {
			p.signBatch(js, at, digests, values, errs)
			digests, at = digests[:0], at[:0]
		}
		digests, at = append(digests, []byte(j.r.digest)), append(at, i)
	}
	if len(at) > 0 {
		p.signBatch(js, at, digests, values, errs)
	}
	p.mu.Lock()
	for i, j := range js {
		j.r.value, j.r.done = values[i], true
		if errs[i] != nil {
			p.errs[j.r] = errs[i]
		}
		if ch, ok := p.waiting[j.r]; ok {
			close(ch)
			delete(p.waiting, j.r)
		}
	}
	p.mu.Unlock()
}

// signBatch signs digests, those of jobs js[at[k]] (all of one key), in one
// call; on an error each is signed alone, so the error is its own.
func (p *signPool) signBatch(js []sigJob, at []int, digests, values [][]byte, errs []error) {
	key := js[at[0]].r.key
	vals, err := p.batch[key](digests)
	for k, i := range at {
		if err == nil && len(vals) == len(at) {
			values[i] = vals[k]
		} else {
			values[i], errs[i] = p.fns[key](js[i].path, []byte(js[i].r.digest))
		}
	}
}

// submit asks for the signature of digest, of the file at image path, with
// the named key and returns its (possibly shared) result, which lookup
// finds until the file releases it. digest must not change afterwards.
func (p *signPool) submit(key, path, digest string) *sigResult {
	ki, ok := p.index[key]
	if !ok {
		r := &sigResult{digest: digest, done: true}
		p.mu.Lock()
		p.errs[r] = fmt.Errorf("internal: no signer for key %q (%d keys given, at most %d)", key, p.given, math.MaxUint16+1)
		p.mu.Unlock()
		return r
	}
	p.mu.Lock()
	h := p.hash(ki, digest)
	slot := p.find(ki, h, digest)
	if r := p.results[slot].r; r != nil {
		r.refs++
		p.mu.Unlock()
		return r
	}
	r := &sigResult{digest: digest, key: ki, refs: 1}
	p.results[slot] = resultSlot{h, r}
	p.nres++
	// A pair whose result was released (every file given it sealed, its
	// value dropped) is signed again (the same value: signatures depend
	// only on key and digest), counted once.
	if int(ki) >= len(p.signed) || !p.signed[ki].has(p.seed, p.digestsOf(ki), digest) {
		p.unique++
		p.perKey[ki]++
	}
	late := p.isLate(ki)
	p.mu.Unlock()
	if late {
		p.lateJobs <- sigJob{r, path}
	} else {
		p.jobs <- sigJob{r, path}
	}
	return r
}

// lookup returns the result submit gave for (key, digest) and that was not
// released since, or nil; an error for a key the pool has no signer for.
func (p *signPool) lookup(key, digest string) (*sigResult, error) {
	ki, ok := p.index[key]
	if !ok {
		return nil, fmt.Errorf("internal: no signer for key %q (%d keys given, at most %d)", key, p.given, math.MaxUint16+1)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.results) == 0 {
		return nil, nil
	}
	return p.results[p.probe(ki, p.hash(ki, digest), digest)].r, nil
}

// keptResult is a result in signPool.kept and a file that has its digest.
type keptResult struct {
	r    *sigResult
	file int32
}

// release tells the pool that file, given r (by submit), was sealed. Once
// every such file was, r goes into a ring of the last keptReleased such
// results; the one it replaces there drops its value (a SquashFS image
// keeps it in its xattr store, a tar image has written it), so a million
// files do not hold a million values until the sign pool's lookup is
// forgotten, while an identical file a little later (empty files, copies)
// still shares the signature. A file whose digest's value was dropped has
// it signed again.
func (p *signPool) release(r *sigResult, file int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r.refs > 0 {
		r.refs--
	}
	if r.refs != 0 || !r.done || p.errs[r] != nil {
		return
	}
	if p.forgotten && !p.isLate(r.key) { // no file submits r's pair again
		r.value, r.released = nil, true
		p.unlist(r)
		return
	}
	if len(p.kept) < p.keep {
		p.kept = append(p.kept, keptResult{r, file})
		return
	}
	if old := p.kept[p.keptAt]; old.r.refs == 0 {
		p.drop(old.r, old.file)
	}
	p.kept[p.keptAt] = keptResult{r, file}
	p.keptAt = (p.keptAt + 1) % p.keep
}

// drop releases r, whose files were all sealed, file among them: its
// value is dropped, r leaves the results, and file goes into p.signed
// (p.mu held).
func (p *signPool) drop(r *sigResult, file int32) {
	r.value, r.released = nil, true
	if p.forgotten && !p.isLate(r.key) {
		return
	}
	p.unlist(r)
	if len(p.signed) == 0 {
		p.signed = make([]fileSet, len(p.names))
	}
	if digestOf := p.digestsOf(r.key); digestOf(file) == r.digest {
		p.signed[r.key].add(p.seed, digestOf, file)
	}
}

// lateKey makes key a late key: its digests are submitted as files are
// sealed (EVM: the digest covers the file's security.ima), also after
// forget, each the digest digestOf gives for the file that release is
// given with it. forget leaves a late key's results, kept ring and signed
// digests as they are, so that its results are released like the others
// (their values dropped once the ring passes them) and a pair submitted
// again after its result was dropped is not counted twice. Call before
// the first submit.
func (p *signPool) lateKey(key string, digestOf func(file int32) string) {
	ki, ok := p.index[key]
	if !ok {
		return // submit fails every file of it
	}
	if p.late == nil {
		p.late = make([]func(int32) string, len(p.names))
	}
	p.late[ki] = digestOf
}

// isLate reports whether key index ki is a late key's (lateKey).
func (p *signPool) isLate(ki uint16) bool { return int(ki) < len(p.late) && p.late[ki] != nil }

// digestsOf returns the function that gives a file's digest for key
// index ki: a late key's own, else p.digestOf.
func (p *signPool) digestsOf(ki uint16) func(int32) string {
	if p.isLate(ki) {
		return p.late[ki]
	}
	return p.digestOf
}

// unlist takes r out of p.results (p.mu held).
func (p *signPool) unlist(r *sigResult) {
	if len(p.results) == 0 {
		return
	}
	if slot := p.probe(r.key, p.hash(r.key, r.digest), r.digest); p.results[slot].r == r {
		p.remove(slot)
	}
}

// remove empties slot i of p.results; the results after it in its probe
// run move back where their probes find them (linear probing's deletion,
// Knuth's algorithm R: no tombstones).
func (p *signPool) remove(i int) {
	mask := len(p.results) - 1
	p.results[i] = resultSlot{}
	p.nres--
	for j := (i + 1) & mask; p.results[j].r != nil; j = (j + 1) & mask {
		s := p.results[j]
		h := int(s.h) & mask // s's home
		// s stays where it is when its home is cyclically in (i, j]
		if i <= j && i < h && h <= j || i > j && (i < h || h <= j) {
			continue
		}
		p.results[i], p.results[j] = s, resultSlot{}
		i = j
	}
}

// fileSet is a set of digests, each given as the index of a file that has
// it (a digestOf function): an open-addressing table of file indexes (+1;
// 0: a free slot, at most 3/4 used) probed from the digest's first 8 bytes,
// with 8 more bits of the hash in tags beside: a probe compares the digest
// of a file whose tag matches only, so that the run of slots it passes
// costs no digestOf (a read of the file's state and one of its digest; at
// a million files, with a digestOf for every slot passed, that loop took
// 1.6 CPU-s of 97).
type fileSet struct {
	slots []uint32
	tags  []uint8
	n     int
}

// fileSetHash is the hash a fileSet probes digest from: the low bits give
// the start, the top 8 the tag.
func fileSetHash(seed maphash.Seed, digest string) uint64 {
	return maphash.Comparable(seed, fingerprint(digest))
}

// probe returns the slot holding digest, whose hash is h (fileSetHash),
// or the first free one.
func (s *fileSet) probe(h uint64, digestOf func(int32) string, digest string) int {
	mask := uint64(len(s.slots) - 1)
	tag := uint8(h >> 56)
	i := h & mask
	for s.slots[i] != 0 && (s.tags[i] != tag || digestOf(int32(s.slots[i]-1)) != digest) {
		i = (i + 1) & mask
	}
	return int(i)
}

// has reports whether digest is in the set.
func (s *fileSet) has(seed maphash.Seed, digestOf func(int32) string, digest string) bool {
	return s.n > 0 && s.slots[s.probe(fileSetHash(seed, digest), digestOf, digest)] != 0
}

// add puts file's digest in the set.
func (s *fileSet) add(seed maphash.Seed, digestOf func(int32) string, file int32) {
	if 4*(s.n+1) > 3*len(s.slots) {
		old := s.slots
		s.slots = make([]uint32, max(1024, 2*len(old)))
		s.tags = make([]uint8, len(s.slots))
		mask := uint64(len(s.slots) - 1)
		for _, f := range old {
			if f == 0 {
				continue
			}
			h := fileSetHash(seed, digestOf(int32(f-1)))
			i := h & mask
			for s.slots[i] != 0 { // every digest is distinct: no compare
				i = (i + 1) & mask
			}
			s.slots[i], s.tags[i] = f, uint8(h>>56)
		}
	}
	digest := digestOf(file)
	h := fileSetHash(seed, digest)
	if i := s.probe(h, digestOf, digest); s.slots[i] == 0 {
		s.slots[i], s.tags[i] = uint32(file)+1, uint8(h>>56)
		s.n++
	}
}

// keptReleased is how many results of sealed files keep their values
// (release): a build of up to this many signatures never signs a digest
// twice.
const keptReleased = 1 << 16

// find returns the slot of the result of (key, digest), whose hash is h,
// in p.results, or the free slot where it goes, growing the table first if
// it is 3/4 full (p.mu held).
func (p *signPool) find(key uint16, h uint64, digest string) int {
	if 4*(p.nres+1) > 3*len(p.results) {
		old := p.results
		p.results = make([]resultSlot, max(1024, 2*len(old)))
		mask := uint64(len(p.results) - 1)
		for _, s := range old {
			if s.r == nil {
				continue
			}
			i := s.h & mask
			for p.results[i].r != nil { // every result is distinct: no compare
				i = (i + 1) & mask
			}
			p.results[i] = s
		}
	}
	return p.probe(key, h, digest)
}

// hash is the hash of (key, digest): its low bits are the slot where the
// probe for it starts in p.results.
func (p *signPool) hash(key uint16, digest string) uint64 {
	// seeded: a tree made to crowd one slot does not know the seed
	return maphash.Comparable(p.seed, struct {
		fp  uint64
		key uint16
	}{fingerprint(digest), key})
}

// probe returns the slot holding (key, digest), whose hash is h, or the
// first free one.
func (p *signPool) probe(key uint16, h uint64, digest string) int {
	mask := uint64(len(p.results) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := p.results[i]
		if s.r == nil || s.h == h && s.r.key == key && s.r.digest == digest {
			return int(i)
		}
	}
}

// wait blocks until r is signed and returns the signing error, if any.
func (p *signPool) wait(r *sigResult) error {
	p.mu.Lock()
	if !r.done {
		ch, ok := p.waiting[r]
		if !ok {
			ch = make(chan struct{})
			p.waiting[r] = ch
		}
		p.mu.Unlock()
		<-ch
		p.mu.Lock()
	}
	defer p.mu.Unlock()
	return p.errs[r]
}

// uniqueOf returns how many unique digests the named key was asked to sign.
func (p *signPool) uniqueOf(key string) int {
	ki, ok := p.index[key]
	if !ok {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.perKey[ki]
}

// forget stops finding the results whose files were all sealed: a later
// submit of the same pair signs it again. The build calls it once every
// file digest has been submitted, so that the lookup does not stay in
// memory while the image's tables are written. The results of files not
// sealed yet stay, for their Seals (lookup), until they are released; a
// late key's (lateKey) are not forgotten.
func (p *signPool) forget() {
	p.mu.Lock()
	defer p.mu.Unlock()
	var kept []keptResult // the late keys', oldest first
	for i := range p.kept {
		k := p.kept[(p.keptAt+i)%len(p.kept)]
		if p.isLate(k.r.key) {
			kept = append(kept, k)
		} else if k.r.refs == 0 {
			k.r.value, k.r.released = nil, true
		}
	}
	p.kept, p.keptAt = kept, 0
	for ki := range p.signed {
		if !p.isLate(uint16(ki)) {
			p.signed[ki] = fileSet{}
		}
	}
	old := p.results
	p.results, p.nres, p.forgotten = nil, 0, true
	for _, s := range old {
		if s.r != nil && (s.r.refs > 0 || p.isLate(s.r.key)) {
			p.results[p.find(s.r.key, s.h, s.r.digest)] = s
			p.nres++
		}
	}
}

// close stops accepting work and waits for every signature. Calls after
// the first do nothing.
func (p *signPool) close() {
	p.closeOnce.Do(func() {
		close(p.jobs)
		close(p.lateJobs)
		p.wg.Wait()
	})
}
