package pipeline

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sync"
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
// A build keeps one result per unique pair until the image is written, so
// the pool's state is kept small: results are found by (key index, the
// digest's first 8 bytes), with the whole digest compared; a finished
// result is told apart by a flag under the pool's lock, not by a channel or
// WaitGroup of its own; errors (rare) are kept aside.
type signPool struct {
	names []string   // key names, by index
	fns   []signFunc // by key index
	index map[string]uint32

	mu       sync.Mutex
	finished *sync.Cond // on mu: a result became done
	results  map[sigFP]*sigResult
	errs     map[*sigResult]error
	unique   int

	jobs      chan sigJob
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// sigFP finds a result: the key's index and the digest's first 8 bytes.
type sigFP struct {
	key uint32
	fp  uint64
}

// fingerprint is the first 8 bytes of digest (zero-padded).
func fingerprint(digest []byte) uint64 {
	var b [8]byte
	copy(b[:], digest)
	return binary.LittleEndian.Uint64(b[:])
}

// sigResult is a signature that is, or will be, computed: its value is
// valid once signPool.wait returns. digest is what was signed (the file's
// digest, shared, not copied), next another pair whose fingerprint is the
// same (practically never).
type sigResult struct {
	digest  []byte
	next    *sigResult
	value   []byte
	key     uint32
	done    bool // under signPool.mu
	counted bool // the record has counted it (one goroutine, after the pool)
}

// sigJob is one signature to make.
type sigJob struct {
	r    *sigResult
	path string
}

func newSignPool(ctx context.Context, keys map[string]signFunc, workers int) *signPool {
	if workers < 1 {
		workers = 1
	}
	p := &signPool{
		index:   make(map[string]uint32, len(keys)),
		results: make(map[sigFP]*sigResult),
		errs:    make(map[*sigResult]error),
		jobs:    make(chan sigJob, 4096),
	}
	p.finished = sync.NewCond(&p.mu)
	for name, fn := range keys {
		p.index[name] = uint32(len(p.names))
		p.names = append(p.names, name)
		p.fns = append(p.fns, fn)
	}
	for range workers {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for j := range p.jobs {
				var value []byte
				err := ctx.Err()
				if err == nil {
					value, err = p.fns[j.r.key](j.path, j.r.digest)
				}
				p.mu.Lock()
				j.r.value, j.r.done = value, true
				if err != nil {
					p.errs[j.r] = err
				}
				p.finished.Broadcast()
				p.mu.Unlock()
			}
		}()
	}
	return p
}

// submit asks for the signature of digest, of the file at image path, with
// the named key and returns its (possibly shared) result. digest must not
// change afterwards.
func (p *signPool) submit(key, path string, digest []byte) *sigResult {
	ki, ok := p.index[key]
	if !ok {
		r := &sigResult{digest: digest, done: true}
		p.mu.Lock()
		p.errs[r] = fmt.Errorf("internal: no signer for key %q", key)
		p.mu.Unlock()
		return r
	}
	fp := sigFP{ki, fingerprint(digest)}
	p.mu.Lock()
	head := p.results[fp]
	for r := head; r != nil; r = r.next {
		if bytes.Equal(r.digest, digest) {
			p.mu.Unlock()
			return r
		}
	}
	r := &sigResult{digest: digest, key: ki, next: head}
	p.results[fp] = r
	p.unique++
	p.mu.Unlock()
	p.jobs <- sigJob{r, path}
	return r
}

// wait blocks until r is signed and returns the signing error, if any.
func (p *signPool) wait(r *sigResult) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for !r.done {
		p.finished.Wait()
	}
	return p.errs[r]
}

// forget stops finding the results submitted so far: a later submit of the
// same pair signs it again. The build calls it once every file digest has
// been submitted, so that the lookup does not stay in memory while the
// image's tables are written.
func (p *signPool) forget() {
	p.mu.Lock()
	p.results = make(map[sigFP]*sigResult)
	p.mu.Unlock()
}

// close stops accepting work and waits for every signature. Calls after
// the first do nothing.
func (p *signPool) close() {
	p.closeOnce.Do(func() {
		close(p.jobs)
		p.wg.Wait()
	})
}
