package signer

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/imaforge/imaforge/imasig"
)

// TestRSAVerifier: the libcrypto verifier accepts exactly what
// imasig.VerifyDigest (crypto/rsa) accepts: good signatures of each RSA key
// and hash, and none of a flipped bit, another digest, another hash, a
// short or long signature or another key's signature.
func TestRSAVerifier(t *testing.T) {
	d256 := sha256.Sum256([]byte("v"))
	d512 := sha512.Sum512([]byte("v"))
	other := loadSigner(t, "rsa3072")
	for _, k := range []string{"rsa2048", "rsa3072", "rsa4096"} {
		s := loadSigner(t, k)
		pub := s.Public().(*rsa.PublicKey)
		v := NewRSAVerifier(pub)
		if LibcryptoAvailable && v.Backend() != "libcrypto" {
			t.Fatalf("%s: backend %s", k, v.Backend())
		}
		sig256, err := s.Sign(imasig.SHA256, d256[:])
		if err != nil {
			t.Fatal(err)
		}
		sig512, err := s.Sign(imasig.SHA512, d512[:])
		if err != nil {
			t.Fatal(err)
		}
		flipped := append([]byte(nil), sig256.Sig...)
		flipped[len(flipped)/2] ^= 1
		otherSig, _ := other.Sign(imasig.SHA256, d256[:])
		if k == "rsa3072" {
			otherSig, _ = loadSigner(t, "rsa2048").Sign(imasig.SHA256, d256[:])
		}
		cases := []struct {
			name   string
			h      imasig.Hash
			digest []byte
			sig    []byte
			ok     bool
		}{
			{"sha256", imasig.SHA256, d256[:], sig256.Sig, true},
			{"sha512", imasig.SHA512, d512[:], sig512.Sig, true},
			{"flipped bit", imasig.SHA256, d256[:], flipped, false},
			{"another digest", imasig.SHA256, d512[:32], sig256.Sig, false},
			{"another hash", imasig.SHA384, d512[:48], sig512.Sig, false},
			{"sha512 signature as sha256", imasig.SHA256, d256[:], sig512.Sig, false},
			{"short", imasig.SHA256, d256[:], sig256.Sig[1:], false},
			{"long", imasig.SHA256, d256[:], append([]byte{0}, sig256.Sig...), false},
			{"empty", imasig.SHA256, d256[:], nil, false},
			{"another key", imasig.SHA256, d256[:], otherSig.Sig, false},
		}
		for _, c := range cases {
			err := v.Verify(c.h, c.digest, c.sig)
			ref := imasig.VerifyDigest(pub, c.h, c.digest, c.sig)
			if (err == nil) != c.ok || (ref == nil) != c.ok {
				t.Errorf("%s %s: libcrypto %v, crypto/rsa %v, want ok=%v", k, c.name, err, ref, c.ok)
			}
			if err != nil && !errors.Is(err, imasig.ErrBadSignature) {
				t.Errorf("%s %s: %v does not wrap ErrBadSignature", k, c.name, err)
			}
		}
	}
}

// TestRSAVerifierConcurrent: goroutines sharing one verifier, each mixing
// digests (a context kept per digest) with good and bad signatures (a
// context that failed is not reused), get every answer right.
func TestRSAVerifierConcurrent(t *testing.T) {
	s := loadSigner(t, "rsa2048")
	v := NewRSAVerifier(s.Public().(*rsa.PublicKey))
	d256 := sha256.Sum256([]byte("v"))
	d512 := sha512.Sum512([]byte("v"))
	sig256, err := s.Sign(imasig.SHA256, d256[:])
	if err != nil {
		t.Fatal(err)
	}
	sig512, err := s.Sign(imasig.SHA512, d512[:])
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]byte(nil), sig256.Sig...)
	bad[10] ^= 1
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			for i := range 200 {
				var err error
				switch (g + i) % 3 {
				case 0:
					err = v.Verify(imasig.SHA256, d256[:], sig256.Sig)
				case 1:
					err = v.Verify(imasig.SHA512, d512[:], sig512.Sig)
				case 2:
					if v.Verify(imasig.SHA256, d256[:], bad) == nil {
						err = errors.New("a flipped bit verified")
					}
				}
				if err != nil {
					errs <- fmt.Errorf("goroutine %d, verification %d: %w", g, i, err)
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// BenchmarkVerifyRSA: an RSA-2048 verification through RSAVerifier
// (libcrypto) against imasig.VerifyDigest (crypto/rsa).
func BenchmarkVerifyRSA(b *testing.B) {
	d := sha256.Sum256([]byte("bench"))
	s := loadSigner(b, "rsa2048")
	pub := s.Public().(*rsa.PublicKey)
	sig, _ := s.Sign(imasig.SHA256, d[:])
	v := NewRSAVerifier(pub)
	b.Run(v.Backend(), func(b *testing.B) {
		for b.Loop() {
			if err := v.Verify(imasig.SHA256, d[:], sig.Sig); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("crypto-rsa", func(b *testing.B) {
		for b.Loop() {
			if err := imasig.VerifyDigest(pub, imasig.SHA256, d[:], sig.Sig); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("sign-libcrypto", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.Sign(imasig.SHA256, d[:]); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// badHSM is an external RSA key (not an *rsa.PrivateKey) whose signatures
// have one bit flipped when bad is set.
type badHSM struct {
	k   *rsa.PrivateKey
	bad bool
}

func (b badHSM) Public() crypto.PublicKey { return b.k.Public() }
func (b badHSM) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	sig, err := b.k.Sign(r, d, o)
	if b.bad && err == nil {
		sig[10] ^= 1
	}
	return sig, err
}

// TestExternalRSAChecked: a signature an external RSA key makes is checked
// (through RSAVerifier) before it becomes a value.
func TestExternalRSAChecked(t *testing.T) {
	k := loadKey(t, "rsa2048.key").(*rsa.PrivateKey)
	cert := loadCert(t, "rsa2048.pem")
	d := sha256.Sum256([]byte("x"))
	for _, bad := range []bool{false, true} {
		s, err := New(badHSM{k, bad}, cert)
		if err != nil {
			t.Fatal(err)
		}
		if s.Backend() != "external" || (LibcryptoAvailable && (s.rsaCheck == nil || s.rsaCheck.Backend() != "libcrypto")) {
			t.Fatalf("backend %s, check %v", s.Backend(), s.rsaCheck)
		}
		v, err := s.SignDigest(imasig.SHA256, d[:])
		if bad {
			if err == nil || !errors.Is(err, imasig.ErrBadSignature) {
				t.Fatalf("a bad external signature: %v", err)
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := imasig.Verify(v, d[:], cert); err != nil {
			t.Fatal(err)
		}
	}
}
