package service

import (
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"strings"
	"testing"

	"github.com/imaforge/imaforge/ceremony"
	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/signer"
)

// TestRemoteKeyVerify: the client's check of a returned value (libcrypto
// for RSA keys) accepts and refuses exactly what ceremony.VerifyValue
// (crypto/rsa) does: a tampered signature, another digest, another hash
// in the header or asked, another key id, another key's value, a value of
// another type or cut short are all refused.
func TestRemoteKeyVerify(t *testing.T) {
	dir := "../testdata/signer/keys/"
	for _, name := range []string{"rsa2048", "p256"} {
		s, err := signer.LoadSigner(dir+name+".key", dir+name+".pem", nil)
		if err != nil {
			t.Fatal(err)
		}
		other, err := signer.LoadSigner(dir+"rsa3072.key", dir+"rsa3072.pem", nil)
		if err != nil {
			t.Fatal(err)
		}
		v, err := imasig.NewVerifier(s.Cert())
		if err != nil {
			t.Fatal(err)
		}
		kv, err := signer.NewVerifier(s.Cert())
		if err != nil {
			t.Fatal(err)
		}
		k := &RemoteKey{cert: s.Cert(), v: kv}
		// The RSA key's values are checked by its RSAVerifier, whose
		// libcrypto refusal names the key size.
		libcrypto := false
		if pub, ok := s.Cert().PublicKey.(*rsa.PublicKey); ok {
			libcrypto = signer.NewRSAVerifier(pub).Backend() == "libcrypto"
		}
		d := sha256.Sum256([]byte("a"))
		d2 := sha256.Sum256([]byte("b"))
		d512 := sha512.Sum512([]byte("a"))
		good, _ := s.SignDigest(imasig.SHA256, d[:])
		good512, _ := s.SignDigest(imasig.SHA512, d512[:])
		mut := func(f func(b []byte)) []byte { b := append([]byte(nil), good...); f(b); return b }
		otherVal, _ := other.SignDigest(imasig.SHA256, d[:])
		cases := []struct {
			name string
			h    imasig.Hash
			val  []byte
			d    []byte
			ok   bool
		}{
			{"good", imasig.SHA256, good, d[:], true},
			{"good sha512", imasig.SHA512, good512, d512[:], true},
			{"flipped signature bit", imasig.SHA256, mut(func(b []byte) { b[len(b)-3] ^= 1 }), d[:], false},
			{"another digest", imasig.SHA256, good, d2[:], false},
			{"sha512 value where sha256 was asked", imasig.SHA256, good512, d[:], false},
			{"header names sha512", imasig.SHA512, mut(func(b []byte) { b[2] = byte(imasig.SHA512) }), d512[:], false},
			{"another key id", imasig.SHA256, mut(func(b []byte) { b[3] ^= 0xff }), d[:], false},
			{"another key's value", imasig.SHA256, otherVal, d[:], false},
			{"digest-only type", imasig.SHA256, mut(func(b []byte) { b[0] = 0x04 }), d[:], false},
			{"cut short", imasig.SHA256, good[:len(good)-1], d[:], false},
			{"empty", imasig.SHA256, nil, d[:], false},
		}
		for _, c := range cases {
			err := k.verify(c.h, c.val, c.d)
			ref := ceremony.VerifyValue(v, c.h, c.val, c.d)
			if (err == nil) != c.ok || (ref == nil) != c.ok {
				t.Errorf("%s %s: verify %v, VerifyValue %v, want ok=%v", name, c.name, err, ref, c.ok)
			}
			if c.name == "flipped signature bit" && !errors.Is(err, imasig.ErrBadSignature) {
				t.Errorf("%s: %v does not wrap ErrBadSignature", name, err)
			}
			if c.name == "flipped signature bit" && libcrypto && !strings.Contains(err.Error(), "(RSA-2048, sha256)") {
				t.Errorf("%s: %v is not libcrypto's refusal", name, err)
			}
		}
	}
}
