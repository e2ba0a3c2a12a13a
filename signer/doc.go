// Package signer makes the security.ima signature values that Linux IMA
// appraisal reads (the format itself, its hash and key ids and verification
// are package imasig's), and loads the keys that make them: key files
// (PEM, PKCS#1/PKCS#8, encrypted PKCS#8), PKCS#11 tokens and the other
// relic token types, and where signatures are stored (FILE.sig or the
// security.ima xattr).
//
// Signing takes any crypto.Signer (New), so file keys, PKCS#11 tokens and
// KMS keys plug in alike. Signatures made with Go-held keys are
// deterministic (RSA PKCS#1 v1.5; ECDSA with RFC 6979 nonces), so an image
// can be rebuilt bit for bit; Signer.Deterministic tells whether a key
// backend is. When built with cgo, RSA file keys sign through the system
// libcrypto (about 3.5x faster than crypto/rsa, identical bytes); with
// CGO_ENABLED=0 or the imaforge_purego build tag, crypto/rsa is used.
package signer
