// Package signer makes and checks the security.ima values that Linux IMA
// appraisal reads, byte for byte as the kernel
// (security/integrity/digsig_asymmetric.c, integrity.h) and ima-evm-utils
// (evmctl, libimaevm.c) encode them.
//
// A value starts with a type byte (Type). The ones imaforge writes:
//
//	signature v2  03 | 02 | hash_algo | keyid[4] (BE) | sig_size[2] (BE) | signature
//	digest-ng     04 | hash_algo | digest
//
// hash_algo is the kernel's hash id (Hash: sha256 = 4, sha384 = 5,
// sha512 = 6); keyid is the last 4 bytes of the signing certificate's
// SubjectKeyIdentifier (KeyID); the signature is RSA PKCS#1 v1.5 over a
// DigestInfo, or ECDSA in ASN.1 DER, directly over the file's digest. The
// other types (01 digest, 02 EVM HMAC, 05 EVM portable signature, 06
// fs-verity signature v3) are parsed for reporting (Parse).
//
// Signing takes any crypto.Signer (New), so file keys, PKCS#11 tokens and
// KMS keys plug in alike. Signatures made with Go-held keys are
// deterministic (RSA PKCS#1 v1.5; ECDSA with RFC 6979 nonces), so an image
// can be rebuilt bit for bit; Signer.Deterministic tells whether a key
// backend is. When built with cgo, RSA file keys sign through the system
// libcrypto (about 3.5x faster than crypto/rsa, identical bytes); with
// CGO_ENABLED=0 or the imaforge_purego build tag, crypto/rsa is used.
//
// Verifier checks values against certificates selected by key id, as the
// kernel's IMA keyring does; SHA-1 signatures of old images verify, but new
// ones are never made with SHA-1.
package signer
