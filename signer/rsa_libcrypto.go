//go:build cgo && !imaforge_purego

package signer

/*
#cgo pkg-config: libcrypto
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

static EVP_PKEY *imaforge_rsa_load(const unsigned char *der, long len) {
	const unsigned char *p = der;
	return d2i_PrivateKey(EVP_PKEY_RSA, NULL, &p, len);
}

// imaforge_rsa_sign_batch makes n RSA PKCS#1 v1.5 signatures over the
// DigestInfo of each digest, with one context: digest i is dgst[i*dlen:], its signature goes to
// sig[i*siglen:] and must be exactly siglen bytes. Returns 1 when all are made.
static int imaforge_rsa_sign_batch(EVP_PKEY *pkey, int nid, const unsigned char *dgst,
		size_t dlen, size_t n, unsigned char *sig, size_t siglen) {
	const EVP_MD *md = EVP_get_digestbynid(nid);
	EVP_PKEY_CTX *ctx;
	size_t i, len;
	int ok;

	if (md == NULL)
		return 0;
	ctx = EVP_PKEY_CTX_new(pkey, NULL);
	if (ctx == NULL)
		return 0;
	ok = EVP_PKEY_sign_init(ctx) > 0 &&
	     EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) > 0 &&
	     EVP_PKEY_CTX_set_signature_md(ctx, md) > 0;
	for (i = 0; ok && i < n; i++) {
		len = siglen;
		ok = EVP_PKEY_sign(ctx, sig + i*siglen, &len, dgst + i*dlen, dlen) > 0 && len == siglen;
	}
	EVP_PKEY_CTX_free(ctx);
	return ok;
}

// An imaforge_rsa_thread is a thread of its own that signs with its own
// copy of the key: Go posts a batch (the digests in dgst, then a write to
// in_fd) and waits for the eventfd out_fd, which the thread writes when the
// signatures are in sig (ok: 1 when all were made). Go's scheduler sees a
// goroutine waiting on a file, not one in a call into C for milliseconds:
// it does not take the goroutine's P away at every batch nor keep its
// monitor thread waking every 20 us to do so.
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

// the most digests one post takes: BatchSize
#define IMAFORGE_RSA_BATCH 64
#define IMAFORGE_RSA_MAX_DIGEST 64

typedef struct {
	EVP_PKEY *pkey;
	int in_fd, out_fd;
	int nid, ok, quit, dead;
	size_t dlen, n, siglen;
	unsigned char dgst[IMAFORGE_RSA_BATCH * IMAFORGE_RSA_MAX_DIGEST];
	unsigned char *sig;
} imaforge_rsa_thread;

static void *imaforge_rsa_thread_main(void *arg) {
	imaforge_rsa_thread *t = arg;
	uint64_t v;
	ssize_t r;

	for (;;) {
		r = read(t->in_fd, &v, sizeof v);
		if (r < 0 && errno == EINTR)
			continue;
		if (r != sizeof v) {
			// cannot happen with an eventfd; the waiting Go side sees
			// dead and drops the thread (its memory is not freed)
			t->ok = 0;
			t->dead = 1;
			v = 1;
			while (write(t->out_fd, &v, sizeof v) < 0 && errno == EINTR)
				;
			return NULL;
		}
		if (t->quit)
			break;
		t->ok = imaforge_rsa_sign_batch(t->pkey, t->nid, t->dgst, t->dlen, t->n, t->sig, t->siglen);
		v = 1;
		while (write(t->out_fd, &v, sizeof v) < 0 && errno == EINTR)
			;
	}
	EVP_PKEY_free(t->pkey);
	close(t->in_fd);
	free(t->sig);
	free(t);
	return NULL;
}

// imaforge_rsa_thread_start starts a signing thread with a copy of key;
// it owns in_fd from then on (out_fd stays the caller's). NULL: not started
// (the caller still owns both descriptors).
static imaforge_rsa_thread *imaforge_rsa_thread_start(EVP_PKEY *key, size_t siglen, int in_fd, int out_fd) {
	imaforge_rsa_thread *t = calloc(1, sizeof *t);
	pthread_attr_t a;
	pthread_t th;
	int ok;

	if (t == NULL)
		return NULL;
	t->sig = malloc(IMAFORGE_RSA_BATCH * siglen);
	t->pkey = EVP_PKEY_dup(key);
	t->in_fd = in_fd;
	t->out_fd = out_fd;
	if (t->sig == NULL || t->pkey == NULL || pthread_attr_init(&a) != 0) {
		EVP_PKEY_free(t->pkey);
		free(t->sig);
		free(t);
		return NULL;
	}
	ok = pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED) == 0 &&
	     pthread_attr_setstacksize(&a, 256 << 10) == 0 &&
	     pthread_create(&th, &a, imaforge_rsa_thread_main, t) == 0;
	pthread_attr_destroy(&a);
	if (!ok) {
		EVP_PKEY_free(t->pkey);
		free(t->sig);
		free(t);
		return NULL;
	}
	return t;
}
*/
import "C"

import (
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// One post to a signing thread takes BatchSize digests (a compile-time
// check that the two agree).
const _, _ = uint(C.IMAFORGE_RSA_BATCH - BatchSize), uint(BatchSize - C.IMAFORGE_RSA_BATCH)

// LibcryptoAvailable reports whether this build signs RSA with the system
// libcrypto (built with cgo and without the imaforge_purego tag).
const LibcryptoAvailable = true

// libcryptoRSA signs with OpenSSL's RSA, about 3.5x faster than crypto/rsa
// for 2048-bit keys on x86-64. PKCS#1 v1.5 is deterministic, so its bytes
// equal crypto/rsa's (tested).
//
// Signatures are made on signing threads of its own (imaforge_rsa_thread),
// at most GOMAXPROCS, started when first needed, each with its own copy of
// the key: OpenSSL serializes private-key operations of threads sharing one
// RSA key on its blinding lock, which measured here gave 2 goroutines 1.2x
// the signatures of one instead of 2x. A goroutine signing waits for its
// thread on an eventfd (the runtime's poller), so that Go's scheduler does
// not see a call into C lasting milliseconds: with one per signature batch
// it took the caller's P away each time (its monitor thread then woke about
// every 20 us: 65,000 wake-ups, twice as many context switches, in a build
// of 50,000 small files).
type libcryptoRSA struct {
	key     *C.EVP_PKEY     // the loaded key; each thread signs with a copy
	threads chan *rsaThread // idle threads, at most cap(threads)
	mu      sync.Mutex
	made    int // threads started so far
	size    int // modulus length in bytes
}

// rsaThread is a signing thread: c is its state in C memory, in the
// eventfd that posts work to it, out the eventfd it writes when done.
type rsaThread struct {
	c      *C.imaforge_rsa_thread
	in     int
	out    *os.File
	broken bool // posting or waiting failed: its state is unknown
}

func newLibcryptoRSA(k *rsa.PrivateKey) (rsaBackend, error) {
	der := x509.MarshalPKCS1PrivateKey(k)
	defer clear(der)
	p := C.imaforge_rsa_load((*C.uchar)(unsafe.Pointer(&der[0])), C.long(len(der)))
	if p == nil {
		return nil, errors.New("libcrypto: cannot load the RSA key")
	}
	b := &libcryptoRSA{key: p, threads: make(chan *rsaThread, max(runtime.GOMAXPROCS(0), 1)), size: k.Size()}
	runtime.AddCleanup(b, func(st rsaState) {
		stopThreads(st.threads)
		C.EVP_PKEY_free(st.key)
	}, rsaState{p, b.threads})
	return b, nil
}

// rsaState is what the cleanup of a libcryptoRSA frees: once the backend is
// unreachable, all its threads are idle.
type rsaState struct {
	key     *C.EVP_PKEY
	threads chan *rsaThread
}

// stopThreads ends the idle threads in threads and returns how many.
func stopThreads(threads chan *rsaThread) int {
	for n := 0; ; n++ {
		select {
		case t := <-threads:
			t.stop()
		default:
			return n
		}
	}
}

// get returns an idle thread, starting one while fewer than cap(threads)
// exist, else waiting for one to be put back.
func (b *libcryptoRSA) get() (*rsaThread, error) {
	select {
	case t := <-b.threads:
		return t, nil
	default:
	}
	b.mu.Lock()
	if b.made < cap(b.threads) {
		b.made++
		b.mu.Unlock()
		t, err := b.start()
		if err != nil {
			b.mu.Lock()
			b.made--
			b.mu.Unlock()
		}
		return t, err
	}
	b.mu.Unlock()
	return <-b.threads, nil
}

// start starts a signing thread.
func (b *libcryptoRSA) start() (*rsaThread, error) {
	in, err := unix.Eventfd(0, unix.EFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("libcrypto signing thread: %w", err)
	}
	out, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(in)
		return nil, fmt.Errorf("libcrypto signing thread: %w", err)
	}
	c := C.imaforge_rsa_thread_start(b.key, C.size_t(b.size), C.int(in), C.int(out))
	runtime.KeepAlive(b)
	if c == nil {
		unix.Close(in)
		unix.Close(out)
		return nil, errors.New("libcrypto: cannot start a signing thread")
	}
	// non-blocking: read through the runtime's poller
	return &rsaThread{c: c, in: in, out: os.NewFile(uintptr(out), "eventfd")}, nil
}

// put gives back a thread that signed without trouble; a dead or broken one
// is dropped (not freed: it may still be running), and another may be
// started in its place.
func (b *libcryptoRSA) put(t *rsaThread) {
	if t.broken || t.c.dead != 0 {
		b.mu.Lock()
		b.made--
		b.mu.Unlock()
		return
	}
	b.threads <- t
}

// stop ends an idle thread, which frees its state.
func (t *rsaThread) stop() {
	t.c.quit = 1
	eventfdPost(t.in)
	t.out.Close()
}

func eventfdPost(fd int) error {
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	for {
		_, err := unix.Write(fd, one[:])
		if err != unix.EINTR {
			return err
		}
	}
}

// sign makes the signatures of digests (at most C.IMAFORGE_RSA_BATCH, all
// of dlen bytes) on t, into out (len(digests) * size bytes).
func (t *rsaThread) sign(nid C.int, digests [][]byte, size int, out []byte) error {
	c := t.c
	in := unsafe.Slice((*byte)(unsafe.Pointer(&c.dgst[0])), len(c.dgst))
	off := 0
	for _, d := range digests {
		off += copy(in[off:], d)
	}
	c.nid, c.dlen, c.n, c.siglen = nid, C.size_t(len(digests[0])), C.size_t(len(digests)), C.size_t(size)
	if err := eventfdPost(t.in); err != nil {
		t.broken = true
		return fmt.Errorf("libcrypto signing thread: %w", err)
	}
	var done [8]byte
	if _, err := io.ReadFull(t.out, done[:]); err != nil {
		t.broken = true
		return fmt.Errorf("libcrypto signing thread: %w", err)
	}
	if c.ok != 1 {
		return errors.New("libcrypto: RSA signing failed")
	}
	copy(out, unsafe.Slice((*byte)(unsafe.Pointer(c.sig)), len(digests)*size))
	return nil
}

func nidOf(h crypto.Hash) C.int {
	switch h {
	case crypto.SHA224:
		return C.NID_sha224
	case crypto.SHA256:
		return C.NID_sha256
	case crypto.SHA384:
		return C.NID_sha384
	case crypto.SHA512:
		return C.NID_sha512
	case crypto.SHA3_256:
		return C.NID_sha3_256
	case crypto.SHA3_384:
		return C.NID_sha3_384
	case crypto.SHA3_512:
		return C.NID_sha3_512
	}
	return 0
}

func (b *libcryptoRSA) signPKCS1v15(h crypto.Hash, digest []byte) ([]byte, error) {
	sigs, err := b.signPKCS1v15Batch(h, [][]byte{digest})
	if err != nil {
		return nil, err
	}
	return sigs[0], nil
}

// signPKCS1v15Batch signs digests (all of h's size) on one signing thread,
// C.IMAFORGE_RSA_BATCH at a time.
func (b *libcryptoRSA) signPKCS1v15Batch(h crypto.Hash, digests [][]byte) ([][]byte, error) {
	nid := nidOf(h)
	if nid == 0 || len(digests) == 0 {
		return nil, fmt.Errorf("libcrypto: %v not supported", h)
	}
	dlen := len(digests[0])
	for _, d := range digests {
		if len(d) != dlen || dlen == 0 || dlen > C.IMAFORGE_RSA_MAX_DIGEST {
			return nil, errors.New("libcrypto: digests of different or unsupported lengths")
		}
	}
	t, err := b.get()
	if err != nil {
		return nil, err
	}
	defer b.put(t)
	out := make([]byte, b.size*len(digests))
	for i := 0; i < len(digests); i += C.IMAFORGE_RSA_BATCH {
		j := min(i+C.IMAFORGE_RSA_BATCH, len(digests))
		if err := t.sign(nid, digests[i:j], b.size, out[i*b.size:j*b.size]); err != nil {
			return nil, err
		}
	}
	sigs := make([][]byte, len(digests))
	for i := range sigs {
		sigs[i] = out[i*b.size : (i+1)*b.size : (i+1)*b.size]
	}
	return sigs, nil
}
