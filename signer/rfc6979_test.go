package signer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/asn1"
	"encoding/hex"
	"math/big"
	"testing"
)

// TestRFC6979 checks that the ECDSA path (crypto/ecdsa Sign with a nil
// reader, Go >= 1.26) gives exactly the deterministic signatures of RFC 6979
// appendix A.2.5 (P-256) and A.2.6 (P-384), message "sample": reproducible
// images depend on it, and any RFC 6979 implementation (an HSM, OpenSSL >=
// 3.2 with nonce-type=1) then makes the same bytes.
func TestRFC6979(t *testing.T) {
	for _, tc := range []struct {
		name  string
		curve elliptic.Curve
		x     string
		h     crypto.Hash
		r, s  string
	}{
		{"P-256/SHA-256", elliptic.P256(), "C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721", crypto.SHA256,
			"EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716",
			"F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8"},
		{"P-256/SHA-512", elliptic.P256(), "C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721", crypto.SHA512,
			"8496A60B5E9B47C825488827E0495B0E3FA109EC4568FD3F8D1097678EB97F00",
			"2362AB1ADBE2B8ADF9CB9EDAB740EA6049C028114F2460F96554F61FAE3302FE"},
		{"P-384/SHA-384", elliptic.P384(), "6B9D3DAD2E1B8C1C05B19875B6659F4DE23C3B667BF297BA9AA47740787137D896D5724E4C70A825F872C9EA60D2EDF5", crypto.SHA384,
			"94EDBB92A5ECB8AAD4736E56C691916B3F88140666CE9FA73D64C4EA95AD133C81A648152E44ACF96E36DD1E80FABE46",
			"99EF4AEB15F178CEA1FE40DB2603138F130E740A19624526203B6351D0A3A94FA329C145786E679E7B82C71A38628AC8"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			x, _ := hex.DecodeString(tc.x)
			k, err := ecdsa.ParseRawPrivateKey(tc.curve, x)
			if err != nil {
				t.Fatal(err)
			}
			var d []byte
			switch tc.h {
			case crypto.SHA256:
				s := sha256.Sum256([]byte("sample"))
				d = s[:]
			case crypto.SHA384:
				s := sha512.Sum384([]byte("sample"))
				d = s[:]
			case crypto.SHA512:
				s := sha512.Sum512([]byte("sample"))
				d = s[:]
			}
			der, err := k.Sign(nil, d, tc.h)
			if err != nil {
				t.Fatal(err)
			}
			var rs struct{ R, S *big.Int }
			if _, err := asn1.Unmarshal(der, &rs); err != nil {
				t.Fatal(err)
			}
			r, _ := new(big.Int).SetString(tc.r, 16)
			s, _ := new(big.Int).SetString(tc.s, 16)
			if rs.R.Cmp(r) != 0 || rs.S.Cmp(s) != 0 {
				t.Errorf("got r=%X s=%X, want RFC 6979's r=%s s=%s", rs.R, rs.S, tc.r, tc.s)
			}
		})
	}
}
