package pki

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/imaforge/imaforge/internal/atomicfile"
	"github.com/imaforge/imaforge/internal/boundedfile"
)

// Each CA keeps one X.509 v2 CRL (RFC 5280 section 5), signed with SHA-256,
// with a cRLNumber that grows by one on every update and an
// AuthorityKeyIdentifier. It is stored as PEM ("X509 CRL"), which
// `openssl crl -in FILE` and `openssl verify -CRLfile FILE` read.

// DefaultCRLDays is the default time from a CRL's thisUpdate to its
// nextUpdate.
const DefaultCRLDays = 30

// Revocation reasons (RFC 5280 section 5.3.1 CRLReason) that make sense for
// this hierarchy; certificateHold is left out: a revocation is final.
var reasonCodes = map[string]int{
	"unspecified":          0,
	"keyCompromise":        1,
	"cACompromise":         2,
	"affiliationChanged":   3,
	"superseded":           4,
	"cessationOfOperation": 5,
	"privilegeWithdrawn":   9,
}

// ParseReason returns the CRLReason code named s (RFC 5280 spelling,
// case-insensitive, e.g. "keyCompromise").
func ParseReason(s string) (int, error) {
	for name, code := range reasonCodes {
		if strings.EqualFold(name, s) {
			return code, nil
		}
	}
	return 0, fmt.Errorf("unknown revocation reason %q (want unspecified, keyCompromise, cACompromise, affiliationChanged, superseded, cessationOfOperation or privilegeWithdrawn)", s)
}

// ReasonName returns the RFC 5280 name of a CRLReason code.
func ReasonName(code int) string {
	for name, c := range reasonCodes {
		if c == code {
			return name
		}
	}
	return fmt.Sprintf("reason %d", code)
}

// ErrCRL reports a CRL that cannot be used or updated.
var ErrCRL = errors.New("invalid CRL")

// CRLUpdate describes a new version of a CA's CRL.
type CRLUpdate struct {
	// Revoke lists certificates to add; each must be issued by the CA.
	// Certificates already on the CRL are left as they are.
	Revoke []*x509.Certificate
	// Reason is the CRLReason code of the new entries (0: unspecified).
	Reason int
	// Validity is nextUpdate - thisUpdate (zero: DefaultCRLDays).
	Validity time.Duration
	// Known are entries to carry over as they are (the inventory's
	// revoked certificates), beside those of the previous CRL.
	Known []x509.RevocationListEntry
	// After is the last cRLNumber the CA signed, as far as its inventory
	// knows (nil: none); the new number is larger than it and than prev's.
	After *big.Int
}

// UpdateCRL returns the next CRL of issuer: the entries of prev (nil for the
// first CRL) plus u.Known and u.Revoke, with cRLNumber one more than the
// larger of prev's and u.After (1 for the first). added counts the entries
// prev did not have.
func UpdateCRL(prev *x509.RevocationList, issuer Issuer, u CRLUpdate, opts Options) (crl *x509.RevocationList, added int, err error) {
	if issuer.Cert == nil || issuer.Key == nil {
		return nil, 0, fmt.Errorf("%w: issuer certificate and key are required", ErrCRL)
	}
	number := big.NewInt(1)
	var entries []x509.RevocationListEntry
	if prev != nil {
		if err := prev.CheckSignatureFrom(issuer.Cert); err != nil {
			return nil, 0, fmt.Errorf("%w: the existing CRL is not signed by %s: %w", ErrCRL, subjectOf(issuer.Cert), err)
		}
		if prev.Number != nil {
			number.Add(prev.Number, big.NewInt(1))
		}
		for _, e := range prev.RevokedCertificateEntries {
			// Keep what the CRL carried, but not the parsed raw bytes.
			entries = append(entries, x509.RevocationListEntry{
				SerialNumber:    e.SerialNumber,
				RevocationTime:  e.RevocationTime,
				ReasonCode:      e.ReasonCode,
				ExtraExtensions: e.ExtraExtensions,
			})
		}
	}
	if u.After != nil && u.After.Cmp(number) >= 0 {
		number.Add(u.After, big.NewInt(1))
	}
	for _, e := range u.Known {
		if !onCRL(entries, e.SerialNumber) {
			entries = append(entries, x509.RevocationListEntry{SerialNumber: e.SerialNumber, RevocationTime: e.RevocationTime, ReasonCode: e.ReasonCode})
			added++
		}
	}
	now := opts.now().UTC().Truncate(time.Second)
	for _, c := range u.Revoke {
		if err := c.CheckSignatureFrom(issuer.Cert); err != nil || string(c.RawIssuer) != string(issuer.Cert.RawSubject) {
			return nil, 0, &CertError{Cert: c, Reason: fmt.Sprintf("not issued by %s, so its CRL cannot revoke it", subjectOf(issuer.Cert)), Err: ErrUnknownIssuer}
		}
		if onCRL(entries, c.SerialNumber) {
			continue
		}
		entries = append(entries, x509.RevocationListEntry{SerialNumber: c.SerialNumber, RevocationTime: now, ReasonCode: u.Reason})
		added++
	}
	validity := u.Validity
	if validity == 0 {
		validity = DefaultCRLDays * Day
	}
	sigAlg, err := sha256SignatureAlgorithm(issuer.Key.Public())
	if err != nil {
		return nil, 0, err
	}
	der, err := x509.CreateRevocationList(opts.rand(), &x509.RevocationList{
		SignatureAlgorithm:        sigAlg,
		RevokedCertificateEntries: entries,
		Number:                    number,
		ThisUpdate:                now,
		NextUpdate:                now.Add(validity),
	}, issuer.Cert, issuer.Key)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrCRL, err)
	}
	crl, err = x509.ParseRevocationList(der)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", ErrCRL, err)
	}
	return crl, added, nil
}

func onCRL(entries []x509.RevocationListEntry, serial *big.Int) bool {
	for _, e := range entries {
		if e.SerialNumber.Cmp(serial) == 0 {
			return true
		}
	}
	return false
}

// ParseCRL decodes a CRL in PEM ("X509 CRL") or DER.
func ParseCRL(data []byte) (*x509.RevocationList, error) {
	if b, _ := pem.Decode(data); b != nil {
		if b.Type != "X509 CRL" {
			return nil, fmt.Errorf("%w: PEM block %q, want \"X509 CRL\"", ErrCRL, b.Type)
		}
		data = b.Bytes
	}
	crl, err := x509.ParseRevocationList(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCRL, err)
	}
	return crl, nil
}

// ReadCRL reads the CRL file at path; errors name the path.
func ReadCRL(path string) (*x509.RevocationList, error) {
	data, err := boundedfile.ReadFile(path, boundedfile.CRLLimit)
	if err != nil {
		return nil, err
	}
	crl, err := ParseCRL(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return crl, nil
}

// EncodeCRLPEM returns crl as a PEM "X509 CRL" block.
func EncodeCRLPEM(crl *x509.RevocationList) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: crl.Raw})
}

// WriteCRL writes crl to path as PEM, atomically.
func WriteCRL(path string, crl *x509.RevocationList) error {
	return atomicfile.WriteFile(path, EncodeCRLPEM(crl), 0o644)
}
