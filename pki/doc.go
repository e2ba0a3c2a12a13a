// Package pki creates and checks the certificate hierarchy that a device
// with IMA appraisal trusts, and writes what a device loads.
//
// The hierarchy has three levels:
//
//	manufacturer root CA   built into the kernel (.builtin_trusted_keys) or
//	  │                    loaded first into a locked user keyring
//	  ├── owner CA         signed by the root; .secondary_trusted_keys /
//	  │     │              .machine, or a user keyring restricted by the root
//	  │     └── IMA cert   signed by an owner CA; .ima / _ima, restricted
//	  └── IMA cert         (the manufacturer's own signing key)
//
// Certificates carry what the kernel's X.509 parser
// (crypto/asymmetric_keys/x509_cert_parser.c) reads and nothing it rejects:
// basicConstraints and keyUsage (keyCertSign for CAs, digitalSignature for
// IMA keys; Linux 6.4+ uses them in restrict_link_by_ca and
// restrict_link_by_digsig), a SubjectKeyIdentifier computed as SHA-1 of the
// subject public key bit string (RFC 5280 4.2.1.2 method 1, what openssl's
// subjectKeyIdentifier=hash writes: its last four bytes are the IMA key id
// that security.ima signatures name) and an AuthorityKeyIdentifier (the
// kernel finds a certificate's issuer in a restricted keyring by it).
// Signatures on certificates use SHA-256 (RSA PKCS#1 v1.5 or ECDSA), the hash
// the kernel's blacklist uses for tbs: entries on every version.
//
// The kernel checks neither validity dates nor, before 6.4, key usage and
// CA flags when a certificate is added to a restricted keyring. Those checks
// happen here: TrustStore.CheckSigner runs before a build signs anything and
// in `imaforge pki verify`; Export only writes certificates that pass them.
//
// Tenant scope: an IMA certificate (or an owner CA) may carry the image paths
// its key may sign in a private, non-critical extension (OIDScope); see
// Scope and docs/pki.md.
//
// Revocation: one X.509 CRL per CA (RFC 5280 section 5), and for the kernel
// the `tbs:<hex sha256 of TBSCertificate>` entries of
// CONFIG_SYSTEM_BLACKLIST_HASH_LIST (certs/Kconfig, certs/blacklist.c).
package pki
