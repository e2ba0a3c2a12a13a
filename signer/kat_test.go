package signer

import (
	"bytes"
	"crypto/rsa"
	"fmt"
	"testing"

	"github.com/imaforge/imaforge/imasig"
)

// TestKnownAnswers signs each file of testdata/signer/files with each fixed
// key and hash and compares the whole security.ima value byte for byte with
// vectors.txt. The RSA vectors were made by evmctl ima_sign, so equality
// proves interoperable bytes; the ECDSA vectors pin imaforge's RFC 6979
// output (evmctl verified them when they were made, see gen.sh).
func TestKnownAnswers(t *testing.T) {
	signers := map[string]*Signer{}
	n := map[string]int{}
	for _, v := range loadVectors(t) {
		n[v.Key]++
		t.Run(fmt.Sprintf("%s/%s/%s", v.Key, v.Hash, v.File), func(t *testing.T) {
			s := signers[v.Key]
			if s == nil {
				s = loadSigner(t, v.Key)
				signers[v.Key] = s
			}
			h, err := imasig.ParseHash(v.Hash)
			if err != nil {
				t.Fatal(err)
			}
			d := mustDigest(t, h, filePath(v.File))
			got, err := s.SignDigest(h, d)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, v.Value) {
				t.Errorf("value differs from the vector\n got %x\nwant %x", got, v.Value)
			}
			if err := imasig.Verify(v.Value, d, s.Cert()); err != nil {
				t.Errorf("vector does not verify: %v", err)
			}
			// The portable crypto/rsa path must give the same bytes as
			// libcrypto (and evmctl).
			if k, ok := s.key.(*rsa.PrivateKey); ok {
				raw, err := rsa.SignPKCS1v15(nil, k, h.CryptoHash(), d)
				if err != nil {
					t.Fatal(err)
				}
				vs, err := imasig.ParseSignature(v.Value)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(raw, vs.Sig) {
					t.Error("crypto/rsa signature differs from the vector")
				}
			}
		})
	}
	for _, k := range allKeys {
		if n[k] == 0 {
			t.Errorf("vectors.txt has no vector for %s", k)
		}
	}
}
