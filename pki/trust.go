package pki

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"math/big"
	"path/filepath"
	"slices"
	"time"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/signer"
)

// TrustConfig lists the files of a trust store, as the manifest's
// `trust:` section does. Relative paths are resolved against a base
// directory (the manifest's). Certificate files are PEM (any number of
// certificates) or DER; CRL files PEM or DER.
type TrustConfig struct {
	Roots         []string `yaml:"roots" json:"roots"`
	Intermediates []string `yaml:"intermediates,omitempty" json:"intermediates,omitempty"`
	CRLs          []string `yaml:"crls,omitempty" json:"crls,omitempty"`
	// Revocation is RevocationRequired (the default, "") or
	// RevocationBestEffort.
	Revocation string `yaml:"revocation,omitempty" json:"revocation,omitempty"`
}

// Revocation modes of a trust store (the manifest's trust.revocation).
const (
	// RevocationRequired: every CA of a chain that issues a certificate
	// must have a current CRL in the store (nextUpdate not passed); a
	// missing or stale one fails the chain with ErrRevocationUnknown.
	RevocationRequired = "required"
	// RevocationBestEffort: a missing or stale CRL is a warning
	// (Chain.Warnings); revoked certificates on the CRLs given still fail.
	RevocationBestEffort = "best-effort"
)

// CheckRevocationMode checks a revocation mode's name ("" is
// RevocationRequired).
func CheckRevocationMode(mode string) error {
	switch mode {
	case "", RevocationRequired, RevocationBestEffort:
		return nil
	}
	return fmt.Errorf("revocation %q: want %q or %q", mode, RevocationRequired, RevocationBestEffort)
}

// TrustStore is what a device trusts, seen from the build: manufacturer
// roots, intermediate certificates (owner CAs; IMA certificates listed here
// are indexed for ResolveKeyID too) and the CRLs of the CAs. It is safe for
// concurrent reads; Add must not run concurrently with other methods.
type TrustStore struct {
	roots         []*x509.Certificate
	intermediates []*x509.Certificate
	crls          map[*x509.Certificate][]*x509.RevocationList // by issuing CA
	byKeyID       map[[4]byte]*x509.Certificate
	bestEffort    bool         // RevocationBestEffort
	inventories   []*Inventory // AddInventory: what the CAs issued, for Export
}

// AddInventory adds the inventory of a CA in the store (Inventory.CheckCA
// must pass for one of its certificates), so that Export can blacklist a
// revoked certificate whose file is not given.
func (ts *TrustStore) AddInventory(inv *Inventory) error {
	var errs []error
	for _, ca := range ts.cas() {
		err := inv.CheckCA(ca)
		if err == nil {
			ts.inventories = append(ts.inventories, inv)
			return nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return fmt.Errorf("%w: CA %q is not in the trust store", ErrInventory, inv.CASubject)
	}
	return errs[0]
}

// inventoryEntry returns the inventory entry of the certificate with serial
// issued by the CA named issuer with key id akid, or nil.
func (ts *TrustStore) inventoryEntry(issuer []byte, akid []byte, serial *big.Int) *InventoryEntry {
	for _, inv := range ts.inventories {
		e := inv.Lookup(serial)
		if e == nil || !bytes.Equal(inv.CAKeyID, akid) {
			continue
		}
		if e.Cert != nil && string(e.Cert.RawIssuer) != string(issuer) {
			continue
		}
		return e
	}
	return nil
}

// SetRevocation sets the store's revocation mode (RevocationRequired, the
// default, or RevocationBestEffort).
func (ts *TrustStore) SetRevocation(mode string) error {
	if err := CheckRevocationMode(mode); err != nil {
		return err
	}
	ts.bestEffort = mode == RevocationBestEffort
	return nil
}

// Revocation returns the store's revocation mode.
func (ts *TrustStore) Revocation() string {
	if ts.bestEffort {
		return RevocationBestEffort
	}
	return RevocationRequired
}

// LoadTrustStore reads the files cfg lists (relative to baseDir) and builds
// a TrustStore (see NewTrustStore). Errors name the file.
func LoadTrustStore(cfg TrustConfig, baseDir string) (*TrustStore, error) {
	resolve := func(p string) string {
		if filepath.IsAbs(p) || baseDir == "" {
			return p
		}
		return filepath.Join(baseDir, p)
	}
	ts := &TrustStore{crls: map[*x509.Certificate][]*x509.RevocationList{}, byKeyID: map[[4]byte]*x509.Certificate{}}
	if len(cfg.Roots) == 0 {
		return nil, fmt.Errorf("trust store: no roots")
	}
	if err := ts.SetRevocation(cfg.Revocation); err != nil {
		return nil, fmt.Errorf("trust store: %w", err)
	}
	for _, p := range cfg.Roots {
		certs, err := signer.LoadCertificates(resolve(p))
		if err != nil {
			return nil, fmt.Errorf("trust store: root: %w", err)
		}
		for _, c := range certs {
			if err := ts.addRoot(c); err != nil {
				return nil, fmt.Errorf("trust store: %s: %w", resolve(p), err)
			}
		}
	}
	for _, p := range cfg.Intermediates {
		certs, err := signer.LoadCertificates(resolve(p))
		if err != nil {
			return nil, fmt.Errorf("trust store: intermediate: %w", err)
		}
		for _, c := range certs {
			if err := ts.Add(c); err != nil {
				return nil, fmt.Errorf("trust store: %s: %w", resolve(p), err)
			}
		}
	}
	for _, p := range cfg.CRLs {
		crl, err := ReadCRL(resolve(p))
		if err != nil {
			return nil, fmt.Errorf("trust store: %w", err)
		}
		if err := ts.AddCRL(crl); err != nil {
			return nil, fmt.Errorf("trust store: %s: %w", resolve(p), err)
		}
	}
	return ts, nil
}

// NewTrustStore builds a TrustStore. Roots must be self-signed CA
// certificates; every CRL must be signed by one of the CAs; two different
// certificates with the same IMA key id are an error (ErrDuplicateKeyID).
func NewTrustStore(roots, intermediates []*x509.Certificate, crls []*x509.RevocationList) (*TrustStore, error) {
	ts := &TrustStore{crls: map[*x509.Certificate][]*x509.RevocationList{}, byKeyID: map[[4]byte]*x509.Certificate{}}
	if len(roots) == 0 {
		return nil, fmt.Errorf("trust store: no roots")
	}
	for _, c := range roots {
		if err := ts.addRoot(c); err != nil {
			return nil, fmt.Errorf("trust store: %w", err)
		}
	}
	for _, c := range intermediates {
		if err := ts.Add(c); err != nil {
			return nil, fmt.Errorf("trust store: %w", err)
		}
	}
	for _, crl := range crls {
		if err := ts.AddCRL(crl); err != nil {
			return nil, fmt.Errorf("trust store: %w", err)
		}
	}
	return ts, nil
}

func (ts *TrustStore) addRoot(c *x509.Certificate) error {
	if string(c.RawIssuer) != string(c.RawSubject) || c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature) != nil {
		return &CertError{Cert: c, Reason: "is not self-signed, so it cannot be a root", Err: ErrUnknownIssuer}
	}
	if err := checkCA(c); err != nil {
		return err
	}
	if slices.ContainsFunc(ts.roots, c.Equal) {
		return nil
	}
	if err := ts.index(c); err != nil {
		return err
	}
	ts.roots = append(ts.roots, c)
	return nil
}

// Add adds an intermediate certificate (an owner CA) or an IMA certificate
// to the store, so that chains can go through it and ResolveKeyID finds it.
// Adding a certificate already present does nothing.
func (ts *TrustStore) Add(c *x509.Certificate) error {
	if ts.contains(c) {
		return nil
	}
	if err := ts.index(c); err != nil {
		return err
	}
	ts.intermediates = append(ts.intermediates, c)
	return nil
}

func (ts *TrustStore) contains(c *x509.Certificate) bool {
	return slices.ContainsFunc(ts.roots, c.Equal) || slices.ContainsFunc(ts.intermediates, c.Equal)
}

// index records c under its IMA key id: the kernel's .ima_blacklist and its
// key lookup ("id:<8 hex>") work by that id, so two certificates sharing it
// are ambiguous on a device.
func (ts *TrustStore) index(c *x509.Certificate) error {
	id := imasig.KeyID(c)
	if other, ok := ts.byKeyID[id]; ok && !other.Equal(c) {
		if samePublicKey(other.PublicKey, c.PublicKey) {
			// The same key certified again (a renewal, a rotation
			// overlap): one key, so the kernel's lookup by id finds
			// the right key whichever it loads; ResolveKeyID picks.
			return nil
		}
		return &CertError{Cert: c, Reason: fmt.Sprintf("has IMA key id %s, as %s has, with a different key", hex.EncodeToString(id[:]), subjectOf(other)), Err: ErrDuplicateKeyID}
	}
	ts.byKeyID[id] = c
	return nil
}

// AddCRL adds a CRL. It must be signed by a CA in the store (checked);
// several CRLs of one CA add up. A CA certified twice with one key (a
// renewal) gets the CRL under each of its certificates.
func (ts *TrustStore) AddCRL(crl *x509.RevocationList) error {
	added := false
	for _, ca := range ts.cas() {
		if string(crl.RawIssuer) != string(ca.RawSubject) {
			continue
		}
		if len(crl.AuthorityKeyId) > 0 && len(ca.SubjectKeyId) > 0 && !bytes.Equal(crl.AuthorityKeyId, ca.SubjectKeyId) {
			continue
		}
		if crl.CheckSignatureFrom(ca) != nil {
			continue
		}
		ts.crls[ca] = append(ts.crls[ca], crl)
		added = true
	}
	if added {
		return nil
	}
	return fmt.Errorf("%w: CRL of %q (number %v) is not signed by any CA in the trust store", ErrCRL, crl.Issuer.String(), crl.Number)
}

func (ts *TrustStore) cas() []*x509.Certificate {
	var out []*x509.Certificate
	for _, c := range slices.Concat(ts.roots, ts.intermediates) {
		if c.IsCA {
			out = append(out, c)
		}
	}
	return out
}

// Roots returns the root certificates.
func (ts *TrustStore) Roots() []*x509.Certificate { return slices.Clone(ts.roots) }

// Intermediates returns the non-root certificates (owner CAs and any IMA
// certificates added).
func (ts *TrustStore) Intermediates() []*x509.Certificate { return slices.Clone(ts.intermediates) }

// CRLs returns the CRLs of ca (nil when it has none in the store).
func (ts *TrustStore) CRLs(ca *x509.Certificate) []*x509.RevocationList {
	for k, v := range ts.crls {
		if k.Equal(ca) {
			return slices.Clone(v)
		}
	}
	return nil
}

// ResolveKeyID returns the certificate in the store with IMA key id id
// (imasig.KeyID), for verifying a signature that names it. When one key has
// several certificates (a renewal overlapping the old one), it is the
// newest one whose chain holds (not revoked; dates are not checked, as for
// old signatures), or the newest of all when none holds.
func (ts *TrustStore) ResolveKeyID(id [4]byte) (*x509.Certificate, error) {
	var cands []*x509.Certificate
	for _, c := range slices.Concat(ts.roots, ts.intermediates) {
		if imasig.KeyID(c) == id {
			cands = append(cands, c)
		}
	}
	if len(cands) == 0 {
		return nil, fmt.Errorf("%w: %s", ErrUnknownKeyID, hex.EncodeToString(id[:]))
	}
	newestFirst(cands)
	for _, c := range cands {
		if _, err := ts.checkChain(c, time.Time{}, true); err == nil {
			return c, nil
		}
	}
	return cands[0], nil
}

// newestFirst orders certificates by notBefore, then notAfter, then serial
// number, the newest first.
func newestFirst(certs []*x509.Certificate) {
	slices.SortStableFunc(certs, func(a, b *x509.Certificate) int {
		if c := b.NotBefore.Compare(a.NotBefore); c != 0 {
			return c
		}
		if c := b.NotAfter.Compare(a.NotAfter); c != 0 {
			return c
		}
		return b.SerialNumber.Cmp(a.SerialNumber)
	})
}

// revokedAnywhere reports whether c is on a CRL of any CA named as its
// issuer.
func (ts *TrustStore) revokedAnywhere(c *x509.Certificate) bool {
	for ca := range ts.crls {
		if string(ca.RawSubject) == string(c.RawIssuer) && ts.checkRevoked(c, ca) != nil {
			return true
		}
	}
	return false
}

// Chain is a checked certificate chain, leaf first, root last.
type Chain struct {
	Certs []*x509.Certificate
	// Warnings are what a best-effort revocation check could not know
	// (a CA without a current CRL); empty under RevocationRequired, where
	// they are errors.
	Warnings []string
}

// Leaf returns the IMA signing certificate.
func (ch *Chain) Leaf() *x509.Certificate { return ch.Certs[0] }

// Root returns the trusted root the chain ends in.
func (ch *Chain) Root() *x509.Certificate { return ch.Certs[len(ch.Certs)-1] }

// KeyID returns the IMA key id of the leaf (imasig.KeyID).
func (ch *Chain) KeyID() [4]byte { return imasig.KeyID(ch.Leaf()) }

// CheckPath reports whether the leaf's key may sign the image path p: every
// certificate in the chain that carries a scope must allow p (an owner CA's
// scope bounds the IMA certificates it issues). The error is a *CertError
// wrapping ErrOutOfScope naming the certificate whose scope excludes p.
func (ch *Chain) CheckPath(p string) error {
	for _, c := range ch.Certs {
		s, err := ParseScope(c)
		if err != nil {
			return &CertError{Cert: c, Reason: err.Error(), Err: err}
		}
		if !s.Allows(p) {
			return &CertError{Cert: c, Reason: fmt.Sprintf("may not sign %s: its scope is %s", p, s), Err: ErrOutOfScope}
		}
	}
	return nil
}

// CheckWhole reports whether the leaf's key may sign a whole image (a CMS
// signature over the image, a dm-verity root hash, a RAUC bundle): every
// certificate of the chain that carries a scope must cover every path
// (Scope.Whole). The error is a *CertError wrapping ErrOutOfScope.
func (ch *Chain) CheckWhole() error {
	for _, c := range ch.Certs {
		if err := CheckWholeScope(c); err != nil {
			return err
		}
	}
	return nil
}

// CheckWholeScope is CheckWhole for one certificate (a key used without a
// trust store).
func CheckWholeScope(c *x509.Certificate) error {
	s, err := ParseScope(c)
	if err != nil {
		return &CertError{Cert: c, Reason: err.Error(), Err: err}
	}
	if !s.Whole() {
		return &CertError{Cert: c, Reason: fmt.Sprintf("may not sign a whole image: its scope is %s, not /**", s), Err: ErrOutOfScope}
	}
	return nil
}

// Allows reports whether CheckPath(p) passes.
func (ch *Chain) Allows(p string) bool { return ch.CheckPath(p) == nil }

// maxChain bounds chain building (root, owner CA, IMA: 3 in this hierarchy).
const maxChain = 8

// CheckSigner checks that cert may sign IMA signatures on a device trusting
// ts, at time now, and returns its chain. It checks, in this order:
//
//   - pub (the public half of the private key that will sign; nil skips
//     this) equals cert's public key: ErrKeyMismatch;
//   - cert is an IMA signing certificate the kernel can use: keyUsage with
//     digitalSignature, not a CA, extendedKeyUsage (if any) allowing
//     codeSigning, RSA >= 2048 or ECDSA P-256/P-384: ErrKeyUsage,
//     ErrUnsupportedKey;
//   - a chain leads to a root of ts, each signature verifying: ErrUnknownIssuer,
//     ErrBadSignature; every CA on it has basicConstraints CA:TRUE, keyUsage
//     keyCertSign and a path length that allows the chain: ErrKeyUsage;
//   - every certificate of the chain is valid at now (skipped when now is
//     the zero time, for checking signatures made in the past: the kernel
//     never checks dates): ErrNotYetValid, ErrExpired;
//   - no certificate of the chain is on its issuer's CRLs: ErrRevoked;
//   - crypto/x509's own verification agrees: ErrChainRejected;
//   - no other certificate in ts has cert's IMA key id: ErrDuplicateKeyID.
//
// Errors are *CertError naming the certificate at fault. To catch two
// signing keys with one key id, Add every signing certificate first (Add
// refuses the second), then check each.
func (ts *TrustStore) CheckSigner(cert *x509.Certificate, pub crypto.PublicKey, now time.Time) (*Chain, error) {
	if pub != nil && !samePublicKey(pub, cert.PublicKey) {
		return nil, &CertError{Cert: cert, Reason: "does not belong to the private key given (public keys differ)", Err: ErrKeyMismatch}
	}
	if err := checkIMALeaf(cert); err != nil {
		return nil, err
	}
	id := imasig.KeyID(cert)
	if other, ok := ts.byKeyID[id]; ok && !other.Equal(cert) && !samePublicKey(other.PublicKey, cert.PublicKey) {
		return nil, &CertError{Cert: cert, Reason: fmt.Sprintf("has IMA key id %s, as %s in the trust store has, with a different key", hex.EncodeToString(id[:]), subjectOf(other)), Err: ErrDuplicateKeyID}
	}
	return ts.checkChain(cert, now, ts.bestEffort)
}

// CheckCA checks an owner CA (or a root) as CheckSigner checks an IMA
// certificate: a CA with keyCertSign, chaining to a root of ts, valid at now
// (zero: dates not checked), not revoked.
func (ts *TrustStore) CheckCA(cert *x509.Certificate, now time.Time) (*Chain, error) {
	if err := checkCA(cert); err != nil {
		return nil, err
	}
	return ts.checkChain(cert, now, ts.bestEffort)
}

// checkChain builds cert's chain and checks its CAs, dates and revocation;
// with bestEffort, unknown revocation is a warning of the chain.
func (ts *TrustStore) checkChain(cert *x509.Certificate, now time.Time, bestEffort bool) (*Chain, error) {
	certs, err := ts.buildChain(cert, now)
	if err != nil {
		return nil, err
	}
	for i, c := range certs[1:] {
		if err := checkCA(c); err != nil {
			return nil, err
		}
		// i CAs lie between c and the leaf.
		if c.BasicConstraintsValid && (c.MaxPathLen > 0 || c.MaxPathLenZero) && i > c.MaxPathLen {
			return nil, &CertError{Cert: c, Reason: fmt.Sprintf("allows %d CA(s) below it (pathLenConstraint), the chain has %d", c.MaxPathLen, i), Err: ErrKeyUsage}
		}
	}
	for _, c := range certs {
		if _, err := ParseScope(c); err != nil {
			return nil, &CertError{Cert: c, Reason: err.Error(), Err: err}
		}
	}
	if !now.IsZero() {
		for _, c := range certs {
			if err := checkValidity(c, now); err != nil {
				return nil, err
			}
		}
	}
	ch := &Chain{Certs: certs}
	for i, c := range certs[:len(certs)-1] {
		if err := ts.checkRevoked(c, certs[i+1]); err != nil {
			return nil, err
		}
		if err := ts.checkRevocationKnown(c, certs[i+1], now); err != nil {
			if !bestEffort {
				return nil, err
			}
			ch.Warnings = append(ch.Warnings, err.Error())
		}
	}
	if !now.IsZero() {
		if err := crossCheck(certs, now); err != nil {
			return nil, err
		}
	}
	return ch, nil
}

// checkRevocationKnown reports whether the store knows if c is revoked: its
// issuer has a CRL whose nextUpdate is not before now (any CRL when now is
// the zero time, dates not being checked). Unknown is never "not revoked".
func (ts *TrustStore) checkRevocationKnown(c, issuer *x509.Certificate, now time.Time) error {
	crls := ts.crls[issuer]
	if len(crls) == 0 {
		return &CertError{Cert: c, Reason: fmt.Sprintf("has unknown revocation status: the trust store has no CRL of its issuer %s (give it, or set trust.revocation: best-effort)", subjectOf(issuer)), Err: ErrRevocationUnknown}
	}
	var latest *x509.RevocationList
	for _, crl := range crls {
		if now.IsZero() || (!crl.NextUpdate.IsZero() && !crl.NextUpdate.Before(now)) {
			return nil
		}
		if latest == nil || crl.NextUpdate.After(latest.NextUpdate) {
			latest = crl
		}
	}
	return &CertError{Cert: c, Reason: fmt.Sprintf("has unknown revocation status: the CRL of its issuer %s (number %v) is stale, its nextUpdate %s has passed (now %s); re-sign it with `imaforge pki crl`",
		subjectOf(issuer), latest.Number, latest.NextUpdate.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339)), Err: ErrRevocationUnknown}
}

// checkIMALeaf checks what an IMA signing certificate needs. Linux 6.4+
// (restrict_link_by_digsig, IMA_KEYRINGS_PERMIT_SIGNED_BY_BUILTIN_OR_SECONDARY)
// requires digitalSignature; a CA certificate must not sign files, or the
// holder of a tenant key could issue itself more certificates.
func checkIMALeaf(c *x509.Certificate) error {
	if err := checkPublicKey(c.PublicKey); err != nil {
		return &CertError{Cert: c, Reason: err.Error(), Err: err}
	}
	if c.IsCA {
		return &CertError{Cert: c, Reason: "is a CA certificate (basicConstraints CA:TRUE); sign with an IMA certificate it issues", Err: ErrKeyUsage}
	}
	if c.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return &CertError{Cert: c, Reason: "has no keyUsage digitalSignature, which IMA signing keys need", Err: ErrKeyUsage}
	}
	if len(c.ExtKeyUsage) > 0 || len(c.UnknownExtKeyUsage) > 0 {
		if !slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageCodeSigning) && !slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageAny) {
			return &CertError{Cert: c, Reason: "has an extendedKeyUsage without codeSigning", Err: ErrKeyUsage}
		}
	}
	if len(c.UnhandledCriticalExtensions) > 0 {
		return &CertError{Cert: c, Reason: fmt.Sprintf("has unknown critical extensions %v", c.UnhandledCriticalExtensions), Err: ErrKeyUsage}
	}
	return nil
}

// checkCA checks what an issuing certificate needs (what Linux 6.4+
// restrict_link_by_ca and every X.509 verifier check).
func checkCA(c *x509.Certificate) error {
	switch {
	case !c.BasicConstraintsValid || !c.IsCA:
		return &CertError{Cert: c, Reason: "is not a CA (basicConstraints CA:TRUE missing) but issues certificates", Err: ErrKeyUsage}
	case c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageCertSign == 0:
		return &CertError{Cert: c, Reason: "is a CA without keyUsage keyCertSign", Err: ErrKeyUsage}
	case len(c.UnhandledCriticalExtensions) > 0:
		return &CertError{Cert: c, Reason: fmt.Sprintf("has unknown critical extensions %v", c.UnhandledCriticalExtensions), Err: ErrKeyUsage}
	}
	return nil
}

func checkValidity(c *x509.Certificate, now time.Time) error {
	if now.Before(c.NotBefore) {
		return &CertError{Cert: c, Reason: fmt.Sprintf("is not valid before %s (now %s)", c.NotBefore.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339)), Err: ErrNotYetValid}
	}
	if now.After(c.NotAfter) {
		return &CertError{Cert: c, Reason: fmt.Sprintf("expired on %s (now %s)", c.NotAfter.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339)), Err: ErrExpired}
	}
	return nil
}

// buildChain walks from c to a root, picking as issuer a certificate whose
// subject is c's issuer, whose subjectKeyIdentifier matches c's
// authorityKeyIdentifier (when both exist) and whose key verifies c's
// signature. When a CA has several certificates of one key (a renewal), it
// takes one that is not revoked and valid at now (when not zero), the
// newest first.
func (ts *TrustStore) buildChain(c *x509.Certificate, now time.Time) ([]*x509.Certificate, error) {
	chain := []*x509.Certificate{c}
	for cur := c; ; {
		if slices.ContainsFunc(ts.roots, cur.Equal) {
			return chain, nil
		}
		if len(chain) >= maxChain {
			return nil, &CertError{Cert: c, Reason: fmt.Sprintf("has a chain longer than %d certificates", maxChain), Err: ErrUnknownIssuer}
		}
		var named []*x509.Certificate
		var parent *x509.Certificate
		for _, p := range ts.issuerCandidates(now) {
			if string(p.RawSubject) != string(cur.RawIssuer) || p.Equal(cur) || slices.ContainsFunc(chain, p.Equal) {
				continue
			}
			named = append(named, p)
			if len(cur.AuthorityKeyId) > 0 && len(p.SubjectKeyId) > 0 && !bytes.Equal(cur.AuthorityKeyId, p.SubjectKeyId) {
				continue
			}
			if p.CheckSignature(cur.SignatureAlgorithm, cur.RawTBSCertificate, cur.Signature) == nil {
				parent = p
				break
			}
		}
		if parent == nil {
			if len(named) > 0 {
				return nil, &CertError{Cert: cur, Reason: fmt.Sprintf("is not signed by the key of %s, the trusted certificate with its issuer's name (forged, or issued by another CA of that name)", subjectOf(named[0])), Err: ErrBadSignature}
			}
			return nil, &CertError{Cert: cur, Reason: fmt.Sprintf("is issued by %q, which is not in the trust store", cur.Issuer.String()), Err: ErrUnknownIssuer}
		}
		chain = append(chain, parent)
		cur = parent
	}
}

// issuerCandidates lists the store's certificates in the order buildChain
// tries them: roots first, then those neither revoked nor out of date at
// now, each group newest first.
func (ts *TrustStore) issuerCandidates(now time.Time) []*x509.Certificate {
	rank := func(c *x509.Certificate) int {
		switch {
		case slices.ContainsFunc(ts.roots, c.Equal):
			return 0
		case ts.revokedAnywhere(c):
			return 3
		case !now.IsZero() && checkValidity(c, now) != nil:
			return 2
		}
		return 1
	}
	all := slices.Concat(ts.roots, ts.intermediates)
	newestFirst(all)
	slices.SortStableFunc(all, func(a, b *x509.Certificate) int { return rank(a) - rank(b) })
	return all
}

// checkRevoked reports whether c is on a CRL of its issuer.
func (ts *TrustStore) checkRevoked(c, issuer *x509.Certificate) error {
	for _, crl := range ts.crls[issuer] {
		for _, e := range crl.RevokedCertificateEntries {
			if e.SerialNumber.Cmp(c.SerialNumber) == 0 {
				return &CertError{Cert: c, Reason: fmt.Sprintf("was revoked on %s by %s (CRL number %v, %s)", e.RevocationTime.UTC().Format(time.RFC3339), subjectOf(issuer), crl.Number, ReasonName(e.ReasonCode)), Err: ErrRevoked}
			}
		}
	}
	return nil
}

// crossCheck runs crypto/x509's verifier over the chain found, so that
// anything it rejects and the checks above missed still stops the build.
func crossCheck(certs []*x509.Certificate, now time.Time) error {
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(certs[len(certs)-1])
	for _, c := range certs[1 : len(certs)-1] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		return &CertError{Cert: certs[0], Reason: fmt.Sprintf("is rejected by crypto/x509: %v", err), Err: fmt.Errorf("%w: %w", ErrChainRejected, err)}
	}
	return nil
}

func samePublicKey(a, b crypto.PublicKey) bool {
	ak, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && ak.Equal(b)
}
