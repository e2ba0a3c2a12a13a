package service

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/imaforge/imaforge/ceremony"
	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/signer"
)

// The defaults of RemoteOptions. A build asks a RemoteKey for up to
// DefaultInFlight signatures at once (pipeline's sign pool), so that
// DefaultConcurrency streamed batches of up to DefaultBatch entries can be
// in flight.
const (
	DefaultBatch       = 1024
	DefaultConcurrency = 3
	DefaultInFlight    = DefaultBatch * DefaultConcurrency
)

// RemoteOptions tune a RemoteKey. Zero values take the defaults.
type RemoteOptions struct {
	ClientOptions
	// Batch is the most entries one request carries (default DefaultBatch,
	// at most MaxStream): each is sent as a streamed request
	// (FormatNDJSON).
	Batch int
	// Concurrency is how many batches are in flight at once (default
	// DefaultConcurrency).
	Concurrency int
	// Linger is how long a partial batch waits for more entries (default
	// 2ms).
	Linger time.Duration
}

// RemoteKey signs image files with a key of a signing service: concurrent
// SignPath calls are gathered into batches, Concurrency batches in flight,
// and every value the service returns is verified against the manifest's
// certificate before it is used. It is a pipeline.Key.
type RemoteKey struct {
	c    *Client
	name string
	cert *x509.Certificate
	// v checks the values of an RSA key through libcrypto
	// (signer.NewVerifier): crypto/rsa's verify was 22% of a build's CPU.
	v    *imasig.Verifier
	opts RemoteOptions

	queue chan *pendingSig
	stop  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
}

type pendingSig struct {
	e     Entry
	h     imasig.Hash
	d     []byte
	value []byte
	err   error
	done  chan struct{}
}

// OpenRemoteKey returns the RemoteKey of key name of the service that the
// relic client configuration clientConfig reaches; cert is the key's
// certificate from the manifest. Close it to stop its batcher.
func OpenRemoteKey(ctx context.Context, clientConfig, name string, cert *x509.Certificate, opts RemoteOptions) (*RemoteKey, error) {
	if cert == nil {
		return nil, fmt.Errorf("%w: key %q: no certificate", ErrRemote, name)
	}
	if err := imasig.CheckKey(cert.PublicKey); err != nil {
		return nil, fmt.Errorf("%w: key %q: %w", ErrRemote, name, err)
	}
	v, err := signer.NewVerifier(cert)
	if err != nil {
		return nil, fmt.Errorf("%w: key %q: %w", ErrRemote, name, err)
	}
	c, err := NewClient(ctx, clientConfig, opts.ClientOptions)
	if err != nil {
		return nil, fmt.Errorf("key %q: %w", name, err)
	}
	if opts.Batch <= 0 || opts.Batch > MaxStream {
		opts.Batch = DefaultBatch
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.Linger <= 0 {
		opts.Linger = 2 * time.Millisecond
	}
	k := &RemoteKey{c: c, name: name, cert: cert, v: v, opts: opts,
		queue: make(chan *pendingSig, opts.Batch*opts.Concurrency), stop: make(chan struct{})}
	k.wg.Add(1)
	go k.batcher()
	return k, nil
}

// KeyID returns the key id of the certificate.
func (k *RemoteKey) KeyID() [4]byte { return imasig.KeyID(k.cert) }

// Servers returns the servers the key is signed by, in order.
func (k *RemoteKey) Servers() []string { return k.c.Servers() }

// Cert returns the key's certificate (the manifest's).
func (k *RemoteKey) Cert() *x509.Certificate { return k.cert }

// Deterministic: RSA PKCS#1 v1.5 is; an ECDSA key in a token is not
// known to be.
func (k *RemoteKey) Deterministic() bool {
	_, ok := k.cert.PublicKey.(*rsa.PublicKey)
	return ok
}

// ErrNeedsPath: the service signs a digest only for a named image path.
var ErrNeedsPath = errors.New("a signing service's key signs image files by path only")

// SignDigest is refused: the service checks each path against the key's
// scope, so it needs SignPath.
func (k *RemoteKey) SignDigest(imasig.Hash, []byte) ([]byte, error) {
	return nil, fmt.Errorf("%w (key %q)", ErrNeedsPath, k.name)
}

// SignPath returns the security.ima value of the file at image path p with
// digest d (made with h), signed by the service and verified here.
func (k *RemoteKey) SignPath(h imasig.Hash, p string, d []byte) ([]byte, error) {
	ps := &pendingSig{e: NewEntry(p, h, d), h: h, d: d, done: make(chan struct{})}
	select {
	case k.queue <- ps:
	case <-k.stop:
		return nil, fmt.Errorf("%w: key %q is closed", ErrRemote, k.name)
	}
	<-ps.done
	return ps.value, ps.err
}

// Close stops the batcher after the queued signatures.
func (k *RemoteKey) Close() error {
	k.once.Do(func() { close(k.stop) })
	k.wg.Wait()
	return nil
}

func (k *RemoteKey) batcher() {
	defer k.wg.Done()
	sem := make(chan struct{}, k.opts.Concurrency)
	var inflight sync.WaitGroup
	defer inflight.Wait()
	for {
		// A free slot first, then the batch: while every slot is busy the
		// entries queue up, and the next batch takes up to Batch of them
		// at once (batching after the wait sent batches of 34 entries on
		// average in a 50,000-file build, each with its request, relic's
		// certificate loading and audit record).
		sem <- struct{}{}
		var first *pendingSig
		select {
		case first = <-k.queue:
		case <-k.stop:
			<-sem
			return
		}
		batch := []*pendingSig{first}
		timer := time.NewTimer(k.opts.Linger)
	fill:
		for len(batch) < k.opts.Batch {
			select {
			case ps := <-k.queue:
				batch = append(batch, ps)
			case <-timer.C:
				break fill
			}
		}
		timer.Stop()
		inflight.Add(1)
		go func() {
			defer func() { <-sem; inflight.Done() }()
			k.send(batch)
		}()
	}
}

// send signs one batch and verifies every value before handing it out.
func (k *RemoteKey) send(batch []*pendingSig) {
	entries := make([]Entry, len(batch))
	for i, ps := range batch {
		entries[i] = ps.e
	}
	vals, srv, err := k.c.SignStreamAt(context.Background(), k.name, entries)
	for i, ps := range batch {
		switch {
		case err != nil:
			ps.err = err
		default:
			if verr := k.verify(ps.h, vals[i], ps.d); verr != nil {
				ps.err = fmt.Errorf("%w %s, key %q: the value returned for %s does not verify against the manifest's certificate: %w", ErrRemote, srv, k.name, ps.e.Path, verr)
			} else {
				ps.value = vals[i]
			}
		}
		close(ps.done)
	}
}

// verify checks that val is a v2 signature over digest d, made with h, by
// the manifest's certificate (ceremony.VerifyValue).
func (k *RemoteKey) verify(h imasig.Hash, val, d []byte) error {
	return ceremony.VerifyValue(k.v, h, val, d)
}
