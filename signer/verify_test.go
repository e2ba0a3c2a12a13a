package signer

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"testing"
)

// TestMangledSignature flips every bit pattern of every byte of a value
// (header, key id, size and signature) and expects verification to fail.
func TestMangledSignature(t *testing.T) {
	d := sha256.Sum256([]byte("mangle me"))
	for _, k := range []string{"rsa2048", "p256"} {
		s := loadSigner(t, k)
		v, err := NewVerifier(s.Cert())
		if err != nil {
			t.Fatal(err)
		}
		value, err := s.SignDigest(SHA256, d[:])
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Verify(value, d[:]); err != nil {
			t.Fatalf("%s: unmangled value fails: %v", k, err)
		}
		for i := range value {
			for _, x := range []byte{0x01, 0x80, 0xff} {
				m := bytes.Clone(value)
				m[i] ^= x
				if v.Verify(m, d[:]) == nil {
					t.Errorf("%s: value with byte %d ^ %#x verifies", k, i, x)
				}
			}
		}
		for n := range len(value) {
			if v.Verify(value[:n], d[:]) == nil {
				t.Errorf("%s: value truncated to %d bytes verifies", k, n)
			}
		}
		if v.Verify(append(bytes.Clone(value), 0), d[:]) == nil {
			t.Errorf("%s: value with a trailing byte verifies", k)
		}
		// a different digest
		d2 := d
		d2[31] ^= 1
		if err := v.Verify(value, d2[:]); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s: other digest: %v, want ErrBadSignature", k, err)
		}
	}
}

func TestVerifyErrors(t *testing.T) {
	s := loadSigner(t, "rsa2048")
	d := sha256.Sum256([]byte("x"))
	value, err := s.SignDigest(SHA256, d[:])
	if err != nil {
		t.Fatal(err)
	}
	other := loadCert(t, "rsa3072.pem")
	err = Verify(value, d[:], other)
	var ise *InvalidSignatureError
	if !errors.Is(err, ErrUnknownKeyID) || !errors.As(err, &ise) || ise.KeyID != s.KeyID() {
		t.Errorf("unknown key: %v", err)
	}
	dng, _ := NewDigestNG(SHA256, d[:])
	dv, _ := dng.MarshalBinary()
	if err := Verify(dv, d[:], s.Cert()); !errors.Is(err, ErrWrongType) {
		t.Errorf("digest-ng as signature: %v, want ErrWrongType", err)
	}
	if err := Verify(value[:20], d[:], s.Cert()); !errors.Is(err, ErrTruncated) {
		t.Errorf("truncated: %v, want ErrTruncated", err)
	}
	if err := Verify(value, d[:31], s.Cert()); !errors.Is(err, ErrFormat) {
		t.Errorf("short digest: %v, want ErrFormat", err)
	}
	if _, err := NewVerifier(loadCert(t, "ed25519.pem")); !errors.Is(err, ErrUnsupportedKey) {
		t.Errorf("ed25519 cert: %v", err)
	}
	// Two certificates with one key id: the right one is found.
	v, err := NewVerifier(loadCert(t, "rsa2048-skid.pem"), loadCert(t, "rsa2048.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(value, d[:]); err != nil {
		t.Error(err)
	}
}

// TestVerifySHA1: old images signed with SHA-1 still verify.
func TestVerifySHA1(t *testing.T) {
	s := loadSigner(t, "rsa2048")
	d := sha1.Sum([]byte("old image"))
	raw, err := rsa.SignPKCS1v15(nil, s.key.(*rsa.PrivateKey), crypto.SHA1, d[:])
	if err != nil {
		t.Fatal(err)
	}
	value, err := (&Signature{Hash: SHA1, KeyID: s.KeyID(), Sig: raw}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if err := Verify(value, d[:], s.Cert()); err != nil {
		t.Errorf("sha1 signature: %v", err)
	}
	if err := mustVerifier(t, s).VerifyReader(value, bytes.NewReader([]byte("old image"))); err != nil {
		t.Errorf("VerifyReader: %v", err)
	}
}

func mustVerifier(t *testing.T, s *Signer) *Verifier {
	v, err := NewVerifier(s.Cert())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestCheckDigestNG(t *testing.T) {
	content := []byte("digest only")
	for _, h := range []Hash{SHA256, SHA512, SHA1} {
		d, _ := DigestReader(h, bytes.NewReader(content))
		v, err := NewDigestNG(h, d)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := v.MarshalBinary()
		if err := CheckDigestNG(b, bytes.NewReader(content)); err != nil {
			t.Errorf("%s: %v", h, err)
		}
		if err := CheckDigestNG(b, bytes.NewReader(content[1:])); !errors.Is(err, ErrDigestMismatch) {
			t.Errorf("%s other content: %v", h, err)
		}
	}
	s := loadSigner(t, "p256")
	d := sha256.Sum256(content)
	sig, _ := s.SignDigest(SHA256, d[:])
	if err := CheckDigestNG(sig, bytes.NewReader(content)); !errors.Is(err, ErrWrongType) {
		t.Errorf("signature as digest-ng: %v", err)
	}
}
