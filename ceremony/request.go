package ceremony

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/internal/atomicfile"
)

// Format names of the ceremony documents.
const (
	RequestFormat  = "imaforge-signing-request/1"
	ResponseFormat = "imaforge-signing-response/1"
	JournalFormat  = "imaforge-ceremony-journal/1"
)

// ManifestRef identifies the manifest a request was planned from.
type ManifestRef struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
}

// Request is a signing request (see the package documentation).
type Request struct {
	Format   string       `json:"format"`
	Tool     string       `json:"tool,omitempty"`
	Image    string       `json:"image"`
	Manifest ManifestRef  `json:"manifest"`
	Hash     string       `json:"hash"`
	Files    int          `json:"files"`
	Keys     []RequestKey `json:"keys"`
	// Policy lists the IMA policy fragments the image will carry; each is
	// also among its key's digests.
	Policy []RequestPolicy `json:"policy,omitempty"`
	// SHA256 is the request's own digest (hex), set by Marshal.
	SHA256 string `json:"request_sha256,omitempty"`
}

// RequestKey lists what one key is asked to sign.
type RequestKey struct {
	Name       string   `json:"name"`
	Ref        string   `json:"ref,omitempty"`
	KeyID      string   `json:"key_id"`
	CertSHA256 string   `json:"cert_sha256"`
	Subject    string   `json:"subject"`
	Cert       []byte   `json:"cert"`
	Files      int      `json:"files"`
	Digests    []string `json:"digests"`
	// Paths lists, for review on the ceremony machine (ceremony show), the
	// image paths of each digest (hex digest -> sorted paths). It is
	// informational: signatures are over digests only. A path that is not
	// valid UTF-8 reads with U+FFFD in place of the bad bytes (JSON).
	Paths map[string][]string `json:"paths,omitempty"`

	cert *x509.Certificate
}

// RequestPolicy is a policy fragment of the image.
type RequestPolicy struct {
	Name   string `json:"name"`
	Path   string `json:"path"`
	Key    string `json:"key"`
	Digest string `json:"digest"`
}

// NewRequestKey fills the identity fields of a request key from its
// certificate.
func NewRequestKey(name, ref string, cert *x509.Certificate) RequestKey {
	id := imasig.KeyID(cert)
	fp := sha256.Sum256(cert.Raw)
	return RequestKey{
		Name: name, Ref: ref, KeyID: hex.EncodeToString(id[:]), CertSHA256: hex.EncodeToString(fp[:]),
		Subject: cert.Subject.String(), Cert: cert.Raw, Digests: []string{}, cert: cert,
	}
}

// Certificate returns the key's parsed certificate (valid after
// ParseRequest or NewRequestKey).
func (k *RequestKey) Certificate() *x509.Certificate { return k.cert }

// HashAlg returns the request's digest algorithm.
func (r *Request) HashAlg() (imasig.Hash, error) { return imasig.ParseHash(r.Hash) }

// Key returns the request key named name.
func (r *Request) Key(name string) *RequestKey {
	for i := range r.Keys {
		if r.Keys[i].Name == name {
			return &r.Keys[i]
		}
	}
	return nil
}

// Digests counts the digests to sign, over all keys.
func (r *Request) Digests() int {
	n := 0
	for _, k := range r.Keys {
		n += len(k.Digests)
	}
	return n
}

// Marshal sets r.SHA256 and returns the indented JSON document.
func (r *Request) Marshal() ([]byte, error) {
	r.Format = RequestFormat
	return sealJSON(r, &r.SHA256)
}

// WriteFile writes the request to path atomically.
func (r *Request) WriteFile(path string) error {
	b, err := r.Marshal()
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, b, 0o644)
}

// ReadRequest reads and checks a request file: its format, its own digest,
// and that each key's certificate, key id and fingerprint agree and its
// digests are well-formed, sorted and unique.
func ReadRequest(path string) (*Request, error) {
	return readDocument(path, ParseRequest)
}

// ParseRequest parses and checks a request document (see ReadRequest).
func ParseRequest(b []byte) (*Request, error) {
	r := new(Request)
	if err := strictJSON(b, r); err != nil {
		return nil, err
	}
	if r.Format != RequestFormat {
		return nil, formatErr("format %q, want %q", r.Format, RequestFormat)
	}
	if err := checkSeal(r, &r.SHA256, "request_sha256"); err != nil {
		return nil, err
	}
	h, err := r.HashAlg()
	if err != nil {
		return nil, formatCause("hash", err)
	}
	seen := map[string]bool{}
	for i := range r.Keys {
		k := &r.Keys[i]
		if k.Name == "" || seen[k.Name] {
			return nil, formatErr("keys[%d]: empty or repeated name %q", i, k.Name)
		}
		seen[k.Name] = true
		if err := k.check(h); err != nil {
			return nil, fmt.Errorf("key %q: %w", k.Name, err)
		}
	}
	for i, p := range r.Policy {
		k := r.Key(p.Key)
		if k == nil {
			return nil, formatErr("policy[%d]: key %q is not in the request", i, p.Key)
		}
		if _, found := slices.BinarySearch(k.Digests, p.Digest); !found {
			return nil, formatErr("policy[%d]: digest %s is not among key %q's digests", i, p.Digest, p.Key)
		}
	}
	return r, nil
}

func (k *RequestKey) check(h imasig.Hash) error {
	c, err := x509.ParseCertificate(k.Cert)
	if err != nil {
		return formatCause("cert", err)
	}
	want := NewRequestKey(k.Name, k.Ref, c)
	if want.KeyID != k.KeyID || want.CertSHA256 != k.CertSHA256 {
		return formatErr("key_id %s / cert_sha256 %s do not match the certificate (%s / %s)", k.KeyID, k.CertSHA256, want.KeyID, want.CertSHA256)
	}
	k.cert = c
	for i, d := range k.Digests {
		if err := checkHexDigest(d, h); err != nil {
			return formatErr("digests[%d]: %v", i, err)
		}
		if i > 0 && k.Digests[i-1] >= d {
			return formatErr("digests[%d]: not sorted and unique", i)
		}
	}
	if k.Paths != nil {
		n := 0
		for d, ps := range k.Paths {
			if _, found := slices.BinarySearch(k.Digests, d); !found {
				return formatErr("paths: digest %s is not among the key's digests", d)
			}
			n += len(ps)
		}
		if n != k.Files {
			return formatErr("paths: %d paths for %d files", n, k.Files)
		}
	}
	return nil
}

// PathDigest is a file of a request key with its digest.
type PathDigest struct {
	Path   string
	Digest string // hex
}

// PathDigests returns the key's files (Paths) sorted by path.
func (k *RequestKey) PathDigests() []PathDigest {
	var out []PathDigest
	for d, ps := range k.Paths {
		for _, p := range ps {
			out = append(out, PathDigest{p, d})
		}
	}
	slices.SortFunc(out, func(a, b PathDigest) int { return strings.Compare(a.Path, b.Path) })
	return out
}

func checkHexDigest(d string, h imasig.Hash) error {
	b, err := hex.DecodeString(d)
	if err != nil || hex.EncodeToString(b) != d {
		return fmt.Errorf("%q is not lowercase hex", d)
	}
	if len(b) != h.Size() {
		return fmt.Errorf("%s digest of %d bytes, want %d", h, len(b), h.Size())
	}
	return nil
}

// strictJSON decodes one JSON value, refusing unknown fields and trailing
// data.
func strictJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return formatCause("", err)
	}
	if dec.More() {
		return formatErr("data after the document")
	}
	return nil
}

// SortDigests sorts and de-duplicates hex digests in place.
func SortDigests(ds []string) []string {
	slices.Sort(ds)
	return slices.Compact(ds)
}
