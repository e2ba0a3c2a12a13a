package signer

import (
	"context"
	"runtime"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/imaforge/imaforge/imasig"
)

// SignFiles hashes each file with h, signs it and writes the value to store,
// with workers goroutines (0: one per CPU) so hashing and signing use every
// core. Identical contents are signed once. It stops at the first failure
// and returns that error, which names the file. done, if not nil, is called
// after each file is signed (concurrently).
func SignFiles(ctx context.Context, s *Signer, h imasig.Hash, store Store, paths []string, workers int, done func(path string, value []byte)) error {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	var mu sync.Mutex
	cache := make(map[string][]byte) // digest -> value
	parent := ctx
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for _, p := range paths {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if err := ctx.Err(); err != nil {
				return err
			}
			d, err := DigestFile(h, p)
			if err != nil {
				return err
			}
			mu.Lock()
			v, ok := cache[string(d)]
			mu.Unlock()
			if !ok {
				if v, err = s.SignDigest(h, d); err != nil {
					return &FileError{Path: p, Op: "sign", Err: err}
				}
				mu.Lock()
				cache[string(d)] = v
				mu.Unlock()
			}
			if err := store.Write(p, v); err != nil {
				return err
			}
			if done != nil {
				done(p, v)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return parent.Err()
}

// VerifyFiles checks the stored value of each file with v, using workers
// goroutines (0: one per CPU). It returns one error per path, in order (nil
// when the file verified); failures are *InvalidSignatureError with Path set,
// or *FileError when the file or its value could not be read.
func VerifyFiles(ctx context.Context, v *imasig.Verifier, store Store, paths []string, workers int) []error {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	errs := make([]error, len(paths))
	var wg sync.WaitGroup
	sem := make(chan struct{}, workers)
	for i, p := range paths {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := ctx.Err(); err != nil {
				errs[i] = err
				return
			}
			errs[i] = VerifyFile(v, store, p)
		}()
	}
	wg.Wait()
	return errs
}

// VerifyFile checks one file's stored value with v.
func VerifyFile(v *imasig.Verifier, store Store, path string) error {
	value, err := store.Read(path)
	if err != nil {
		return err
	}
	sig, err := imasig.ParseSignature(value)
	if err != nil {
		return &imasig.InvalidSignatureError{Path: path, Err: err}
	}
	d, err := DigestFile(sig.Hash, path)
	if err != nil {
		if !sig.Hash.Available() {
			return &imasig.InvalidSignatureError{Path: path, KeyID: sig.KeyID, Err: err}
		}
		return err
	}
	if err := v.Verify(value, d); err != nil {
		if ise, ok := err.(*imasig.InvalidSignatureError); ok {
			ise.Path = path
		}
		return err
	}
	return nil
}
