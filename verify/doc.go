// Package verify checks a finished SquashFS image the way a device with IMA
// appraisal would judge it, without mounting it, without root and without a
// kernel.
//
// For every regular file of the image it recomputes the content digest with
// the algorithm its security.ima value names and checks the value: the
// format (ima-evm-utils imaevm.h, kernel security/integrity/integrity.h), the
// signature over the digest, the key id resolving to a certificate of the
// trust store, that certificate's chain to a root, its validity at a given
// time, revocation by the CAs' CRLs and the tenant scope of the key
// (package pki). IMA policy fragments found in the image are verified like
// any file and linted for the target kernel (package policy); their rules,
// with any policy files given, predict which files the kernel would appraise
// and refuse (coverage).
//
// Image is the entry point; it returns a Report whose per-file results carry
// machine-readable reason codes (Reason). Report.WriteText and the JSON
// encoding of Report are what `imaforge verify` prints; docs/verify.md
// documents the JSON fields.
//
// What this cannot see: metadata that no signature covers (modes, owners,
// added unsigned files outside every appraise rule). That is the job of a
// whole-image signature (dm-verity, CMS).
package verify
