//go:build cgo && !imaforge_purego

package signer

/*
#cgo pkg-config: libcrypto
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

static EVP_PKEY *imaforge_rsa_load_pub(const unsigned char *der, long len) {
	const unsigned char *p = der;
	return d2i_PUBKEY(NULL, &p, len);
}

// imaforge_rsa_verify_ctx makes a context that checks RSA PKCS#1 v1.5
// signatures by pkey over the DigestInfo of a nid digest, or NULL.
// EVP_PKEY_verify_init fetches the algorithm from the provider (a lookup in
// OpenSSL's method store): done once per context, not per signature, since
// EVP_PKEY_verify may be called again on the same context with the same
// parameters (EVP_PKEY_verify(3)).
static EVP_PKEY_CTX *imaforge_rsa_verify_ctx(EVP_PKEY *pkey, int nid) {
	const EVP_MD *md = EVP_get_digestbynid(nid);
	EVP_PKEY_CTX *ctx;
	if (md == NULL)
		return NULL;
	ctx = EVP_PKEY_CTX_new(pkey, NULL);
	if (ctx == NULL)
		return NULL;
	if (EVP_PKEY_verify_init(ctx) > 0 &&
	    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) > 0 &&
	    EVP_PKEY_CTX_set_signature_md(ctx, md) > 0)
		return ctx;
	EVP_PKEY_CTX_free(ctx);
	return NULL;
}

// imaforge_rsa_verify checks sig over dgst with ctx (imaforge_rsa_verify_ctx).
// Returns 1 when it verifies.
static int imaforge_rsa_verify(EVP_PKEY_CTX *ctx, const unsigned char *dgst,
		size_t dlen, const unsigned char *sig, size_t siglen) {
	return EVP_PKEY_verify(ctx, sig, siglen, dgst, dlen) == 1;
}
*/
import "C"

import (
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"runtime"
	"sync"
	"unsafe"
)

// libcryptoRSAVerifier checks signatures with OpenSSL. Verifying only reads
// the key, so goroutines share one EVP_PKEY; each verification takes a
// context of its digest from ctxs (one per goroutine verifying at a time),
// made once instead of per signature (an RSA-2048 verification took 20.8 us
// of CPU, 17.8 us with a kept context; a Go-tree rebuild from the cache verifies 15,000
// cached signatures).
type libcryptoRSAVerifier struct {
	pkey *C.EVP_PKEY
	size int
	ctxs *verifyCtxs
}

// verifyCtxs are the idle verification contexts of one key, by digest nid.
type verifyCtxs struct {
	mu   sync.Mutex
	idle map[C.int][]*C.EVP_PKEY_CTX
}

func newLibcryptoRSAVerifier(pub *rsa.PublicKey) (func(h crypto.Hash, digest, sig []byte) bool, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, err
	}
	p := C.imaforge_rsa_load_pub((*C.uchar)(unsafe.Pointer(&der[0])), C.long(len(der)))
	if p == nil {
		return nil, errors.New("libcrypto: cannot load the RSA public key")
	}
	v := &libcryptoRSAVerifier{pkey: p, size: pub.Size(), ctxs: &verifyCtxs{idle: map[C.int][]*C.EVP_PKEY_CTX{}}}
	runtime.AddCleanup(v, func(c *verifyCtxs) {
		for _, l := range c.idle {
			for _, ctx := range l {
				C.EVP_PKEY_CTX_free(ctx)
			}
		}
		C.EVP_PKEY_free(p)
	}, v.ctxs)
	return v.verify, nil
}

func (v *libcryptoRSAVerifier) verify(h crypto.Hash, digest, sig []byte) bool {
	nid := nidOf(h)
	if nid == 0 || len(digest) != h.Size() || len(sig) != v.size {
		return false
	}
	c := v.ctxs
	c.mu.Lock()
	var ctx *C.EVP_PKEY_CTX
	if l := c.idle[nid]; len(l) > 0 {
		ctx, c.idle[nid] = l[len(l)-1], l[:len(l)-1]
	}
	c.mu.Unlock()
	if ctx == nil {
		if ctx = C.imaforge_rsa_verify_ctx(v.pkey, nid); ctx == nil {
			return false
		}
	}
	ok := C.imaforge_rsa_verify(ctx, (*C.uchar)(unsafe.Pointer(&digest[0])), C.size_t(len(digest)),
		(*C.uchar)(unsafe.Pointer(&sig[0])), C.size_t(len(sig))) == 1
	runtime.KeepAlive(v)
	if !ok {
		// A context is reused only after a verification that succeeded:
		// the next one starts from a fresh context.
		C.EVP_PKEY_CTX_free(ctx)
		return false
	}
	c.mu.Lock()
	c.idle[nid] = append(c.idle[nid], ctx)
	c.mu.Unlock()
	return true
}
