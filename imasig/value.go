package imasig

import (
	"encoding"
	"encoding/binary"
	"fmt"
)

// XattrName is the extended attribute IMA appraises (the kernel's
// XATTR_NAME_IMA, include/uapi/linux/xattr.h).
const XattrName = "security.ima"

// Type is the first byte of a security.ima (or security.evm) value: the
// kernel's enum evm_ima_xattr_type (security/integrity/integrity.h,
// ima-evm-utils src/imaevm.h).
type Type uint8

const (
	TypeDigest            Type = 0x01 // IMA_XATTR_DIGEST: 01 | sha1 digest (20 bytes)
	TypeHMAC              Type = 0x02 // EVM_XATTR_HMAC: 02 | HMAC-SHA1 (20 bytes), security.evm only
	TypeSignature         Type = 0x03 // EVM_IMA_XATTR_DIGSIG: 03 | v2 signature header | signature
	TypeDigestNG          Type = 0x04 // IMA_XATTR_DIGEST_NG: 04 | hash_algo | digest
	TypePortableSignature Type = 0x05 // EVM_XATTR_PORTABLE_DIGSIG: same layout as 03, security.evm only
	TypeVeritySignature   Type = 0x06 // IMA_VERITY_DIGSIG: 06 | v3 signature header | signature (fs-verity)
)

func (t Type) String() string {
	switch t {
	case TypeDigest:
		return "digest"
	case TypeHMAC:
		return "evm-hmac"
	case TypeSignature:
		return "signature"
	case TypeDigestNG:
		return "digest-ng"
	case TypePortableSignature:
		return "evm-portable-signature"
	case TypeVeritySignature:
		return "verity-signature"
	}
	return fmt.Sprintf("type(0x%02x)", uint8(t))
}

// Signature format versions (ima-evm-utils enum digsig_version).
const (
	SigVersion2 = 2 // signature directly over the file digest
	SigVersion3 = 3 // signature over the hash of struct ima_file_id (fs-verity)
)

// Layout of a signature value (struct signature_v2_hdr, packed, after the
// type byte). Offsets are in the whole value.
const (
	offType       = 0 // Type
	offVersion    = 1 // signature format version
	offHashAlgo   = 2 // Hash
	offKeyID      = 3 // 4 bytes, big-endian: last 4 bytes of the key's SKID
	offSigSize    = 7 // 2 bytes, big-endian: length of the signature proper
	sigHeaderSize = 9 // 1 + sizeof(struct signature_v2_hdr)

	sha1Size = 20
	maxSig   = 0xffff
)

// Value is one decoded security.ima value.
type Value interface {
	Type() Type
	encoding.BinaryMarshaler
	encoding.BinaryAppender
}

// Parse decodes a security.ima value of any type strictly: every length must
// match exactly, so re-encoding the result gives the same bytes. The
// concrete types are *Signature, *DigestNG, *Digest and *HMAC.
func Parse(b []byte) (Value, error) {
	if len(b) == 0 {
		return nil, formatErr(ErrTruncated, 0, "empty value")
	}
	var v interface {
		Value
		encoding.BinaryUnmarshaler
	}
	switch Type(b[0]) {
	case TypeDigest:
		v = new(Digest)
	case TypeHMAC:
		v = new(HMAC)
	case TypeSignature, TypePortableSignature, TypeVeritySignature:
		v = new(Signature)
	case TypeDigestNG:
		v = new(DigestNG)
	default:
		return nil, formatErr(ErrWrongType, 0, "unknown type 0x%02x", b[0])
	}
	if err := v.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	return v, nil
}

// ParseSignature decodes the value IMA appraisal verifies: type 0x03,
// version 2 (what digsig_asymmetric.c accepts for a file signature). Any
// other valid type is reported with ErrWrongType.
func ParseSignature(b []byte) (*Signature, error) {
	if len(b) > 0 && Type(b[0]) != TypeSignature {
		if _, err := Parse(b); err != nil {
			return nil, err
		}
		return nil, formatErr(ErrWrongType, 0, "%s value where a signature (type 0x03) is required", Type(b[0]))
	}
	s := new(Signature)
	if err := s.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	if s.Version != SigVersion2 {
		return nil, formatErr(ErrFormat, offVersion, "signature version %d in a type 0x03 value (want 2)", s.Version)
	}
	return s, nil
}

// Signature is a signature value:
//
//	offset 0  type       0x03 (or 0x05 EVM portable, 0x06 fs-verity)
//	offset 1  version    2 (3 for 0x06)
//	offset 2  hash_algo  Hash the digest was made with
//	offset 3  keyid      4 bytes, big-endian
//	offset 7  sig_size   2 bytes, big-endian, = len(value) - 9
//	offset 9  signature  RSA PKCS#1 v1.5 (with DigestInfo) or ECDSA ASN.1 DER
//
// The kernel (security/integrity/digsig_asymmetric.c asymmetric_verify)
// rejects the value unless sig_size equals the remaining length.
type Signature struct {
	Kind    Type    // TypeSignature, TypePortableSignature or TypeVeritySignature; zero means TypeSignature
	Version uint8   // SigVersion2 (SigVersion3 for TypeVeritySignature); zero means the one Kind needs
	Hash    Hash    // algorithm of the signed digest
	KeyID   [4]byte // identifies the verifying key (see KeyID)
	Sig     []byte  // the signature proper
}

// Type returns s.Kind, defaulting to TypeSignature.
func (s *Signature) Type() Type {
	if s.Kind == 0 {
		return TypeSignature
	}
	return s.Kind
}

func (s *Signature) version() uint8 {
	if s.Version != 0 {
		return s.Version
	}
	if s.Type() == TypeVeritySignature {
		return SigVersion3
	}
	return SigVersion2
}

// AppendBinary appends the encoded value to b.
func (s *Signature) AppendBinary(b []byte) ([]byte, error) {
	t := s.Type()
	if t != TypeSignature && t != TypePortableSignature && t != TypeVeritySignature {
		return b, fmt.Errorf("%w: %s is not a signature type", ErrWrongType, t)
	}
	if len(s.Sig) == 0 || len(s.Sig) > maxSig {
		return b, fmt.Errorf("%w: signature of %d bytes (want 1..%d)", ErrFormat, len(s.Sig), maxSig)
	}
	if !s.Hash.Known() {
		return b, fmt.Errorf("%w: %s", ErrUnsupportedHash, s.Hash)
	}
	b = append(b, byte(t), s.version(), byte(s.Hash))
	b = append(b, s.KeyID[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(s.Sig)))
	return append(b, s.Sig...), nil
}

// MarshalBinary returns the encoded value.
func (s *Signature) MarshalBinary() ([]byte, error) {
	return s.AppendBinary(make([]byte, 0, sigHeaderSize+len(s.Sig)))
}

// UnmarshalBinary decodes a signature value strictly; Sig is a copy.
func (s *Signature) UnmarshalBinary(b []byte) error {
	if len(b) < sigHeaderSize {
		return formatErr(ErrTruncated, len(b), "signature header needs %d bytes, have %d", sigHeaderSize, len(b))
	}
	t := Type(b[offType])
	var want uint8
	switch t {
	case TypeSignature, TypePortableSignature:
		want = SigVersion2
	case TypeVeritySignature:
		want = SigVersion3
	default:
		return formatErr(ErrWrongType, offType, "%s value where a signature is required", t)
	}
	if v := b[offVersion]; v != want {
		return formatErr(ErrFormat, offVersion, "signature version %d in a %s value (want %d)", v, t, want)
	}
	h := Hash(b[offHashAlgo])
	if !h.Known() {
		return formatErr(ErrUnsupportedHash, offHashAlgo, "unknown hash algorithm id %d", uint8(h))
	}
	size := int(binary.BigEndian.Uint16(b[offSigSize:]))
	rest := len(b) - sigHeaderSize
	switch {
	case size == 0:
		return formatErr(ErrFormat, offSigSize, "sig_size is 0")
	case rest < size:
		return formatErr(ErrTruncated, len(b), "sig_size %d but %d signature bytes", size, rest)
	case rest > size:
		return formatErr(ErrFormat, sigHeaderSize+size, "sig_size %d but %d bytes follow the header", size, rest)
	}
	*s = Signature{Kind: t, Version: b[offVersion], Hash: h, Sig: append([]byte(nil), b[sigHeaderSize:]...)}
	copy(s.KeyID[:], b[offKeyID:offSigSize])
	return nil
}

// DigestNG is a digest-only value for appraise_type without signatures:
//
//	offset 0  type       0x04
//	offset 1  hash_algo  Hash
//	offset 2  digest     Hash.Size() bytes
type DigestNG struct {
	Hash   Hash
	Digest []byte
}

// NewDigestNG returns the digest-ng value for digest, checking its length.
func NewDigestNG(h Hash, digest []byte) (*DigestNG, error) {
	if !h.Known() {
		return nil, fmt.Errorf("%w: %s", ErrUnsupportedHash, h)
	}
	if len(digest) != h.Size() {
		return nil, fmt.Errorf("%w: %s digest of %d bytes (want %d)", ErrFormat, h, len(digest), h.Size())
	}
	return &DigestNG{Hash: h, Digest: append([]byte(nil), digest...)}, nil
}

// Type returns TypeDigestNG (0x04).
func (*DigestNG) Type() Type { return TypeDigestNG }

// AppendBinary appends the encoded value to b.
func (d *DigestNG) AppendBinary(b []byte) ([]byte, error) {
	if !d.Hash.Known() || len(d.Digest) != d.Hash.Size() {
		return b, fmt.Errorf("%w: %s digest of %d bytes", ErrFormat, d.Hash, len(d.Digest))
	}
	b = append(b, byte(TypeDigestNG), byte(d.Hash))
	return append(b, d.Digest...), nil
}

// MarshalBinary returns the encoded value.
func (d *DigestNG) MarshalBinary() ([]byte, error) {
	return d.AppendBinary(make([]byte, 0, 2+len(d.Digest)))
}

// UnmarshalBinary decodes a digest-ng value strictly.
func (d *DigestNG) UnmarshalBinary(b []byte) error {
	if len(b) < 2 {
		return formatErr(ErrTruncated, len(b), "digest-ng header needs 2 bytes, have %d", len(b))
	}
	if Type(b[0]) != TypeDigestNG {
		return formatErr(ErrWrongType, 0, "%s value where digest-ng is required", Type(b[0]))
	}
	h := Hash(b[1])
	if !h.Known() {
		return formatErr(ErrUnsupportedHash, 1, "unknown hash algorithm id %d", uint8(h))
	}
	switch n := len(b) - 2; {
	case n < h.Size():
		return formatErr(ErrTruncated, len(b), "%s digest of %d bytes (want %d)", h, n, h.Size())
	case n > h.Size():
		return formatErr(ErrFormat, 2+h.Size(), "%s digest of %d bytes (want %d)", h, n, h.Size())
	}
	*d = DigestNG{Hash: h, Digest: append([]byte(nil), b[2:]...)}
	return nil
}

// Digest is the original digest-only value: 0x01 followed by a SHA-1
// digest (20 bytes). Parsed for reporting; imaforge never writes it.
type Digest struct {
	SHA1 [sha1Size]byte
}

// Type returns TypeDigest (0x01).
func (*Digest) Type() Type { return TypeDigest }

// AppendBinary appends the encoded value to b.
func (d *Digest) AppendBinary(b []byte) ([]byte, error) {
	return append(append(b, byte(TypeDigest)), d.SHA1[:]...), nil
}

// MarshalBinary returns the encoded value.
func (d *Digest) MarshalBinary() ([]byte, error) { return d.AppendBinary(nil) }

// UnmarshalBinary decodes a 0x01 value strictly.
func (d *Digest) UnmarshalBinary(b []byte) error {
	return unmarshalFixed20(b, TypeDigest, d.SHA1[:])
}

// HMAC is an EVM HMAC value (0x02 followed by an HMAC-SHA1, 20 bytes). It
// belongs in security.evm; parsed for reporting only.
type HMAC struct {
	MAC [sha1Size]byte
}

// Type returns TypeHMAC (0x02).
func (*HMAC) Type() Type { return TypeHMAC }

// AppendBinary appends the encoded value to b.
func (h *HMAC) AppendBinary(b []byte) ([]byte, error) {
	return append(append(b, byte(TypeHMAC)), h.MAC[:]...), nil
}

// MarshalBinary returns the encoded value.
func (h *HMAC) MarshalBinary() ([]byte, error) { return h.AppendBinary(nil) }

// UnmarshalBinary decodes a 0x02 value strictly.
func (h *HMAC) UnmarshalBinary(b []byte) error {
	return unmarshalFixed20(b, TypeHMAC, h.MAC[:])
}

func unmarshalFixed20(b []byte, t Type, dst []byte) error {
	if len(b) == 0 || Type(b[0]) != t {
		if len(b) == 0 {
			return formatErr(ErrTruncated, 0, "empty value")
		}
		return formatErr(ErrWrongType, 0, "%s value where %s is required", Type(b[0]), t)
	}
	switch n := len(b) - 1; {
	case n < sha1Size:
		return formatErr(ErrTruncated, len(b), "%s of %d bytes (want %d)", t, n, sha1Size)
	case n > sha1Size:
		return formatErr(ErrFormat, 1+sha1Size, "%s of %d bytes (want %d)", t, n, sha1Size)
	}
	copy(dst, b[1:])
	return nil
}
