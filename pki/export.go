package pki

import (
	"bytes"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/template"
	"time"

	_ "embed"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/internal/atomicfile"
)

// Export writes what a device needs to trust the hierarchy in ts into a
// directory:
//
//	certs/NN-<role>-<name>.der  the certificates to load, DER, in load order:
//	                            roots, owner CAs, IMA certificates
//	trusted-keys.pem            the roots, for CONFIG_SYSTEM_TRUSTED_KEYS
//	blacklist-hashes.txt        tbs: entries of revoked certificates, for
//	                            CONFIG_SYSTEM_BLACKLIST_HASH_LIST (only written
//	                            when something is revoked: an empty list does
//	                            not compile)
//	load-keys.sh                loads certs/ with keyctl in order (see the script)
//	load-policy.sh              checks a tenant image's policy fragment and
//	                            appends it to the kernel's policy (see the script)
//	export.json                 what was exported and why (ExportResult)
//
// Every certificate is checked against ts first (chain, CA flags, key
// usage, revocation); one that fails for another reason than revocation
// stops the export. Revoked certificates, and those issued by a revoked CA,
// are left out of certs/ and their own tbs: entries go to the blacklist.
// Dates are reported (Warnings) but do not exclude a certificate: the kernel
// ignores them, and images signed while a key was valid must keep working.
func Export(ts *TrustStore, dir string, now time.Time) (*ExportResult, error) {
	res := &ExportResult{Generated: now.UTC()}
	var loaded []exportItem
	// What a device loads is judged on the CRLs given: a CA without a
	// current CRL is a warning on what it issued, not a reason to leave it
	// out (revoked certificates on the CRLs given are blacklisted).
	work := ts.clone()
	work.bestEffort = true
	add := func(c *x509.Certificate, role Role, ch *Chain, checkErr error) error {
		it := exportItem{cert: c, info: describe(c, role)}
		if ch != nil {
			it.info.Warnings = append(it.info.Warnings, ch.Warnings...)
		}
		if !now.IsZero() {
			if err := checkValidity(c, now); err != nil {
				it.info.Warnings = append(it.info.Warnings, err.Error())
			}
		}
		var ce *CertError
		if checkErr == nil {
			// The CA's inventory may know a revocation the CRLs given
			// do not carry yet (an older CRL file): fail closed.
			if e := ts.inventoryEntry(c.RawIssuer, c.AuthorityKeyId, c.SerialNumber); e != nil && e.IsRevoked() && role != RoleRoot {
				checkErr = &CertError{Cert: c, Reason: fmt.Sprintf("was revoked on %s (%s) by its CA's inventory; the CRL given does not list it yet (re-sign it with `imaforge pki crl`)", e.Revoked.Format(time.RFC3339), ReasonName(e.Reason)), Err: ErrRevoked}
				it.info.Warnings = append(it.info.Warnings, checkErr.Error())
			}
		}
		switch {
		case checkErr == nil:
			loaded = append(loaded, it)
		case errors.Is(checkErr, ErrRevoked) && errors.As(checkErr, &ce):
			if ce.Cert.Equal(c) {
				it.info.Blacklist = BlacklistEntries(c)
				res.Revoked = append(res.Revoked, it.info)
				res.Blacklist = append(res.Blacklist, it.info.Blacklist...)
			} else {
				it.info.Warnings = append(it.info.Warnings, "left out: "+ce.Error())
				res.Skipped = append(res.Skipped, it.info)
			}
		default:
			return checkErr
		}
		return nil
	}
	for _, c := range sortCerts(ts.roots) {
		if err := add(c, RoleRoot, nil, nil); err != nil {
			return nil, err
		}
	}
	var cas, imas []*x509.Certificate
	for _, c := range ts.intermediates {
		if c.IsCA {
			cas = append(cas, c)
		} else {
			imas = append(imas, c)
		}
	}
	for _, c := range sortCerts(cas) {
		ch, err := work.CheckCA(c, time.Time{})
		if err := add(c, RoleOwnerCA, ch, err); err != nil {
			return nil, err
		}
	}
	for _, c := range sortCerts(imas) {
		ch, err := work.CheckSigner(c, nil, time.Time{})
		if err == nil && len(ch.Certs) == 2 {
			res.RootSignedIMA = true
		}
		if err := add(c, RoleIMA, ch, err); err != nil {
			return nil, err
		}
	}

	loaded = res.dropSuperseded(loaded, now)
	res.blacklistUnseen(ts)

	if err := os.MkdirAll(filepath.Join(dir, "certs"), 0o755); err != nil {
		return nil, err
	}
	var rootsPEM bytes.Buffer
	for i, it := range loaded {
		name := fmt.Sprintf("certs/%02d-%s-%s.der", i+1, it.info.Role, Slug(it.cert.Subject.CommonName))
		if err := atomicfile.WriteFile(filepath.Join(dir, name), it.cert.Raw, 0o644); err != nil {
			return nil, err
		}
		it.info.File = name
		res.Loaded = append(res.Loaded, it.info)
		if it.info.Role == RoleRoot.String() {
			rootsPEM.Write(EncodeCertificatePEM(it.cert))
		}
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "trusted-keys.pem"), rootsPEM.Bytes(), 0o644); err != nil {
		return nil, err
	}
	res.Files = append(res.Files, "trusted-keys.pem")
	if len(res.Blacklist) > 0 {
		bl, err := FormatBlacklist(res.Blacklist)
		if err != nil {
			return nil, err
		}
		if err := atomicfile.WriteFile(filepath.Join(dir, "blacklist-hashes.txt"), bl, 0o644); err != nil {
			return nil, err
		}
		res.Files = append(res.Files, "blacklist-hashes.txt")
	}
	script, err := LoadKeysScript(res)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "load-keys.sh"), script, 0o755); err != nil {
		return nil, err
	}
	policyScript, err := LoadPolicyScript(res)
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "load-policy.sh"), policyScript, 0o755); err != nil {
		return nil, err
	}
	res.Files = append(res.Files, "load-keys.sh", "load-policy.sh", "export.json")
	js, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(filepath.Join(dir, "export.json"), append(js, '\n'), 0o644); err != nil {
		return nil, err
	}
	return res, nil
}

// ExportResult records an export (written as export.json).
type ExportResult struct {
	Generated time.Time      `json:"generated"`
	Loaded    []ExportedCert `json:"loaded"`            // in load order
	Revoked   []ExportedCert `json:"revoked,omitempty"` // blacklisted, not loaded
	Skipped   []ExportedCert `json:"skipped,omitempty"` // issued by a revoked CA
	Blacklist []string       `json:"blacklist,omitempty"`
	// RootSignedIMA: an IMA certificate is issued by a root directly, so
	// the script also puts the roots into the owner keyring.
	RootSignedIMA bool     `json:"root_signed_ima,omitempty"`
	Files         []string `json:"files"`
	// Warnings are about the export as a whole (a revoked serial whose
	// certificate is not known, so it cannot be blacklisted).
	Warnings []string `json:"warnings,omitempty"`
}

// dropSuperseded keeps one certificate per key and role: when a key was
// certified again (a renewal overlapping the old certificate), the newest
// certificate valid at now (the newest of all when none is) is loaded and
// the others are skipped as superseded; a device needs the key once.
func (res *ExportResult) dropSuperseded(loaded []exportItem, now time.Time) []exportItem {
	var out []exportItem
	for i, it := range loaded {
		var same []*x509.Certificate
		for _, o := range loaded {
			if o.info.Role == it.info.Role && samePublicKey(o.cert.PublicKey, it.cert.PublicKey) {
				same = append(same, o.cert)
			}
		}
		if len(same) == 1 {
			out = append(out, loaded[i])
			continue
		}
		newestFirst(same)
		best := same[0]
		if !now.IsZero() {
			for _, c := range same {
				if checkValidity(c, now) == nil {
					best = c
					break
				}
			}
		}
		if best.Equal(it.cert) {
			out = append(out, it)
			continue
		}
		it.info.Warnings = append(it.info.Warnings, fmt.Sprintf("left out: superseded by serial %s of the same key (valid %s to %s)",
			hex.EncodeToString(best.SerialNumber.Bytes()), best.NotBefore.UTC().Format(time.RFC3339), best.NotAfter.UTC().Format(time.RFC3339)))
		res.Skipped = append(res.Skipped, it.info)
	}
	return out
}

// blacklistUnseen blacklists every certificate the CRLs of ts revoke that
// the export has not seen (its file was not given), finding it in the CA's
// inventory (TrustStore.AddInventory); a revoked serial whose certificate
// is nowhere, or an inventory revocation no CRL carries, is a warning.
func (res *ExportResult) blacklistUnseen(ts *TrustStore) {
	seen := map[string]bool{}
	key := func(issuer []byte, serial *big.Int) string { return string(issuer) + "\x00" + serial.String() }
	for _, list := range [][]ExportedCert{res.Revoked, res.Skipped} {
		for _, e := range list {
			seen[e.Issuer+"\x00"+e.Serial] = true
		}
	}
	isSeen := func(c *x509.Certificate) bool {
		return seen[c.Issuer.String()+"\x00"+hex.EncodeToString(c.SerialNumber.Bytes())]
	}
	done := map[string]bool{}
	blacklist := func(e *InventoryEntry, why string) {
		if isSeen(e.Cert) || ts.contains(e.Cert) {
			return
		}
		role := RoleIMA
		if e.Cert.IsCA {
			role = RoleOwnerCA
		}
		info := describe(e.Cert, role)
		info.Blacklist = BlacklistEntries(e.Cert)
		info.Warnings = append(info.Warnings, why)
		res.Revoked = append(res.Revoked, info)
		res.Blacklist = append(res.Blacklist, info.Blacklist...)
		seen[info.Issuer+"\x00"+info.Serial] = true
	}
	for _, ca := range sortCerts(ts.cas()) {
		for _, crl := range ts.crls[ca] {
			for _, r := range crl.RevokedCertificateEntries {
				k := key(ca.RawSubject, r.SerialNumber)
				if done[k] {
					continue
				}
				done[k] = true
				e := ts.inventoryEntry(ca.RawSubject, ca.SubjectKeyId, r.SerialNumber)
				switch {
				case e != nil && e.Cert != nil:
					blacklist(e, fmt.Sprintf("not given; found in the inventory of %s", subjectOf(ca)))
				case !ts.revokedCertKnown(ca, r.SerialNumber):
					res.Warnings = append(res.Warnings, fmt.Sprintf("the CRL of %s (number %v) revokes serial %s, whose certificate is neither given nor in an inventory: it cannot be blacklisted (give it with --cert, or the CA's inventory with --index)",
						subjectOf(ca), crl.Number, hex.EncodeToString(r.SerialNumber.Bytes())))
				}
			}
		}
	}
	for _, inv := range ts.inventories {
		for i := range inv.Entries {
			e := &inv.Entries[i]
			if e.IsRevoked() && e.Cert != nil {
				blacklist(e, "revoked in its CA's inventory, but on no CRL given (re-sign the CRL with `imaforge pki crl`)")
			}
		}
	}
}

// revokedCertKnown reports whether the store holds the certificate of ca
// with serial.
func (ts *TrustStore) revokedCertKnown(ca *x509.Certificate, serial *big.Int) bool {
	return slices.ContainsFunc(slices.Concat(ts.roots, ts.intermediates), func(c *x509.Certificate) bool {
		return string(c.RawIssuer) == string(ca.RawSubject) && c.SerialNumber.Cmp(serial) == 0
	})
}

// ExportedCert describes one certificate of an export.
type ExportedCert struct {
	File      string    `json:"file,omitempty"`
	Role      string    `json:"role"`
	Subject   string    `json:"subject"`
	Issuer    string    `json:"issuer"`
	Serial    string    `json:"serial"`
	KeyID     string    `json:"ima_key_id"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	TBSHash   string    `json:"tbs_hash"`
	Scope     []string  `json:"scope,omitempty"`
	Blacklist []string  `json:"blacklist,omitempty"`
	Warnings  []string  `json:"warnings,omitempty"`
}

type exportItem struct {
	cert *x509.Certificate
	info ExportedCert
}

// Describe describes c as an export does, with its role read from it:
// root (self-signed CA), owner-ca (other CA) or ima.
func Describe(c *x509.Certificate) ExportedCert {
	role := RoleIMA
	switch {
	case c.IsCA && string(c.RawIssuer) == string(c.RawSubject):
		role = RoleRoot
	case c.IsCA:
		role = RoleOwnerCA
	}
	return describe(c, role)
}

func describe(c *x509.Certificate, role Role) ExportedCert {
	id := imasig.KeyID(c)
	s, _ := ParseScope(c)
	return ExportedCert{
		Role:      role.String(),
		Subject:   c.Subject.String(),
		Issuer:    c.Issuer.String(),
		Serial:    hex.EncodeToString(c.SerialNumber.Bytes()),
		KeyID:     hex.EncodeToString(id[:]),
		NotBefore: c.NotBefore.UTC(),
		NotAfter:  c.NotAfter.UTC(),
		TBSHash:   TBSHash(c),
		Scope:     s.Patterns(),
	}
}

// sortCerts orders certificates by subject, then serial, so an export does
// not depend on the order of the trust files.
func sortCerts(in []*x509.Certificate) []*x509.Certificate {
	out := slices.Clone(in)
	slices.SortStableFunc(out, func(a, b *x509.Certificate) int {
		if c := strings.Compare(a.Subject.String(), b.Subject.String()); c != 0 {
			return c
		}
		return a.SerialNumber.Cmp(b.SerialNumber)
	})
	return out
}

// Slug turns a common name into a file name part: lowercase ASCII letters
// and digits, other runs replaced by one '-'.
func Slug(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	out := strings.TrimSuffix(b.String(), "-")
	if len(out) > 40 {
		out = strings.TrimSuffix(out[:40], "-")
	}
	if out == "" {
		out = "cert"
	}
	return out
}

//go:embed load-keys.sh.tmpl
var loadKeysTemplate string

var loadKeysTmpl = template.Must(template.New("load-keys.sh").Parse(loadKeysTemplate))

// LoadKeysScript renders load-keys.sh for an export.
func LoadKeysScript(res *ExportResult) ([]byte, error) {
	var roots, cas, imas []string
	for _, c := range res.Loaded {
		switch c.Role {
		case RoleRoot.String():
			roots = append(roots, c.File)
		case RoleOwnerCA.String():
			cas = append(cas, c.File)
		default:
			imas = append(imas, c.File)
		}
	}
	var b bytes.Buffer
	err := loadKeysTmpl.Execute(&b, map[string]any{
		"Roots": strings.Join(roots, " "), "OwnerCAs": strings.Join(cas, " "), "IMACerts": strings.Join(imas, " "),
		"RootSignedIMA": res.RootSignedIMA, "Revoked": res.Revoked,
	})
	return b.Bytes(), err
}
