package pipeline

import (
	"context"
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
type signPool struct {
	keys map[string]signFunc

	mu      sync.Mutex
	results map[sigKey]*sigResult
	unique  int

	jobs      chan *sigResult
	wg        sync.WaitGroup
	closeOnce sync.Once
}

type sigKey struct {
	key    string
	digest string
}

// sigResult is a signature that is, or will be, computed. value and err are
// valid once wait returns. One is kept per unique (key, digest) until the
// image is written, so it is small: a WaitGroup, not a channel (96 bytes
// more per file).
type sigResult struct {
	key    string
	path   string
	digest []byte
	done   sync.WaitGroup
	value  []byte
	err    error
}

// wait blocks until the signature is made.
func (r *sigResult) wait() { r.done.Wait() }

func newSignPool(ctx context.Context, keys map[string]signFunc, workers int) *signPool {
	if workers < 1 {
		workers = 1
	}
	p := &signPool{
		keys:    keys,
		results: make(map[sigKey]*sigResult),
		jobs:    make(chan *sigResult, 4096),
	}
	for range workers {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			for r := range p.jobs {
				if err := ctx.Err(); err != nil {
					r.err = err
				} else {
					r.value, r.err = p.keys[r.key](r.path, r.digest)
				}
				r.done.Done()
			}
		}()
	}
	return p
}

// submit asks for the signature of digest, of the file at image path, with
// the named key and returns its (possibly shared) result.
func (p *signPool) submit(key, path string, digest []byte) *sigResult {
	k := sigKey{key, string(digest)}
	p.mu.Lock()
	r, ok := p.results[k]
	if !ok {
		r = &sigResult{key: key, path: path, digest: digest}
		r.done.Add(1)
		p.results[k] = r
		p.unique++
	}
	p.mu.Unlock()
	if !ok {
		p.jobs <- r
	}
	return r
}

// close stops accepting work and waits for every signature. Calls after
// the first do nothing.
func (p *signPool) close() {
	p.closeOnce.Do(func() {
		close(p.jobs)
		p.wg.Wait()
	})
}
