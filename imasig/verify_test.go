package imasig

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// refuseAll is a DigestVerifier that refuses every signature.
type refuseAll struct{}

func (refuseAll) Verify(Hash, []byte, []byte) error { return ErrBadSignature }

// TestAddWithDigestVerifier: a certificate added with a DigestVerifier has
// its signatures checked by it, not by VerifyDigest.
func TestAddWithDigestVerifier(t *testing.T) {
	vec := loadVectors(t)[0]
	cert := loadCert(t, vec.Key+".pem")
	data, err := os.ReadFile(filepath.Join(td, "files", vec.File))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := ParseSignature(vec.Value)
	if err != nil {
		t.Fatal(err)
	}
	d, err := DigestReader(sig.Hash, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := NewVerifier(cert)
	if err := plain.Verify(vec.Value, d); err != nil {
		t.Fatalf("VerifyDigest refused the vector: %v", err)
	}
	v, _ := NewVerifier()
	if err := v.AddWith(cert, refuseAll{}); err != nil {
		t.Fatal(err)
	}
	if err := v.Verify(vec.Value, d); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("the DigestVerifier was not asked: %v", err)
	}
}
