package integrity

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"

	"github.com/imaforge/imaforge/integrity/cms"
)

// Output file suffixes, appended to the image path.
const (
	// SuffixImageSig is the detached CMS signature over the whole image.
	SuffixImageSig = ".cms"
	// SuffixDescriptor is the verity descriptor (Descriptor.Marshal).
	SuffixDescriptor = ".verity"
	// SuffixDescriptorSig is the detached CMS signature over the descriptor.
	SuffixDescriptorSig = ".verity.cms"
	// SuffixRootHashSig is the detached CMS signature over the root hash in
	// lower-case hex (no newline), for the kernel's dm-verity
	// root_hash_sig_key_desc and veritysetup --root-hash-signature.
	SuffixRootHashSig = ".roothash.p7s"
)

// Suffixes lists every output suffix above, in the order they are written.
var Suffixes = []string{SuffixImageSig, SuffixDescriptor, SuffixDescriptorSig, SuffixRootHashSig}

// saltDomain separates the salt derivation from any other use of the
// manifest digest.
const saltDomain = "imaforge dm-verity salt v1\x00"

// Salt derives an image's dm-verity salt from the SHA-256 of its manifest:
// sha256("imaforge dm-verity salt v1\x00" || manifest digest), 32 bytes as
// veritysetup and RAUC use. The same manifest gives the same salt, so the
// image stays reproducible; different manifests (products, versions) get
// different salts.
func Salt(manifestSHA256 []byte) []byte {
	h := sha256.New()
	h.Write([]byte(saltDomain))
	h.Write(manifestSHA256)
	return h.Sum(nil)
}

// UUID derives the verity superblock's UUID from the salt (veritysetup
// would pick a random one): the first 16 bytes of sha256("imaforge
// dm-verity uuid v1\x00" || salt), marked as an RFC 9562 version 8 UUID.
func UUID(salt []byte) [16]byte {
	h := sha256.New()
	h.Write([]byte("imaforge dm-verity uuid v1\x00"))
	h.Write(salt)
	var u [16]byte
	copy(u[:], h.Sum(nil))
	u[6] = u[6]&0x0f | 0x80
	u[8] = u[8]&0x3f | 0x80
	return u
}

// Signer makes the integrity signatures with one key. Certs are the
// signer's certificate first, then the intermediates a verifier needs to
// reach its root (not the root).
type Signer struct {
	Key   crypto.Signer
	Certs []*x509.Certificate
}

func (s *Signer) check() error {
	if s == nil || s.Key == nil || len(s.Certs) == 0 {
		return errors.New("integrity: no signing key or certificate")
	}
	return nil
}

// SignImage returns the detached CMS signature (DER) over the image whose
// SHA-256 is digest.
func (s *Signer) SignImage(digest []byte) ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	return cms.SignDetached(digest, s.Key, s.Certs)
}

// SignDescriptor encodes d and signs it: the IMAGE.verity and
// IMAGE.verity.cms contents.
func (s *Signer) SignDescriptor(d *Descriptor) (desc, sig []byte, err error) {
	if err := s.check(); err != nil {
		return nil, nil, err
	}
	desc = d.Marshal()
	sum := sha256.Sum256(desc)
	sig, err = cms.SignDetached(sum[:], s.Key, s.Certs)
	return desc, sig, err
}

// SignRootHash signs the root hash as the kernel checks it: the signed
// content is the lower-case hex string given in the dm-verity table.
func (s *Signer) SignRootHash(root []byte) ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	sum := sha256.Sum256([]byte(hex.EncodeToString(root)))
	return cms.SignDetached(sum[:], s.Key, s.Certs)
}
