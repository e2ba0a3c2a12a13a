// Package imasig encodes, decodes and verifies the values Linux IMA and EVM
// keep in the security.ima and security.evm extended attributes, byte for
// byte as the kernel (security/integrity/integrity.h, digsig_asymmetric.c)
// and ima-evm-utils (src/imaevm.h, libimaevm.c) define them.
//
// A value starts with a type byte (Type, the kernel's enum
// evm_ima_xattr_type). The ones imaforge writes:
//
//	signature v2  03 | 02 | hash_algo | keyid[4] (BE) | sig_size[2] (BE) | signature
//	digest-ng     04 | hash_algo | digest
//
// hash_algo is the kernel's hash id (Hash, include/uapi/linux/hash_info.h:
// sha256 = 4, sha384 = 5, sha512 = 6); keyid is the last 4 bytes of the
// signing certificate's SubjectKeyIdentifier (KeyID); the signature is RSA
// PKCS#1 v1.5 over a DigestInfo, or ECDSA in ASN.1 DER, directly over the
// file's digest. The other types (01 digest, 02 EVM HMAC, 05 EVM portable
// signature, 06 fs-verity signature v3) are parsed for reporting (Parse).
//
// Verifier checks values against certificates selected by key id, as the
// kernel's IMA keyring does; SHA-1 signatures of old images verify, but
// new ones are never made with SHA-1 (Hash.SigningAllowed).
//
// The package holds no keys and does no file I/O: making signatures with
// key files, PKCS#11 tokens or KMS keys is package signer's work.
package imasig
