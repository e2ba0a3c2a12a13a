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

// imaforge_rsa_verify checks an RSA PKCS#1 v1.5 signature over the
// DigestInfo of dgst. Returns 1 when it verifies.
static int imaforge_rsa_verify(EVP_PKEY *pkey, int nid, const unsigned char *dgst,
		size_t dlen, const unsigned char *sig, size_t siglen) {
	const EVP_MD *md = EVP_get_digestbynid(nid);
	EVP_PKEY_CTX *ctx;
	int ok;

	if (md == NULL)
		return 0;
	ctx = EVP_PKEY_CTX_new(pkey, NULL);
	if (ctx == NULL)
		return 0;
	ok = EVP_PKEY_verify_init(ctx) > 0 &&
	     EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) > 0 &&
	     EVP_PKEY_CTX_set_signature_md(ctx, md) > 0 &&
	     EVP_PKEY_verify(ctx, sig, siglen, dgst, dlen) == 1;
	EVP_PKEY_CTX_free(ctx);
	return ok;
}
*/
import "C"

import (
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"runtime"
	"unsafe"
)

// libcryptoRSAVerifier checks signatures with OpenSSL. Verifying only reads
// the key, so goroutines share one EVP_PKEY.
type libcryptoRSAVerifier struct {
	pkey *C.EVP_PKEY
	size int
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
	v := &libcryptoRSAVerifier{pkey: p, size: pub.Size()}
	runtime.AddCleanup(v, func(p *C.EVP_PKEY) { C.EVP_PKEY_free(p) }, p)
	return v.verify, nil
}

func (v *libcryptoRSAVerifier) verify(h crypto.Hash, digest, sig []byte) bool {
	nid := nidOf(h)
	if nid == 0 || len(digest) != h.Size() || len(sig) != v.size {
		return false
	}
	ok := C.imaforge_rsa_verify(v.pkey, nid, (*C.uchar)(unsafe.Pointer(&digest[0])), C.size_t(len(digest)),
		(*C.uchar)(unsafe.Pointer(&sig[0])), C.size_t(len(sig)))
	runtime.KeepAlive(v)
	return ok == 1
}
