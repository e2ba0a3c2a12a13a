package signer

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/imaforge/imaforge/imasig"
)

func TestKeyID(t *testing.T) {
	rsaCert := loadCert(t, "rsa2048.pem")
	want := [4]byte(rsaCert.SubjectKeyId[len(rsaCert.SubjectKeyId)-4:])
	if got := imasig.KeyID(rsaCert); got != want {
		t.Errorf("KeyID = %x, want SKID tail %x", got, want)
	}
	// openssl's subjectKeyIdentifier=hash is SHA-1 of the key bit string, so
	// evmctl's calc_keyid_v2 fallback gives the same 4 bytes.
	if got, err := imasig.KeyIDFromPublicKey(rsaCert.PublicKey); err != nil || got != want {
		t.Errorf("KeyIDFromPublicKey = %x, %v; want %x", got, err, want)
	}
	noskid := loadCert(t, "rsa2048-noskid.pem")
	if len(noskid.SubjectKeyId) != 0 {
		t.Fatal("rsa2048-noskid.pem has a SKID")
	}
	if got := imasig.KeyID(noskid); got != want {
		t.Errorf("KeyID without SKID = %x, want %x", got, want)
	}
	if got := imasig.KeyID(loadCert(t, "rsa2048-skid.pem")); got != [4]byte{1, 2, 3, 4} {
		t.Errorf("KeyID with an arbitrary SKID = %x, want 01020304", got)
	}
	for _, k := range []string{"p256", "p384", "rsa4096"} {
		c := loadCert(t, k+".pem")
		got, err := imasig.KeyIDFromPublicKey(c.PublicKey)
		if err != nil || got != imasig.KeyID(c) {
			t.Errorf("%s: KeyIDFromPublicKey %x, %v; KeyID %x", k, got, err, imasig.KeyID(c))
		}
	}
}

func TestNewRejects(t *testing.T) {
	for _, tc := range []struct {
		key, cert string
		want      error
		msg       string
	}{
		{"rsa2048.key", "rsa3072.pem", ErrKeyMismatch, "RSA-2048"},
		{"p256.key", "p384.pem", ErrKeyMismatch, "P-256"},
		{"p256.key", "rsa2048.pem", ErrKeyMismatch, "ECDSA"},
		{"rsa1024.key", "rsa1024.pem", imasig.ErrUnsupportedKey, "RSA-1024"},
		{"ed25519.key", "ed25519.pem", imasig.ErrUnsupportedKey, "ed25519"},
		{"p521.key", "p521.pem", imasig.ErrUnsupportedKey, "P-521"},
	} {
		t.Run(tc.key+"+"+tc.cert, func(t *testing.T) {
			_, err := LoadSigner(keyPath(tc.key), keyPath(tc.cert), nil)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			var fe *FileError
			if !errors.As(err, &fe) || fe.Path != keyPath(tc.key) {
				t.Errorf("error does not name the key file: %v", err)
			}
			if !strings.Contains(err.Error(), keyPath(tc.key)) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("message %q lacks %q or the key file", err, tc.msg)
			}
		})
	}
	if _, err := New(nil, nil); err == nil {
		t.Error("New(nil, nil) succeeded")
	}
}

func TestSignDigestChecks(t *testing.T) {
	s := loadSigner(t, "p256")
	if _, err := s.SignDigest(imasig.SHA1, make([]byte, 20)); !errors.Is(err, imasig.ErrUnsupportedHash) {
		t.Errorf("sha1 signing: %v, want ErrUnsupportedHash", err)
	}
	if _, err := s.SignDigest(imasig.SM3, make([]byte, 32)); !errors.Is(err, imasig.ErrUnsupportedHash) {
		t.Errorf("sm3 signing: %v", err)
	}
	if _, err := s.SignDigest(imasig.SHA256, make([]byte, 31)); !errors.Is(err, imasig.ErrFormat) {
		t.Errorf("short digest: %v", err)
	}
}

// TestDeterministic: every supported file key signs the same digest to the
// same bytes, and Deterministic says so; randomizing wrappers are detected.
func TestDeterministic(t *testing.T) {
	d := sha256.Sum256([]byte("reproducible"))
	for _, k := range allKeys {
		s := loadSigner(t, k)
		a, err1 := s.SignDigest(imasig.SHA256, d[:])
		b, err2 := s.SignDigest(imasig.SHA256, d[:])
		if err1 != nil || err2 != nil || !bytes.Equal(a, b) {
			t.Errorf("%s: two signatures differ (%v, %v)", k, err1, err2)
		}
		if !s.Deterministic() {
			t.Errorf("%s: Deterministic() = false", k)
		}
	}
	ec := loadKey(t, "p256.key").(*ecdsa.PrivateKey)
	rnd, err := New(randomECDSA{ec}, loadCert(t, "p256.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if rnd.Deterministic() {
		t.Error("a randomizing ECDSA signer is reported deterministic")
	}
	if rnd.Backend() != "external" {
		t.Errorf("backend %q", rnd.Backend())
	}
	v, err := rnd.SignDigest(imasig.SHA256, d[:])
	if err != nil {
		t.Fatal(err)
	}
	if err := imasig.Verify(v, d[:], rnd.Cert()); err != nil {
		t.Error(err)
	}
	rs, err := New(opaque{loadKey(t, "rsa2048.key")}, loadCert(t, "rsa2048.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if !rs.Deterministic() {
		t.Error("an external RSA signer is PKCS#1 v1.5, hence deterministic")
	}
}

// TestExternalSignerChecked: a backend returning a signature in the wrong
// encoding (raw r||s, as PKCS#11 does) is caught before it is used.
func TestExternalSignerChecked(t *testing.T) {
	ec := loadKey(t, "p256.key").(*ecdsa.PrivateKey)
	s, err := New(rawRS{ec}, loadCert(t, "p256.pem"))
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256(nil)
	if _, err := s.SignDigest(imasig.SHA256, d[:]); err == nil || !errors.Is(err, imasig.ErrBadSignature) {
		t.Errorf("raw r||s signature accepted: %v", err)
	}
}

// TestLibcryptoMatchesGo: the cgo libcrypto RSA path and crypto/rsa make the
// same bytes for every RSA size and hash, on many digests.
func TestLibcryptoMatchesGo(t *testing.T) {
	if !LibcryptoAvailable {
		t.Skip("built without cgo: only crypto/rsa is in this binary")
	}
	for _, k := range []string{"rsa2048", "rsa3072", "rsa4096"} {
		s := loadSigner(t, k)
		if s.rsaFast == nil || s.Backend() != "libcrypto" {
			t.Fatalf("%s: libcrypto backend not used", k)
		}
		key := s.key.(*rsa.PrivateKey)
		for _, h := range append(signHashes, imasig.SHA224, imasig.SHA3_256) {
			for i := range 8 {
				hh, _ := h.New()
				hh.Write([]byte{byte(i), byte(h)})
				d := hh.Sum(nil)
				fast, err := s.rsaFast.signPKCS1v15(h.CryptoHash(), d)
				if err != nil {
					t.Fatalf("%s %s: %v", k, h, err)
				}
				slow, err := rsa.SignPKCS1v15(nil, key, h.CryptoHash(), d)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(fast, slow) {
					t.Fatalf("%s %s: libcrypto and crypto/rsa differ", k, h)
				}
			}
		}
	}
}

// randomECDSA signs with fresh random nonces (like evmctl or many HSMs).
type randomECDSA struct{ k *ecdsa.PrivateKey }

func (r randomECDSA) Public() crypto.PublicKey { return r.k.Public() }
func (r randomECDSA) Sign(_ io.Reader, d []byte, _ crypto.SignerOpts) ([]byte, error) {
	return ecdsa.SignASN1(rand.Reader, r.k, d)
}

// opaque hides the concrete key type, as an HSM signer would.
type opaque struct{ crypto.Signer }

// rawRS returns r||s instead of ASN.1 DER.
type rawRS struct{ k *ecdsa.PrivateKey }

func (r rawRS) Public() crypto.PublicKey { return r.k.Public() }
func (r rawRS) Sign(_ io.Reader, d []byte, _ crypto.SignerOpts) ([]byte, error) {
	der, err := r.k.Sign(nil, d, crypto.SHA256)
	if err != nil {
		return nil, err
	}
	return der[len(der)-64:], nil // not DER
}

// TestSignDigests: a batch gives the values SignDigest gives, for every key
// type (libcrypto RSA in one call, the others one by one), and refuses a
// digest of the wrong length or an unsupported hash.
func TestSignDigests(t *testing.T) {
	for _, k := range allKeys {
		s := loadSigner(t, k)
		for _, h := range signHashes {
			var ds [][]byte
			for i := range BatchSize + 3 {
				hh, _ := h.New()
				hh.Write([]byte{byte(i), byte(h)})
				ds = append(ds, hh.Sum(nil))
			}
			vals, err := s.SignDigests(h, ds)
			if err != nil || len(vals) != len(ds) {
				t.Fatalf("%s %s: %d values, %v", k, h, len(vals), err)
			}
			for i, d := range ds {
				v, err := imasig.Parse(vals[i])
				sig, ok := v.(*imasig.Signature)
				if err != nil || !ok {
					t.Fatalf("%s %s: value %d: %v", k, h, i, err)
				}
				if err := imasig.VerifyDigest(s.Public(), h, d, sig.Sig); err != nil {
					t.Fatalf("%s %s: value %d does not verify: %v", k, h, i, err)
				}
				if !s.Deterministic() {
					continue
				}
				one, err := s.SignDigest(h, d)
				if err != nil || !bytes.Equal(one, vals[i]) {
					t.Fatalf("%s %s: value %d differs from SignDigest's (%v)", k, h, i, err)
				}
			}
			if _, err := s.SignDigests(h, append(ds[:2:2], ds[0][:h.Size()-1])); err == nil {
				t.Errorf("%s %s: a short digest was signed", k, h)
			}
		}
		if _, err := s.SignDigests(imasig.SHA1, [][]byte{make([]byte, 20), make([]byte, 20)}); err == nil {
			t.Errorf("%s: sha1 batch signed", k)
		}
	}
}
