package signer

import (
	"bytes"
	"crypto/rsa"
	"fmt"
	"testing"
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
		n[v.key]++
		t.Run(fmt.Sprintf("%s/%s/%s", v.key, v.hash, v.file), func(t *testing.T) {
			s := signers[v.key]
			if s == nil {
				s = loadSigner(t, v.key)
				signers[v.key] = s
			}
			h, err := ParseHash(v.hash)
			if err != nil {
				t.Fatal(err)
			}
			d := mustDigest(t, h, filePath(v.file))
			got, err := s.SignDigest(h, d)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, v.value) {
				t.Errorf("value differs from the vector\n got %x\nwant %x", got, v.value)
			}
			if err := Verify(v.value, d, s.Cert()); err != nil {
				t.Errorf("vector does not verify: %v", err)
			}
			// The portable crypto/rsa path must give the same bytes as
			// libcrypto (and evmctl).
			if k, ok := s.key.(*rsa.PrivateKey); ok {
				raw, err := rsa.SignPKCS1v15(nil, k, h.CryptoHash(), d)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(raw, v.value[sigHeaderSize:]) {
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
