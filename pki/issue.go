package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strings"
	"time"
)

// Role is a certificate's place in the hierarchy.
type Role int

// The roles imaforge issues.
const (
	RoleRoot    Role = iota + 1 // manufacturer root CA, self-signed
	RoleOwnerCA                 // owner CA, signed by a root
	RoleIMA                     // IMA signing certificate, signed by a root or an owner CA
)

var roleNames = map[Role]string{RoleRoot: "root", RoleOwnerCA: "owner-ca", RoleIMA: "ima"}

func (r Role) String() string {
	if n, ok := roleNames[r]; ok {
		return n
	}
	return fmt.Sprintf("Role(%d)", int(r))
}

// ParseRole parses "root", "owner-ca" or "ima".
func ParseRole(s string) (Role, error) {
	for r, n := range roleNames {
		if strings.EqualFold(s, n) {
			return r, nil
		}
	}
	return 0, fmt.Errorf("unknown role %q (want root, owner-ca or ima)", s)
}

// Default lifetimes: short, because the kernel never checks dates and a
// leaked key stays useful until its certificate expires at build time.
const (
	Day                = 24 * time.Hour
	DefaultRootDays    = 3652 // 10 years
	DefaultOwnerCADays = 1095 // 3 years
	DefaultIMADays     = 365  // 1 year
)

// DefaultLifetime returns the role's default validity period.
func (r Role) DefaultLifetime() time.Duration {
	switch r {
	case RoleRoot:
		return DefaultRootDays * Day
	case RoleOwnerCA:
		return DefaultOwnerCADays * Day
	}
	return DefaultIMADays * Day
}

// Backdate is how far before the issuing time NotBefore is set, so that a
// build machine whose clock lags the CA's still accepts a fresh certificate.
const Backdate = time.Hour

// Request describes a certificate to issue.
type Request struct {
	Role         Role
	Name         string // subject commonName (required)
	Organization string // subject organizationName (optional)
	// PublicKey certifies an existing key (e.g. one kept in an HSM). When
	// nil, a new key of KeyType (DefaultKeyType if empty) is generated.
	PublicKey crypto.PublicKey
	KeyType   KeyType
	// Lifetime is the validity period from the issuing time; zero means the
	// role's DefaultLifetime. NotAfter never exceeds the issuer's NotAfter.
	Lifetime time.Duration
	// NotBefore and NotAfter, when set, are the exact validity period
	// instead of the issuing time minus Backdate and Lifetime: a NotAfter
	// beyond the issuer's, or a NotBefore after the NotAfter, is refused
	// (not shortened). Lifetime must then be zero.
	NotBefore, NotAfter time.Time
	// Scope restricts the image paths the key may sign (owner-ca and ima
	// only); nil means unrestricted. It must lie within the issuer's
	// scope (Scope.Within).
	Scope *Scope
	// RawSubject, when set, is the subject as DER (from a CSR, ParseCSR),
	// used as it is instead of Name and Organization.
	RawSubject []byte
	// Serial, when set, is the serial number (positive); otherwise a random
	// one (InventoryFile.Issue picks one its inventory has not seen).
	Serial *big.Int
}

// Issuer is a CA certificate and its private key.
type Issuer struct {
	Cert *x509.Certificate
	Key  crypto.Signer
}

// Options injects the clock and randomness (for tests); zero values mean
// time.Now and crypto/rand.
type Options struct {
	Now  func() time.Time
	Rand io.Reader
}

func (o Options) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

func (o Options) rand() io.Reader {
	if o.Rand != nil {
		return o.Rand
	}
	return rand.Reader
}

// Issued is a new certificate and, when it was generated, its private key.
type Issued struct {
	Cert *x509.Certificate
	Key  crypto.Signer // nil when Request.PublicKey was given
	// Capped is set when NotAfter was shortened to the issuer's NotAfter.
	Capped bool
}

// ErrIssue reports a request that cannot be issued.
var ErrIssue = errors.New("cannot issue certificate")

// NewRoot creates a self-signed manufacturer root CA.
func NewRoot(req Request, opts Options) (*Issued, error) {
	req.Role = RoleRoot
	return issue(req, nil, opts)
}

// Issue creates an owner CA (signed by a root) or an IMA signing certificate
// (signed by a root or an owner CA).
func Issue(req Request, issuer Issuer, opts Options) (*Issued, error) {
	if req.Role == RoleRoot {
		return nil, fmt.Errorf("%w: a root is self-signed (use NewRoot)", ErrIssue)
	}
	return issue(req, &issuer, opts)
}

// ExtKeyUsage of IMA certificates: codeSigning, as the kernel's module
// signing certificates in many distributions carry; the kernel ignores it.
var imaExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning}

func issue(req Request, issuer *Issuer, opts Options) (*Issued, error) {
	if strings.TrimSpace(req.Name) == "" && len(req.RawSubject) == 0 {
		return nil, fmt.Errorf("%w: empty name", ErrIssue)
	}
	if req.Scope != nil && req.Role == RoleRoot {
		return nil, fmt.Errorf("%w: a root certificate cannot carry a scope", ErrIssue)
	}
	if issuer != nil {
		if err := checkIssuer(req.Role, issuer); err != nil {
			return nil, err
		}
		if err := checkScopeWithin(req.Scope, issuer.Cert); err != nil {
			return nil, err
		}
	}
	out := &Issued{}
	pub := req.PublicKey
	if pub == nil {
		kt := req.KeyType
		if kt == "" {
			kt = DefaultKeyType
		}
		key, err := GenerateKey(opts.rand(), kt)
		if err != nil {
			return nil, err
		}
		out.Key, pub = key, key.Public()
	}
	if err := checkPublicKey(pub); err != nil {
		return nil, err
	}
	skid, err := SubjectKeyID(pub)
	if err != nil {
		return nil, err
	}
	serial := req.Serial
	if serial == nil {
		if serial, err = randomSerial(opts.rand()); err != nil {
			return nil, err
		}
	} else if serial.Sign() <= 0 {
		return nil, fmt.Errorf("%w: serial number must be positive", ErrIssue)
	}
	notBefore, notAfter, err := validity(req, opts)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: req.Name},
		RawSubject:            req.RawSubject,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		SubjectKeyId:          skid,
		BasicConstraintsValid: true,
	}
	if req.Organization != "" {
		tmpl.Subject.Organization = []string{req.Organization}
	}
	switch req.Role {
	case RoleRoot:
		tmpl.IsCA = true
		tmpl.MaxPathLen = 1 // root -> owner CA -> IMA
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
		tmpl.AuthorityKeyId = skid
	case RoleOwnerCA:
		tmpl.IsCA = true
		tmpl.MaxPathLen, tmpl.MaxPathLenZero = 0, true // owners cannot make sub-CAs
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
	case RoleIMA:
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = imaExtKeyUsage
	default:
		return nil, fmt.Errorf("%w: unknown role %v", ErrIssue, req.Role)
	}
	if req.Scope != nil {
		ext, err := req.Scope.Extension()
		if err != nil {
			return nil, err
		}
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, ext)
	}

	parent, signKey := tmpl, crypto.Signer(out.Key)
	if issuer != nil {
		parent, signKey = issuer.Cert, issuer.Key
		if tmpl.NotAfter.After(issuer.Cert.NotAfter) {
			if !req.NotAfter.IsZero() {
				return nil, fmt.Errorf("%w: notAfter %s is after the notAfter %s of the issuer %s", ErrIssue,
					req.NotAfter.UTC().Format(time.RFC3339), issuer.Cert.NotAfter.UTC().Format(time.RFC3339), subjectOf(issuer.Cert))
			}
			tmpl.NotAfter, out.Capped = issuer.Cert.NotAfter, true
		}
	} else if signKey == nil {
		return nil, fmt.Errorf("%w: a root needs its private key (do not pass PublicKey)", ErrIssue)
	}
	if !tmpl.NotAfter.After(tmpl.NotBefore) {
		return nil, fmt.Errorf("%w: validity period is empty (issuer expires %s)", ErrIssue, parent.NotAfter.Format(time.RFC3339))
	}
	tmpl.SignatureAlgorithm, err = sha256SignatureAlgorithm(signKey.Public())
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificate(opts.rand(), tmpl, parent, pub, signKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIssue, err)
	}
	if out.Cert, err = x509.ParseCertificate(der); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrIssue, err)
	}
	return out, nil
}

// validity returns the validity period of req issued at opts' time: the
// explicit NotBefore/NotAfter, or from the issuing time minus Backdate to
// Lifetime (the role's default when zero) after it.
func validity(req Request, opts Options) (notBefore, notAfter time.Time, err error) {
	life := req.Lifetime
	if life < 0 {
		return notBefore, notAfter, fmt.Errorf("%w: negative lifetime", ErrIssue)
	}
	if life != 0 && !req.NotAfter.IsZero() {
		return notBefore, notAfter, fmt.Errorf("%w: give a lifetime or a notAfter, not both", ErrIssue)
	}
	if life == 0 {
		life = req.Role.DefaultLifetime()
	}
	now := opts.now().UTC().Truncate(time.Second)
	notBefore, notAfter = now.Add(-Backdate), now.Add(life)
	if !req.NotBefore.IsZero() {
		notBefore = req.NotBefore.UTC()
		if req.NotAfter.IsZero() {
			notAfter = notBefore.Add(life)
		}
	}
	if !req.NotAfter.IsZero() {
		notAfter = req.NotAfter.UTC()
	}
	if notBefore.After(notAfter) {
		return notBefore, notAfter, fmt.Errorf("%w: notBefore %s is after notAfter %s", ErrIssue, notBefore.Format(time.RFC3339), notAfter.Format(time.RFC3339))
	}
	return notBefore, notAfter, nil
}

// checkScopeWithin refuses a scope that is not within the issuer's: a
// certificate issued outside its issuer's scope would fail every chain
// check later (Chain.CheckPath), so it is better never made.
func checkScopeWithin(s *Scope, issuer *x509.Certificate) error {
	outer, err := ParseScope(issuer)
	if err != nil {
		return fmt.Errorf("%w: issuer %s: %w", ErrIssue, subjectOf(issuer), err)
	}
	if outer == nil {
		return nil
	}
	if s == nil {
		return fmt.Errorf("%w: %w: the issuer %s has scope %s, and an unrestricted certificate lies outside it (give a scope within it)", ErrIssue, ErrOutOfScope, subjectOf(issuer), outer)
	}
	if p, ok := s.Within(outer); !ok {
		return fmt.Errorf("%w: %w: scope %s is not within the scope %s of the issuer %s (pattern %q is not covered)", ErrIssue, ErrOutOfScope, s, outer, subjectOf(issuer), p)
	}
	return nil
}

// checkIssuer verifies that issuer may sign a certificate of role r.
func checkIssuer(r Role, issuer *Issuer) error {
	c := issuer.Cert
	if c == nil || issuer.Key == nil {
		return fmt.Errorf("%w: issuer certificate and key are required", ErrIssue)
	}
	if !c.IsCA || !c.BasicConstraintsValid || c.KeyUsage&x509.KeyUsageCertSign == 0 {
		return fmt.Errorf("%w: issuer %s is not a CA (needs basicConstraints CA:TRUE and keyUsage keyCertSign)", ErrIssue, subjectOf(c))
	}
	if pk, ok := issuer.Key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pk.Equal(c.PublicKey) {
		return fmt.Errorf("%w: the issuer key does not belong to %s", ErrIssue, subjectOf(c))
	}
	if len(c.SubjectKeyId) == 0 {
		return fmt.Errorf("%w: issuer %s has no subjectKeyIdentifier (the kernel finds issuers by it)", ErrIssue, subjectOf(c))
	}
	selfSigned := c.CheckSignatureFrom(c) == nil && string(c.RawIssuer) == string(c.RawSubject)
	if r == RoleOwnerCA && !selfSigned {
		return fmt.Errorf("%w: an owner CA is signed by a manufacturer root; %s is not a root", ErrIssue, subjectOf(c))
	}
	return nil
}

// sha256SignatureAlgorithm picks the SHA-256 signature algorithm for the
// issuer key: the kernel's 6.1 blacklist hashes a TBSCertificate with the
// certificate's signature hash, newer kernels always with SHA-256; with
// SHA-256 both agree on the tbs: entry.
func sha256SignatureAlgorithm(pub crypto.PublicKey) (x509.SignatureAlgorithm, error) {
	switch pub.(type) {
	case *rsa.PublicKey:
		return x509.SHA256WithRSA, nil
	case *ecdsa.PublicKey:
		return x509.ECDSAWithSHA256, nil
	}
	return 0, fmt.Errorf("%w: issuer key type %T", ErrKeyType, pub)
}

// randomSerial returns a random positive 128-bit serial number (RFC 5280
// allows up to 20 octets). Certificates are made once and kept, so they need
// no reproducibility; random serials keep two issuances distinct.
func randomSerial(r io.Reader) (*big.Int, error) {
	for {
		b := make([]byte, 16)
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, fmt.Errorf("serial number: %w", err)
		}
		if n := new(big.Int).SetBytes(b); n.Sign() > 0 {
			return n, nil
		}
	}
}
