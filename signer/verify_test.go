package signer

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"errors"
	"testing"

	"github.com/imaforge/imaforge/imasig"
)

// TestMangledSignature flips every bit pattern of every byte of a value
// (header, key id, size and signature) and expects verification to fail.
func TestMangledSignature(t *testing.T) {
	d := sha256.Sum256([]byte("mangle me"))
	for _, k := range []string{"rsa2048", "p256"} {
		s := loadSigner(t, k)
		v, err := imasig.NewVerifier(s.Cert())
		if err != nil {
			t.Fatal(err)
		}
		value, err := s.SignDigest(imasig.SHA256, d[:])
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
		if err := v.Verify(value, d2[:]); !errors.Is(err, imasig.ErrBadSignature) {
			t.Errorf("%s: other digest: %v, want ErrBadSignature", k, err)
		}
	}
}

func TestVerifyErrors(t *testing.T) {
	s := loadSigner(t, "rsa2048")
	d := sha256.Sum256([]byte("x"))
	value, err := s.SignDigest(imasig.SHA256, d[:])
	if err != nil {
		t.Fatal(err)
	}
	other := loadCert(t, "rsa3072.pem")
	err = imasig.Verify(value, d[:], other)
	var ise *imasig.InvalidSignatureError
	if !errors.Is(err, imasig.ErrUnknownKeyID) || !errors.As(err, &ise) || ise.KeyID != s.KeyID() {
		t.Errorf("unknown key: %v", err)
	}
	dng, _ := imasig.NewDigestNG(imasig.SHA256, d[:])
	dv, _ := dng.MarshalBinary()
	if err := imasig.Verify(dv, d[:], s.Cert()); !errors.Is(err, imasig.ErrWrongType) {
		t.Errorf("digest-ng as signature: %v, want ErrWrongType", err)
	}
	if err := imasig.Verify(value[:20], d[:], s.Cert()); !errors.Is(err, imasig.ErrTruncated) {
		t.Errorf("truncated: %v, want ErrTruncated", err)
	}
	if err := imasig.Verify(value, d[:31], s.Cert()); !errors.Is(err, imasig.ErrFormat) {
		t.Errorf("short digest: %v, want ErrFormat", err)
	}
	if _, err := imasig.NewVerifier(loadCert(t, "ed25519.pem")); !errors.Is(err, imasig.ErrUnsupportedKey) {
		t.Errorf("ed25519 cert: %v", err)
	}
	// Two certificates with one key id: the right one is found.
	v, err := imasig.NewVerifier(loadCert(t, "rsa2048-skid.pem"), loadCert(t, "rsa2048.pem"))
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
	value, err := (&imasig.Signature{Hash: imasig.SHA1, KeyID: s.KeyID(), Sig: raw}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if err := imasig.Verify(value, d[:], s.Cert()); err != nil {
		t.Errorf("sha1 signature: %v", err)
	}
	if err := mustVerifier(t, s).VerifyReader(value, bytes.NewReader([]byte("old image"))); err != nil {
		t.Errorf("VerifyReader: %v", err)
	}
}

func mustVerifier(t *testing.T, s *Signer) *imasig.Verifier {
	v, err := imasig.NewVerifier(s.Cert())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestCheckDigestNG(t *testing.T) {
	content := []byte("digest only")
	for _, h := range []imasig.Hash{imasig.SHA256, imasig.SHA512, imasig.SHA1} {
		d, _ := imasig.DigestReader(h, bytes.NewReader(content))
		v, err := imasig.NewDigestNG(h, d)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := v.MarshalBinary()
		if err := imasig.CheckDigestNG(b, bytes.NewReader(content)); err != nil {
			t.Errorf("%s: %v", h, err)
		}
		if err := imasig.CheckDigestNG(b, bytes.NewReader(content[1:])); !errors.Is(err, imasig.ErrDigestMismatch) {
			t.Errorf("%s other content: %v", h, err)
		}
	}
	s := loadSigner(t, "p256")
	d := sha256.Sum256(content)
	sig, _ := s.SignDigest(imasig.SHA256, d[:])
	if err := imasig.CheckDigestNG(sig, bytes.NewReader(content)); !errors.Is(err, imasig.ErrWrongType) {
		t.Errorf("signature as digest-ng: %v", err)
	}
}
