package pki

import (
	"bufio"
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The inventory of a CA is its database of issued certificates, as
// `openssl ca` keeps index.txt (openssl's apps/ca.c; one line per
// certificate, tab-separated). imaforge keeps the whole certificate in the
// line, so that a revoked certificate can be blacklisted (its TBSCertificate
// hash) and listed without its file. The file is text, UTF-8, '\n' line
// ends, in one canonical form (ParseInventory accepts only what
// Inventory.Marshal writes, so equal inventories are equal bytes):
//
//	imaforge-inventory 1
//	ca	<SKID hex>	<subject, Go-quoted>
//	crl-number	<decimal: the last cRLNumber signed, 0 for none>
//	<entry>...
//
// and one entry per certificate, sorted by serial number, no serial twice:
//
//	<status>	<serial>	<notAfter>	<revoked>	<reason>	<subject>	<certificate>
//
//	status       V (valid: not revoked; expiry is read from notAfter) or R
//	             (revoked)
//	serial       lowercase hexadecimal, no leading zeros
//	notAfter     RFC 3339 UTC to the second ("2031-01-01T00:00:00Z")
//	revoked      the revocation time, same format; "-" for V
//	reason       the RFC 5280 CRLReason name ("keyCompromise"), or its
//	             number when it has no name here; "-" for V
//	subject      the subject's RFC 2253 string (x509.Certificate.Subject),
//	             quoted as Go quotes strings (strconv.Quote)
//	certificate  the DER certificate, standard base64 with padding
//
// An R entry imported from a CRL written before the inventory existed may
// have no certificate: notAfter, subject and certificate are then "-". The
// fields notAfter, subject and serial repeat what the certificate says
// (for grep and for reading by eye) and must agree with it.
//
// InventoryFile (inventory_file.go) reads and writes the file under a lock.

// InventoryMagic is the first line of an inventory file.
const InventoryMagic = "imaforge-inventory 1"

// ErrInventory reports an inventory that cannot be read or does not belong
// to its CA.
var ErrInventory = errors.New("invalid inventory")

// Inventory is the parsed inventory of one CA.
type Inventory struct {
	// CAKeyID is the subjectKeyIdentifier of the CA; a renewed CA
	// certificate of the same key keeps the inventory.
	CAKeyID []byte
	// CASubject is the CA's subject (x509.Certificate.Subject.String()).
	CASubject string
	// CRLNumber is the last cRLNumber the CA signed (0: none yet); the
	// next CRL gets a larger one, whatever CRL file is at hand.
	CRLNumber *big.Int
	// Entries are sorted by serial number, each serial once.
	Entries []InventoryEntry
}

// InventoryEntry is one line of an inventory: a certificate the CA issued
// (or, imported from an old CRL, a revoked serial whose certificate is not
// known).
type InventoryEntry struct {
	Serial   *big.Int
	NotAfter time.Time // the certificate's; zero when Cert is nil
	Subject  string    // the certificate's Subject.String(); "" when Cert is nil
	Cert     *x509.Certificate
	Revoked  time.Time // zero: not revoked
	Reason   int       // CRLReason code when revoked
}

// IsRevoked reports whether the entry is revoked.
func (e *InventoryEntry) IsRevoked() bool { return !e.Revoked.IsZero() }

// NewInventory returns an empty inventory of ca.
func NewInventory(ca *x509.Certificate) *Inventory {
	return &Inventory{CAKeyID: slices.Clone(ca.SubjectKeyId), CASubject: ca.Subject.String(), CRLNumber: new(big.Int)}
}

const inventoryTime = "2006-01-02T15:04:05Z"

// Marshal encodes inv in its canonical form.
func (inv *Inventory) Marshal() []byte {
	var b bytes.Buffer
	b.WriteString(InventoryMagic + "\n")
	fmt.Fprintf(&b, "ca\t%s\t%s\n", hex.EncodeToString(inv.CAKeyID), strconv.Quote(inv.CASubject))
	n := inv.CRLNumber
	if n == nil {
		n = new(big.Int)
	}
	fmt.Fprintf(&b, "crl-number\t%s\n", n.Text(10))
	for _, e := range inv.Entries {
		status, revoked, reason := "V", "-", "-"
		if e.IsRevoked() {
			status, revoked, reason = "R", e.Revoked.UTC().Format(inventoryTime), reasonField(e.Reason)
		}
		notAfter, subject, cert := "-", "-", "-"
		if e.Cert != nil {
			notAfter = e.NotAfter.UTC().Format(inventoryTime)
			subject = strconv.Quote(e.Subject)
			cert = base64.StdEncoding.EncodeToString(e.Cert.Raw)
		}
		fmt.Fprintf(&b, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", status, e.Serial.Text(16), notAfter, revoked, reason, subject, cert)
	}
	return b.Bytes()
}

func reasonField(code int) string {
	for name, c := range reasonCodes {
		if c == code {
			return name
		}
	}
	return strconv.Itoa(code)
}

func parseReasonField(s string) (int, error) {
	if code, ok := reasonCodes[s]; ok {
		return code, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 || n > 10 || strconv.Itoa(n) != s || reasonField(n) != s {
		return 0, fmt.Errorf("reason %q: want an RFC 5280 CRLReason name or an unnamed code 0-10", s)
	}
	return n, nil
}

// maxInventoryLine bounds one line (a certificate of 64 KiB in base64).
const maxInventoryLine = 96 << 10

// ParseInventory decodes an inventory written by Marshal. Errors are
// "line N: ..." wrapping ErrInventory. It checks the form of every field
// and that each certificate agrees with its line, not who issued it
// (Inventory.CheckCA does).
func ParseInventory(data []byte) (*Inventory, error) {
	inv := &Inventory{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, maxInventoryLine)
	line := 0
	fail := func(format string, args ...any) error {
		return fmt.Errorf("%w: line %d: %s", ErrInventory, line, fmt.Sprintf(format, args...))
	}
	next := func() (string, bool) {
		if !sc.Scan() {
			return "", false
		}
		line++
		return sc.Text(), true
	}
	if l, ok := next(); !ok || l != InventoryMagic {
		line = 1
		return nil, fail("want %q", InventoryMagic)
	}
	l, ok := next()
	f := strings.Split(l, "\t")
	if !ok || len(f) != 3 || f[0] != "ca" {
		return nil, fail("want ca<TAB>KEYID<TAB>SUBJECT")
	}
	var err error
	if inv.CAKeyID, err = hex.DecodeString(f[1]); err != nil || hex.EncodeToString(inv.CAKeyID) != f[1] || len(inv.CAKeyID) == 0 {
		return nil, fail("CA key id %q is not lowercase hexadecimal", f[1])
	}
	if inv.CASubject, err = unquote(f[2]); err != nil {
		return nil, fail("CA subject: %v", err)
	}
	l, ok = next()
	f = strings.Split(l, "\t")
	if !ok || len(f) != 2 || f[0] != "crl-number" {
		return nil, fail("want crl-number<TAB>N")
	}
	if inv.CRLNumber, err = parseCanonicalInt(f[1], 10); err != nil {
		return nil, fail("crl-number: %v", err)
	}
	for {
		l, ok := next()
		if !ok {
			break
		}
		e, err := parseEntry(l)
		if err != nil {
			return nil, fail("%v", err)
		}
		if n := len(inv.Entries); n > 0 && inv.Entries[n-1].Serial.Cmp(e.Serial) >= 0 {
			return nil, fail("serial %s is not after %s (entries are sorted by serial, each once)", e.Serial.Text(16), inv.Entries[n-1].Serial.Text(16))
		}
		inv.Entries = append(inv.Entries, e)
	}
	if err := sc.Err(); err != nil {
		line++
		return nil, fail("%v", err)
	}
	if len(data) > 0 && data[len(data)-1] != '\n' || bytes.Contains(data, []byte("\r")) {
		return nil, fmt.Errorf("%w: the file must end with a newline and have no carriage returns", ErrInventory)
	}
	return inv, nil
}

func parseEntry(l string) (InventoryEntry, error) {
	var e InventoryEntry
	f := strings.Split(l, "\t")
	if len(f) != 7 {
		return e, fmt.Errorf("%d fields, want 7: STATUS SERIAL NOTAFTER REVOKED REASON SUBJECT CERT", len(f))
	}
	var err error
	if e.Serial, err = parseCanonicalInt(f[1], 16); err != nil || e.Serial.Sign() == 0 {
		return e, fmt.Errorf("serial %q: want positive lowercase hexadecimal without leading zeros", f[1])
	}
	switch f[0] {
	case "V":
		if f[3] != "-" || f[4] != "-" {
			return e, fmt.Errorf("serial %s: a valid (V) entry has no revocation time or reason (want -)", f[1])
		}
	case "R":
		if e.Revoked, err = parseInventoryTime(f[3]); err != nil {
			return e, fmt.Errorf("serial %s: revoked: %w", f[1], err)
		}
		if e.Reason, err = parseReasonField(f[4]); err != nil {
			return e, fmt.Errorf("serial %s: %w", f[1], err)
		}
	default:
		return e, fmt.Errorf("status %q: want V or R", f[0])
	}
	if f[6] == "-" {
		if f[0] != "R" || f[2] != "-" || f[5] != "-" {
			return e, fmt.Errorf("serial %s: only a revoked entry imported from a CRL may lack its certificate, and then notAfter and subject are - too", f[1])
		}
		return e, nil
	}
	der, err := base64.StdEncoding.Strict().DecodeString(f[6])
	if err != nil || base64.StdEncoding.EncodeToString(der) != f[6] {
		return e, fmt.Errorf("serial %s: certificate is not canonical base64", f[1])
	}
	if e.Cert, err = x509.ParseCertificate(der); err != nil {
		return e, fmt.Errorf("serial %s: certificate: %w", f[1], err)
	}
	if e.NotAfter, err = parseInventoryTime(f[2]); err != nil {
		return e, fmt.Errorf("serial %s: notAfter: %w", f[1], err)
	}
	if e.Subject, err = unquote(f[5]); err != nil {
		return e, fmt.Errorf("serial %s: subject: %w", f[1], err)
	}
	switch {
	case e.Cert.SerialNumber.Cmp(e.Serial) != 0:
		return e, fmt.Errorf("serial %s: the certificate's serial is %s", f[1], e.Cert.SerialNumber.Text(16))
	case !e.Cert.NotAfter.Equal(e.NotAfter):
		return e, fmt.Errorf("serial %s: notAfter %s, the certificate says %s", f[1], f[2], e.Cert.NotAfter.UTC().Format(inventoryTime))
	case e.Cert.Subject.String() != e.Subject:
		return e, fmt.Errorf("serial %s: subject %s, the certificate says %q", f[1], f[5], e.Cert.Subject.String())
	}
	return e, nil
}

func parseCanonicalInt(s string, base int) (*big.Int, error) {
	n, ok := new(big.Int).SetString(s, base)
	if !ok || n.Sign() < 0 || n.Text(base) != s {
		return nil, fmt.Errorf("%q is not a canonical base-%d number", s, base)
	}
	return n, nil
}

func parseInventoryTime(s string) (time.Time, error) {
	t, err := time.Parse(inventoryTime, s)
	if err != nil || t.Format(inventoryTime) != s {
		return time.Time{}, fmt.Errorf("%q: want RFC 3339 UTC to the second (%s)", s, inventoryTime)
	}
	return t, nil
}

func unquote(s string) (string, error) {
	u, err := strconv.Unquote(s)
	if err != nil || strconv.Quote(u) != s {
		return "", fmt.Errorf("%s: want a Go-quoted string", s)
	}
	return u, nil
}

// CheckCA checks that inv belongs to ca (same key id and subject) and that
// ca signed every certificate in it.
func (inv *Inventory) CheckCA(ca *x509.Certificate) error {
	if !bytes.Equal(inv.CAKeyID, ca.SubjectKeyId) || inv.CASubject != ca.Subject.String() {
		return fmt.Errorf("%w: it belongs to CA %q (key id %x), not %s (key id %x)", ErrInventory, inv.CASubject, inv.CAKeyID, subjectOf(ca), ca.SubjectKeyId)
	}
	for _, e := range inv.Entries {
		if e.Cert == nil {
			continue
		}
		if string(e.Cert.RawIssuer) != string(ca.RawSubject) || e.Cert.CheckSignatureFrom(ca) != nil {
			return fmt.Errorf("%w: serial %s (%s) is not signed by %s", ErrInventory, e.Serial.Text(16), e.Subject, subjectOf(ca))
		}
	}
	return nil
}

// Lookup returns the entry of serial, or nil.
func (inv *Inventory) Lookup(serial *big.Int) *InventoryEntry {
	i, ok := inv.find(serial)
	if !ok {
		return nil
	}
	return &inv.Entries[i]
}

func (inv *Inventory) find(serial *big.Int) (int, bool) {
	return slices.BinarySearchFunc(inv.Entries, serial, func(e InventoryEntry, s *big.Int) int { return e.Serial.Cmp(s) })
}

// Add records a certificate the CA issued. A serial already there is an
// error unless it is the same certificate, or a revoked entry imported
// without its certificate (which gets it).
func (inv *Inventory) Add(cert *x509.Certificate) error {
	i, ok := inv.find(cert.SerialNumber)
	if ok {
		e := &inv.Entries[i]
		switch {
		case e.Cert == nil:
			e.Cert, e.NotAfter, e.Subject = cert, cert.NotAfter.UTC(), cert.Subject.String()
			return nil
		case e.Cert.Equal(cert):
			return nil
		}
		return fmt.Errorf("%w: serial %s is already used by %s", ErrInventory, cert.SerialNumber.Text(16), e.Subject)
	}
	inv.Entries = slices.Insert(inv.Entries, i, InventoryEntry{Serial: new(big.Int).Set(cert.SerialNumber), NotAfter: cert.NotAfter.UTC(), Subject: cert.Subject.String(), Cert: cert})
	return nil
}

// revoke marks serial revoked at t with reason (an entry without a
// certificate when it is not there); an entry already revoked keeps its
// first time and reason. It reports whether the entry changed.
func (inv *Inventory) revoke(serial *big.Int, t time.Time, reason int) bool {
	i, ok := inv.find(serial)
	if !ok {
		inv.Entries = slices.Insert(inv.Entries, i, InventoryEntry{Serial: new(big.Int).Set(serial)})
	}
	e := &inv.Entries[i]
	if e.IsRevoked() {
		return false
	}
	e.Revoked, e.Reason = t.UTC().Truncate(time.Second), reason
	return true
}

// RevocationEntries returns the revoked entries as CRL entries.
func (inv *Inventory) RevocationEntries() []x509.RevocationListEntry {
	var out []x509.RevocationListEntry
	for _, e := range inv.Entries {
		if e.IsRevoked() {
			out = append(out, x509.RevocationListEntry{SerialNumber: e.Serial, RevocationTime: e.Revoked, ReasonCode: e.Reason})
		}
	}
	return out
}

// ImportCRL records what crl (of the inventory's CA) says: its number (the
// last one signed, when larger) and its revoked serials. This is how an
// inventory starts for a CA made before inventories existed.
func (inv *Inventory) ImportCRL(crl *x509.RevocationList) {
	if crl.Number != nil && crl.Number.Cmp(inv.CRLNumber) > 0 {
		inv.CRLNumber = new(big.Int).Set(crl.Number)
	}
	for _, e := range crl.RevokedCertificateEntries {
		inv.revoke(e.SerialNumber, e.RevocationTime, e.ReasonCode)
	}
}

// Listing is what `imaforge pki list` shows of an inventory (its --json
// form).
type Listing struct {
	CA        string       `json:"ca"`
	CRLNumber string       `json:"crl_number"` // the last one signed
	At        time.Time    `json:"at"`         // expiry is judged at this time
	Certs     []ListedCert `json:"certificates"`
}

// ListedCert is one certificate of a Listing.
type ListedCert struct {
	Serial    string     `json:"serial"`            // lowercase hexadecimal
	Subject   string     `json:"subject,omitempty"` // empty: known from a CRL only
	Role      string     `json:"role,omitempty"`    // owner-ca or ima
	KeyID     string     `json:"ima_key_id,omitempty"`
	Scope     []string   `json:"scope,omitempty"` // empty: unrestricted
	NotBefore *time.Time `json:"not_before,omitempty"`
	NotAfter  *time.Time `json:"not_after,omitempty"`
	// Status is "valid", "not-yet-valid", "expired" or "revoked".
	Status  string `json:"status"`
	Expired bool   `json:"expired"`
	// RevokedAt and Reason are set when the certificate is revoked.
	RevokedAt *time.Time `json:"revoked_at,omitempty"`
	Reason    string     `json:"reason,omitempty"`
}

// List describes the inventory's certificates at time at, in the order they
// were issued (notBefore, then serial); revoked serials known without their
// certificate come last.
func (inv *Inventory) List(at time.Time) *Listing {
	l := &Listing{CA: inv.CASubject, CRLNumber: inv.CRLNumber.String(), At: at.UTC().Truncate(time.Second), Certs: []ListedCert{}}
	entries := slices.Clone(inv.Entries)
	slices.SortStableFunc(entries, func(a, b InventoryEntry) int {
		switch {
		case a.Cert == nil || b.Cert == nil:
			return boolInt(a.Cert == nil) - boolInt(b.Cert == nil)
		case !a.Cert.NotBefore.Equal(b.Cert.NotBefore):
			return a.Cert.NotBefore.Compare(b.Cert.NotBefore)
		}
		return a.Serial.Cmp(b.Serial)
	})
	for _, e := range entries {
		lc := ListedCert{Serial: e.Serial.Text(16), Status: "valid"}
		if c := e.Cert; c != nil {
			info := describe(c, RoleIMA)
			if c.IsCA {
				info.Role = RoleOwnerCA.String()
			}
			nb, na := c.NotBefore.UTC(), c.NotAfter.UTC()
			lc.Subject, lc.Role, lc.KeyID, lc.Scope, lc.NotBefore, lc.NotAfter = info.Subject, info.Role, info.KeyID, info.Scope, &nb, &na
			switch {
			case at.After(na):
				lc.Status, lc.Expired = "expired", true
			case at.Before(nb):
				lc.Status = "not-yet-valid"
			}
		}
		if e.IsRevoked() {
			t := e.Revoked.UTC()
			lc.Status, lc.RevokedAt, lc.Reason = "revoked", &t, ReasonName(e.Reason)
		}
		l.Certs = append(l.Certs, lc)
	}
	return l
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
