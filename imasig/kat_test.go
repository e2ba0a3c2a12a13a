package imasig

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestKnownAnswerVectors parses every vector of testdata/signer/vectors.txt
// (the RSA ones made by evmctl ima_sign, see gen.sh), re-encodes it to the
// same bytes, and verifies it over the digest of its file with its
// certificate; a vector checked against another file's digest fails.
func TestKnownAnswerVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		t.Run(fmt.Sprintf("%s/%s/%s", v.Key, v.Hash, v.File), func(t *testing.T) {
			h, err := ParseHash(v.Hash)
			if err != nil {
				t.Fatal(err)
			}
			s, err := ParseSignature(v.Value)
			if err != nil {
				t.Fatal(err)
			}
			if s.Hash != h {
				t.Errorf("value names %s, vector %s", s.Hash, h)
			}
			if out, err := s.MarshalBinary(); err != nil || !bytes.Equal(out, v.Value) {
				t.Errorf("re-encoding differs (%v)", err)
			}
			f, err := os.Open(filepath.Join(td, "files", v.File))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			cert := loadCert(t, v.Key+".pem")
			if s.KeyID != KeyID(cert) {
				t.Errorf("key id %x, certificate has %x", s.KeyID, KeyID(cert))
			}
			v2, err := NewVerifier(cert)
			if err != nil {
				t.Fatal(err)
			}
			if err := v2.VerifyReader(v.Value, f); err != nil {
				t.Errorf("vector does not verify: %v", err)
			}
			other, err := DigestReader(h, bytes.NewReader([]byte("not the file")))
			if err != nil {
				t.Fatal(err)
			}
			if err := v2.Verify(v.Value, other); err == nil {
				t.Error("vector verifies over another digest")
			}
		})
	}
}
