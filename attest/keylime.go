package attest

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/imaforge/imaforge/imasig"
)

// KeylimePolicy is Keylime's runtime policy (keylime/ima/ima.py,
// RUNTIME_POLICY_SCHEMA; copy in testdata/keylime-runtime-policy.schema.json):
// every field is required by the schema.
type KeylimePolicy struct {
	Meta     KeylimeMeta         `json:"meta"`
	Release  int                 `json:"release"`
	Digests  map[string][]string `json:"digests"`  // device path -> hex digests
	Excludes []string            `json:"excludes"` // regular expressions of paths not judged
	Keyrings map[string][]string `json:"keyrings"` // keyring -> hex digests of the keys loaded into it
	IMA      KeylimeIMA          `json:"ima"`
	IMABuf   map[string][]string `json:"ima-buf"` // buffer name -> hex digests
	// VerificationKeys is a JSON string (IMA_KEYRING_JSON_SCHEMA in
	// keylime/ima/file_signatures.py): {"meta": {"version": 1}, "keyids":
	// [int], "pubkeys": [base64 DER SubjectPublicKeyInfo]}.
	VerificationKeys string `json:"verification-keys"`
}

// KeylimeMeta is the policy's meta object.
type KeylimeMeta struct {
	Version   int `json:"version"`   // RUNTIME_POLICY_CURRENT_VERSION, 1
	Generator int `json:"generator"` // RUNTIME_POLICY_GENERATOR: 0 Unknown (imaforge is none of Keylime's tools)
}

// KeylimeIMA is the policy's ima object.
type KeylimeIMA struct {
	IgnoredKeyrings []string `json:"ignored_keyrings"`
	LogHashAlg      string   `json:"log_hash_alg"` // the list's template hash: sha1
	DMPolicy        any      `json:"dm_policy"`    // null
}

type keylimeKeyring struct {
	Meta    map[string]int `json:"meta"`
	KeyIDs  []uint32       `json:"keyids"`
	PubKeys []string       `json:"pubkeys"`
}

// KeylimeOptions tune Keylime.
type KeylimeOptions struct {
	// Keyring is the name the device's IMA key measurements carry (the
	// keyring the signing certificates are loaded into, e.g. "_ima" or
	// ".ima"); its keys' digests go to keyrings. Empty: "_ima".
	Keyring string
}

// Keylime converts reference values into a Keylime runtime policy: every
// file of every image at its device path (mount point + image path) with
// its digest, the allowed boot aggregates under "boot_aggregate" (as
// Keylime's own tools put them), the signing keys as verification-keys
// (so ima-sig entries are judged by signature) and their certificates'
// digests under keyrings, and the allowed buffers under ima-buf.
func (r *Reference) Keylime(opts KeylimeOptions) (*KeylimePolicy, error) {
	kr := opts.Keyring
	if kr == "" {
		kr = "_ima"
	}
	p := &KeylimePolicy{
		Meta:     KeylimeMeta{Version: 1, Generator: 0},
		Digests:  map[string][]string{},
		Excludes: []string{},
		Keyrings: map[string][]string{},
		IMA:      KeylimeIMA{IgnoredKeyrings: []string{}, LogHashAlg: "sha1"},
		IMABuf:   map[string][]string{},
	}
	add := func(m map[string][]string, k, tagged string) error {
		_, d, err := parseTaggedDigest(tagged)
		if err != nil {
			return err
		}
		h := hex.EncodeToString(d)
		if !slices.Contains(m[k], h) {
			m[k] = append(m[k], h)
		}
		return nil
	}
	for _, img := range r.Images {
		for _, f := range img.Files {
			if err := add(p.Digests, path.Join(img.Mount, f.Path), f.Digest); err != nil {
				return nil, fmt.Errorf("image %s: %s: %w", img.Name, f.Path, err)
			}
		}
	}
	for _, b := range r.BootAggregate {
		if err := add(p.Digests, "boot_aggregate", b); err != nil {
			return nil, err
		}
	}
	for name, ds := range r.Buffers {
		for _, d := range ds {
			if err := add(p.IMABuf, name, d); err != nil {
				return nil, err
			}
		}
	}
	certs, err := r.Certificates()
	if err != nil {
		return nil, err
	}
	ring := keylimeKeyring{Meta: map[string]int{"version": 1}, KeyIDs: []uint32{}, PubKeys: []string{}}
	for _, c := range certs {
		id := imasig.KeyID(c)
		ring.KeyIDs = append(ring.KeyIDs, binary.BigEndian.Uint32(id[:]))
		ring.PubKeys = append(ring.PubKeys, base64.StdEncoding.EncodeToString(c.RawSubjectPublicKeyInfo))
		sum := sha256.Sum256(c.Raw)
		h := hex.EncodeToString(sum[:])
		if !slices.Contains(p.Keyrings[kr], h) {
			p.Keyrings[kr] = append(p.Keyrings[kr], h)
		}
	}
	if len(certs) > 0 {
		vk, err := json.Marshal(ring)
		if err != nil {
			return nil, err
		}
		p.VerificationKeys = string(vk)
	}
	return p, nil
}

// Marshal encodes the policy as indented JSON (map keys sorted, so the
// bytes are reproducible) with a final newline.
func (p *KeylimePolicy) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// keylimeKeyIDs decodes the keyids of a verification-keys string (tests).
func keylimeKeyIDs(vk string) ([]string, error) {
	var ring keylimeKeyring
	if err := json.NewDecoder(strings.NewReader(vk)).Decode(&ring); err != nil {
		return nil, err
	}
	var out []string
	for _, id := range ring.KeyIDs {
		out = append(out, fmt.Sprintf("%08x", id))
	}
	return out, nil
}
