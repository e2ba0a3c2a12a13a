package attest

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/internal/jsonrecord"
	"github.com/imaforge/imaforge/pipeline"
)

// ReferenceFormat names the reference-values schema (docs/attest.md); it
// changes when a field changes meaning.
const ReferenceFormat = "imaforge-reference-values/v1"

// ErrReference is wrapped by errors about malformed reference values.
var ErrReference = errors.New("malformed reference values")

// Reference is imaforge's reference values: what a device built from one
// or more images may measure. It is written by `imaforge attest policy`
// and read by `imaforge attest verify`. It holds no time or host name, so
// the same build records give the same bytes.
type Reference struct {
	Format string           `json:"format"`
	Images []ReferenceImage `json:"images"`
	// Keys are the signing certificates of the images (DER, base64), for
	// judging ima-sig entries by signature and ima-buf key measurements.
	Keys []ReferenceKey `json:"keys"`
	// BootAggregate lists the boot_aggregate digests the operator allows
	// ("sha256:hex"); none means no boot_aggregate entry is trusted by
	// reference (fail closed).
	BootAggregate []string `json:"boot_aggregate"`
	// Buffers lists allowed ima-buf measurements by name (a keyring name
	// for keys, "kernel_version", ...): digests "sha256:hex".
	Buffers map[string][]string `json:"buffers"`
}

// ReferenceImage is one image and where the device mounts it.
type ReferenceImage struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	// Mount is the image's mount point on the device: a file at image path
	// /bin/x is measured as Mount + /bin/x.
	Mount string          `json:"mount"`
	Files []ReferenceFile `json:"files"`
}

// ReferenceFile is one regular file of an image.
type ReferenceFile struct {
	Path   string `json:"path"`   // in the image, absolute
	Digest string `json:"digest"` // "sha256:hex", as the build signed it
	KeyID  string `json:"key_id,omitempty"`
}

// ReferenceKey is a signing certificate.
type ReferenceKey struct {
	KeyID       string `json:"key_id"`
	Subject     string `json:"subject"`
	Certificate []byte `json:"certificate"` // DER
}

// ImageSource is one build record and the mount point of its image.
type ImageSource struct {
	Record *pipeline.Record
	Mount  string
}

// NewReference builds reference values from build records, their images'
// mount points and the signing certificates. Every key a record names must
// have its certificate among certs (matched by key id and certificate
// SHA-256) to be listed; a key without one is named in the notes returned
// (its files can then be judged by digest only).
func NewReference(images []ImageSource, certs []*x509.Certificate, bootAggregates []string) (*Reference, []string, error) {
	ref := &Reference{Format: ReferenceFormat, BootAggregate: []string{}, Buffers: map[string][]string{}, Keys: []ReferenceKey{}}
	byID := map[string]*x509.Certificate{}
	for _, c := range certs {
		id := imasig.KeyID(c)
		byID[hex.EncodeToString(id[:])] = c
	}
	used := map[string]bool{}
	var notes []string
	mounts := map[string]string{}
	for _, src := range images {
		r := src.Record
		if r == nil || (r.Format != pipeline.RecordFormat && r.Format != pipeline.RecordFormatV1) {
			return nil, nil, fmt.Errorf("%w: not a build record of format %s", ErrReference, pipeline.RecordFormat)
		}
		m, err := cleanMount(src.Mount)
		if err != nil {
			return nil, nil, fmt.Errorf("image %s: %w", r.Image.Name, err)
		}
		if other, ok := mounts[m]; ok {
			return nil, nil, fmt.Errorf("%w: images %s and %s share the mount point %s", ErrReference, other, r.Image.Name, m)
		}
		mounts[m] = r.Image.Name
		img := ReferenceImage{Name: r.Image.Name, SHA256: r.Image.SHA256, Mount: m, Files: []ReferenceFile{}}
		for _, k := range r.Keys {
			c := byID[k.KeyID]
			if c == nil {
				notes = append(notes, fmt.Sprintf("image %s: key %s (%s, id %s): no certificate given, its files are judged by digest only", r.Image.Name, k.Name, k.Subject, k.KeyID))
				continue
			}
			if sum := sha256.Sum256(c.Raw); k.CertSHA256 != "" && hex.EncodeToString(sum[:]) != k.CertSHA256 {
				return nil, nil, fmt.Errorf("image %s: key %s (id %s): the certificate given (%s) is not the one the build used (sha256 %s)", r.Image.Name, k.Name, k.KeyID, c.Subject, k.CertSHA256)
			}
			used[k.KeyID] = true
		}
		hashName := r.Hash
		if hashName == "" {
			hashName = "sha256"
		}
		for _, f := range r.Files {
			img.Files = append(img.Files, ReferenceFile{Path: f.Path, Digest: hashName + ":" + f.Digest, KeyID: f.KeyID})
		}
		ref.Images = append(ref.Images, img)
	}
	ids := make([]string, 0, len(used))
	for id := range used {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		c := byID[id]
		ref.Keys = append(ref.Keys, ReferenceKey{KeyID: id, Subject: c.Subject.String(), Certificate: c.Raw})
	}
	for _, b := range bootAggregates {
		if _, _, err := parseTaggedDigest(b); err != nil {
			return nil, nil, fmt.Errorf("boot aggregate %q: %w", b, err)
		}
		ref.BootAggregate = append(ref.BootAggregate, b)
	}
	return ref, notes, nil
}

func cleanMount(m string) (string, error) {
	if !strings.HasPrefix(m, "/") {
		return "", fmt.Errorf("%w: mount point %q is not an absolute path", ErrReference, m)
	}
	return path.Clean(m), nil
}

// parseTaggedDigest splits "algo:hex".
func parseTaggedDigest(s string) (string, []byte, error) {
	algo, h, ok := strings.Cut(s, ":")
	if !ok {
		return "", nil, fmt.Errorf("%w: digest %q is not algo:hex", ErrReference, s)
	}
	ha, err := imasig.ParseHash(algo)
	if err != nil {
		return "", nil, fmt.Errorf("%w: digest %q: %w", ErrReference, s, err)
	}
	d, err := hex.DecodeString(h)
	if err != nil || len(d) != ha.Size() {
		return "", nil, fmt.Errorf("%w: digest %q: want %d bytes of hex", ErrReference, s, ha.Size())
	}
	return algo, d, nil
}

// Marshal encodes the reference values as indented JSON with a final
// newline.
func (r *Reference) Marshal() ([]byte, error) { return jsonrecord.Marshal(r) }

// ParseReference decodes and checks reference values: the format, absolute
// distinct mount points, well-formed digests and certificates whose key id
// is the one named.
func ParseReference(b []byte) (*Reference, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var r Reference
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrReference, err)
	}
	if r.Format != ReferenceFormat {
		return nil, fmt.Errorf("%w: format %q, want %q", ErrReference, r.Format, ReferenceFormat)
	}
	mounts := map[string]bool{}
	for i, img := range r.Images {
		m, err := cleanMount(img.Mount)
		if err != nil {
			return nil, fmt.Errorf("images[%d] (%s): %w", i, img.Name, err)
		}
		if mounts[m] {
			return nil, fmt.Errorf("%w: images[%d] (%s): mount point %s used twice", ErrReference, i, img.Name, m)
		}
		mounts[m] = true
		r.Images[i].Mount = m
		for j, f := range img.Files {
			if !strings.HasPrefix(f.Path, "/") {
				return nil, fmt.Errorf("%w: images[%d].files[%d]: path %q is not absolute", ErrReference, i, j, f.Path)
			}
			if _, _, err := parseTaggedDigest(f.Digest); err != nil {
				return nil, fmt.Errorf("images[%d].files[%d] (%s): %w", i, j, f.Path, err)
			}
		}
	}
	for i, k := range r.Keys {
		c, err := x509.ParseCertificate(k.Certificate)
		if err != nil {
			return nil, fmt.Errorf("%w: keys[%d] (%s): %w", ErrReference, i, k.KeyID, err)
		}
		id := imasig.KeyID(c)
		if hex.EncodeToString(id[:]) != k.KeyID {
			return nil, fmt.Errorf("%w: keys[%d]: key id %s, the certificate's is %x", ErrReference, i, k.KeyID, id)
		}
	}
	for i, b := range r.BootAggregate {
		if _, _, err := parseTaggedDigest(b); err != nil {
			return nil, fmt.Errorf("boot_aggregate[%d]: %w", i, err)
		}
	}
	for name, ds := range r.Buffers {
		for i, d := range ds {
			if _, _, err := parseTaggedDigest(d); err != nil {
				return nil, fmt.Errorf("buffers[%q][%d]: %w", name, i, err)
			}
		}
	}
	return &r, nil
}

// Certificates returns the reference's signing certificates.
func (r *Reference) Certificates() ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for i, k := range r.Keys {
		c, err := x509.ParseCertificate(k.Certificate)
		if err != nil {
			return nil, fmt.Errorf("%w: keys[%d]: %w", ErrReference, i, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// Mounts returns the images' mount points.
func (r *Reference) Mounts() []string {
	var out []string
	for _, img := range r.Images {
		out = append(out, img.Mount)
	}
	return out
}
