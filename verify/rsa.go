package verify

import (
	"crypto/rsa"
	"crypto/x509/pkix"
	"encoding/asn1"
	"math/big"
)

// digestInfo is the DER structure an RSA PKCS#1 v1.5 signature wraps
// (RFC 8017 section 9.2):
//
//	DigestInfo ::= SEQUENCE { digestAlgorithm AlgorithmIdentifier, digest OCTET STRING }
type digestInfo struct {
	Algorithm pkix.AlgorithmIdentifier
	Digest    []byte
}

// rsaSignedDigest undoes an RSA PKCS#1 v1.5 signature with the public key and
// returns the digest it was made over, or nil when sig is not such a
// signature by pub. It tells a signature over other content (the file
// changed, or the value was copied from another file) from a corrupt one.
//
// The encoded message is EM = 00 01 FF..FF 00 DigestInfo, at least eight FF
// bytes, as long as the modulus (RFC 8017 section 9.2, EMSA-PKCS1-v1_5).
func rsaSignedDigest(pub *rsa.PublicKey, sig []byte) []byte {
	k := pub.Size()
	if len(sig) != k {
		return nil
	}
	s := new(big.Int).SetBytes(sig)
	if s.Cmp(pub.N) >= 0 {
		return nil
	}
	m := new(big.Int).Exp(s, big.NewInt(int64(pub.E)), pub.N)
	em := m.FillBytes(make([]byte, k))
	if em[0] != 0 || em[1] != 1 {
		return nil
	}
	i := 2
	for i < len(em) && em[i] == 0xff {
		i++
	}
	if i-2 < 8 || i >= len(em) || em[i] != 0 {
		return nil
	}
	var di digestInfo
	rest, err := asn1.Unmarshal(em[i+1:], &di)
	if err != nil || len(rest) != 0 || len(di.Digest) == 0 {
		return nil
	}
	return di.Digest
}
