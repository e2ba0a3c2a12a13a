package ceremony

import (
	"crypto/x509"
	"encoding/hex"
	"fmt"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/internal/atomicfile"
	"github.com/imaforge/imaforge/signer"
)

// Response is a signing response (see the package documentation).
type Response struct {
	Format   string        `json:"format"`
	Tool     string        `json:"tool,omitempty"`
	Request  string        `json:"request_sha256"`
	Manifest ManifestRef   `json:"manifest"`
	Image    string        `json:"image"`
	Hash     string        `json:"hash"`
	Keys     []ResponseKey `json:"keys"`
	// SHA256 is the response's own digest (hex), set by Marshal.
	SHA256 string `json:"response_sha256,omitempty"`
}

// ResponseKey holds one key's signatures.
type ResponseKey struct {
	Name       string                `json:"name"`
	KeyID      string                `json:"key_id"`
	CertSHA256 string                `json:"cert_sha256"`
	Token      *signer.TokenIdentity `json:"token,omitempty"`
	Signatures []Signature           `json:"signatures"`
}

// Signature is one signed digest: the digest and the complete security.ima
// value, both hex.
type Signature struct {
	Digest string `json:"digest"`
	Value  string `json:"ima"`
}

// Key returns the response key named name.
func (r *Response) Key(name string) *ResponseKey {
	for i := range r.Keys {
		if r.Keys[i].Name == name {
			return &r.Keys[i]
		}
	}
	return nil
}

// Marshal sets r.SHA256 and returns the indented JSON document.
func (r *Response) Marshal() ([]byte, error) {
	r.Format = ResponseFormat
	return sealJSON(r, &r.SHA256)
}

// WriteFile writes the response to path atomically.
func (r *Response) WriteFile(path string) error {
	b, err := r.Marshal()
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(path, b, 0o644)
}

// ReadResponse reads a response file and checks its format, its own digest
// and the form of every entry. It does not verify signatures: see Verify.
func ReadResponse(path string) (*Response, error) {
	return readDocument(path, ParseResponse)
}

// ParseResponse parses a response document (see ReadResponse).
func ParseResponse(b []byte) (*Response, error) {
	r := new(Response)
	if err := strictJSON(b, r); err != nil {
		return nil, err
	}
	if r.Format != ResponseFormat {
		return nil, formatErr("format %q, want %q", r.Format, ResponseFormat)
	}
	if err := checkSeal(r, &r.SHA256, "response_sha256"); err != nil {
		return nil, err
	}
	h, err := imasig.ParseHash(r.Hash)
	if err != nil {
		return nil, formatCause("hash", err)
	}
	for _, k := range r.Keys {
		for i, s := range k.Signatures {
			if err := checkHexDigest(s.Digest, h); err != nil {
				return nil, formatErr("key %q signatures[%d]: %v", k.Name, i, err)
			}
			if _, err := hex.DecodeString(s.Value); err != nil {
				return nil, formatErr("key %q signatures[%d]: ima: %v", k.Name, i, err)
			}
		}
	}
	return r, nil
}

// Values returns the key's signatures by raw digest, each verified against
// cert and checked to be over a digest of hash h: a signature by another key
// or over another digest is an error naming the digest.
func (k *ResponseKey) Values(h imasig.Hash, cert *x509.Certificate) (map[string][]byte, error) {
	v, err := imasig.NewVerifier(cert)
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(k.Signatures))
	for _, s := range k.Signatures {
		d, _ := hex.DecodeString(s.Digest)
		val, _ := hex.DecodeString(s.Value)
		if err := VerifyValue(v, h, val, d); err != nil {
			return nil, fmt.Errorf("key %q digest %s: %w", k.Name, s.Digest, err)
		}
		out[string(d)] = val
	}
	return out, nil
}

// VerifyValue checks that val is a v2 signature over digest made with hash h
// by v's certificate.
func VerifyValue(v *imasig.Verifier, h imasig.Hash, val, digest []byte) error {
	sig, err := imasig.ParseSignature(val)
	if err != nil {
		return err
	}
	if sig.Hash != h {
		return fmt.Errorf("%w: signature over a %s digest, want %s", ErrMismatch, sig.Hash, h)
	}
	return v.Verify(val, digest)
}
