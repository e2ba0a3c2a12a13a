package pki

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// The kernel's system blacklist (.blacklist keyring, certs/blacklist.c)
// holds descriptions "tbs:<hex>" (a certificate's TBSCertificate hash) and
// "bin:<hex>" (a binary's hash): a prefix, a colon and an even number of
// lowercase hex digits, at most 128 (blacklist_vet_description). A
// certificate whose TBS hash is listed is rejected when it is parsed
// (x509_get_sig_params marks it blacklisted; x509_key_preparse refuses it
// with EKEYREJECTED), so it can never enter a keyring.
//
// Which hash: Linux up to 6.x hashes the TBSCertificate with the
// certificate's own signature hash algorithm (the hash it computes to check
// the signature; tools/certs/print-cert-tbs-hash.sh does the same), newer
// kernels always with SHA-256. BlacklistEntries therefore gives the SHA-256
// entry and, for a certificate signed with another hash, that one too.
// imaforge signs certificates with SHA-256, where both are the same.
//
// CONFIG_SYSTEM_BLACKLIST_HASH_LIST names a file that is #included into a C
// array (certs/blacklist_hashes.c: `{ #include FILE , NULL }`): a
// comma-separated list of C string literals, without a trailing comma, and
// it must not be empty (leave the option unset instead).

// ErrBlacklist reports a malformed blacklist list or entry.
var ErrBlacklist = errors.New("invalid blacklist")

const maxBlacklistHex = 128 // certs/blacklist.c MAX_HASH_LEN

// TBSHash returns the kernel blacklist entry "tbs:<lowercase hex SHA-256 of
// the DER TBSCertificate>" of cert.
func TBSHash(cert *x509.Certificate) string {
	return tbsEntry(crypto.SHA256, cert)
}

func tbsEntry(h crypto.Hash, cert *x509.Certificate) string {
	d := h.New()
	d.Write(cert.RawTBSCertificate)
	return "tbs:" + hex.EncodeToString(d.Sum(nil))
}

// BlacklistEntries returns the entries that make every kernel reject cert:
// TBSHash, and the TBS hash with the certificate's signature hash algorithm
// when that is not SHA-256 (what kernels before the SHA-256 change look up).
func BlacklistEntries(cert *x509.Certificate) []string {
	out := []string{TBSHash(cert)}
	if h := signatureHash(cert.SignatureAlgorithm); h != 0 && h != crypto.SHA256 && h.Available() {
		out = append(out, tbsEntry(h, cert))
	}
	return out
}

func signatureHash(a x509.SignatureAlgorithm) crypto.Hash {
	switch a {
	case x509.SHA1WithRSA, x509.ECDSAWithSHA1:
		return crypto.SHA1
	case x509.SHA256WithRSA, x509.ECDSAWithSHA256, x509.SHA256WithRSAPSS:
		return crypto.SHA256
	case x509.SHA384WithRSA, x509.ECDSAWithSHA384, x509.SHA384WithRSAPSS:
		return crypto.SHA384
	case x509.SHA512WithRSA, x509.ECDSAWithSHA512, x509.SHA512WithRSAPSS:
		return crypto.SHA512
	}
	return 0
}

var blacklistEntryRE = regexp.MustCompile(`^(tbs|bin):([0-9a-f]+)$`)

// CheckBlacklistEntry checks e as the kernel's blacklist_vet_description
// does.
func CheckBlacklistEntry(e string) error {
	m := blacklistEntryRE.FindStringSubmatch(e)
	switch {
	case m == nil:
		return fmt.Errorf("%w: entry %q is not tbs:/bin: followed by lowercase hex", ErrBlacklist, e)
	case len(m[2])%2 != 0:
		return fmt.Errorf("%w: entry %q has an odd number of hex digits", ErrBlacklist, e)
	case len(m[2]) > maxBlacklistHex:
		return fmt.Errorf("%w: entry %q has more than %d hex digits", ErrBlacklist, e, maxBlacklistHex)
	}
	return nil
}

// FormatBlacklist writes entries in the CONFIG_SYSTEM_BLACKLIST_HASH_LIST
// format: one quoted entry per line, separated by commas. It refuses an
// empty list, which the kernel build cannot compile.
func FormatBlacklist(entries []string) ([]byte, error) {
	if len(entries) == 0 {
		return nil, fmt.Errorf("%w: no entries (leave CONFIG_SYSTEM_BLACKLIST_HASH_LIST unset)", ErrBlacklist)
	}
	var b bytes.Buffer
	for i, e := range entries {
		if err := CheckBlacklistEntry(e); err != nil {
			return nil, err
		}
		if i > 0 {
			b.WriteString(",\n")
		}
		fmt.Fprintf(&b, "%q", e)
	}
	b.WriteString("\n")
	return b.Bytes(), nil
}

// ParseBlacklist reads a CONFIG_SYSTEM_BLACKLIST_HASH_LIST file with the
// rules of the kernel's certs/check-blacklist-hashes.awk: items separated by
// commas, each one double-quoted string surrounded by optional whitespace,
// each string a valid entry.
func ParseBlacklist(data []byte) ([]string, error) {
	var out []string
	for i, item := range strings.Split(string(data), ",") {
		s := strings.Trim(item, " \t\r\n")
		if len(s) < 2 || s[0] != '"' || s[len(s)-1] != '"' || strings.Contains(s[1:len(s)-1], `"`) {
			return nil, fmt.Errorf("%w: item %d is not a string: %q", ErrBlacklist, i+1, item)
		}
		e := s[1 : len(s)-1]
		if err := CheckBlacklistEntry(e); err != nil {
			return nil, fmt.Errorf("item %d: %w", i+1, err)
		}
		out = append(out, e)
	}
	return out, nil
}
