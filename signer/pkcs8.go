package signer

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/des"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"hash"
)

// Encrypted PKCS#8 (RFC 5958 EncryptedPrivateKeyInfo) with PBES2 and PBKDF2
// (RFC 8018), what `openssl genpkey -aes256` and `openssl pkcs8 -topk8 -v2`
// write. Only the standard library is used.

var (
	oidPBES2      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidHMACSHA1   = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 7}
	oidHMACSHA224 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 8}
	oidHMACSHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidHMACSHA384 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 10}
	oidHMACSHA512 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 11}
	oidAES128CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 2}
	oidAES192CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 22}
	oidAES256CBC  = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
	oidDESEDE3CBC = asn1.ObjectIdentifier{1, 2, 840, 113549, 3, 7}
)

type encryptedPrivateKeyInfo struct {
	Algorithm pkix.AlgorithmIdentifier
	Data      []byte
}

type pbes2Params struct {
	KDF    pkix.AlgorithmIdentifier
	Scheme pkix.AlgorithmIdentifier
}

type pbkdf2Params struct {
	Salt       []byte
	Iterations int
	KeyLength  int                      `asn1:"optional"`
	PRF        pkix.AlgorithmIdentifier `asn1:"optional"`
}

const maxPBKDF2Iterations = 10_000_000 // refuse absurd work factors from a hostile file

// decryptPKCS8 returns the PKCS#8 PrivateKeyInfo DER inside an
// EncryptedPrivateKeyInfo. A wrong passphrase gives ErrPassphrase.
func decryptPKCS8(der, pass []byte) ([]byte, error) {
	var epki encryptedPrivateKeyInfo
	if rest, err := asn1.Unmarshal(der, &epki); err != nil || len(rest) != 0 {
		return nil, errors.New("malformed EncryptedPrivateKeyInfo")
	}
	if !epki.Algorithm.Algorithm.Equal(oidPBES2) {
		return nil, fmt.Errorf("unsupported key encryption %v (want PBES2; re-encrypt with `openssl pkcs8 -topk8 -v2 aes-256-cbc`)", epki.Algorithm.Algorithm)
	}
	var p pbes2Params
	if rest, err := asn1.Unmarshal(epki.Algorithm.Parameters.FullBytes, &p); err != nil || len(rest) != 0 {
		return nil, errors.New("malformed PBES2 parameters")
	}
	if !p.KDF.Algorithm.Equal(oidPBKDF2) {
		return nil, fmt.Errorf("unsupported key derivation %v (want PBKDF2; re-encrypt with `openssl pkcs8 -topk8 -v2 aes-256-cbc`)", p.KDF.Algorithm)
	}
	var kp pbkdf2Params
	if rest, err := asn1.Unmarshal(p.KDF.Parameters.FullBytes, &kp); err != nil || len(rest) != 0 {
		return nil, errors.New("malformed PBKDF2 parameters")
	}
	if kp.Iterations < 1 || kp.Iterations > maxPBKDF2Iterations {
		return nil, fmt.Errorf("PBKDF2 iteration count %d out of range", kp.Iterations)
	}
	var prf func() hash.Hash
	switch a := kp.PRF.Algorithm; {
	case len(a) == 0 || a.Equal(oidHMACSHA1):
		prf = sha1.New
	case a.Equal(oidHMACSHA224):
		prf = sha256.New224
	case a.Equal(oidHMACSHA256):
		prf = sha256.New
	case a.Equal(oidHMACSHA384):
		prf = sha512.New384
	case a.Equal(oidHMACSHA512):
		prf = sha512.New
	default:
		return nil, fmt.Errorf("unsupported PBKDF2 PRF %v", a)
	}
	var keyLen int
	var newCipher func([]byte) (cipher.Block, error)
	switch a := p.Scheme.Algorithm; {
	case a.Equal(oidAES128CBC):
		keyLen, newCipher = 16, aes.NewCipher
	case a.Equal(oidAES192CBC):
		keyLen, newCipher = 24, aes.NewCipher
	case a.Equal(oidAES256CBC):
		keyLen, newCipher = 32, aes.NewCipher
	case a.Equal(oidDESEDE3CBC):
		keyLen, newCipher = 24, des.NewTripleDESCipher
	default:
		return nil, fmt.Errorf("unsupported key cipher %v (want AES-CBC)", a)
	}
	if kp.KeyLength != 0 && kp.KeyLength != keyLen {
		return nil, fmt.Errorf("PBKDF2 key length %d does not fit the cipher", kp.KeyLength)
	}
	var iv []byte
	if rest, err := asn1.Unmarshal(p.Scheme.Parameters.FullBytes, &iv); err != nil || len(rest) != 0 {
		return nil, errors.New("malformed cipher IV")
	}
	key, err := pbkdf2.Key(prf, string(pass), kp.Salt, kp.Iterations, keyLen)
	if err != nil {
		return nil, fmt.Errorf("PBKDF2: %w", err)
	}
	defer clear(key)
	block, err := newCipher(key)
	if err != nil {
		return nil, err
	}
	bs := block.BlockSize()
	if len(iv) != bs || len(epki.Data) == 0 || len(epki.Data)%bs != 0 {
		return nil, errors.New("malformed encrypted key data")
	}
	out := make([]byte, len(epki.Data))
	cipher.NewCBCDecrypter(block, iv).CryptBlocks(out, epki.Data)
	// PKCS#7 padding, checked in constant time with respect to its content.
	n := int(out[len(out)-1])
	if n == 0 || n > bs {
		clear(out)
		return nil, ErrPassphrase
	}
	pad := make([]byte, n)
	for i := range pad {
		pad[i] = byte(n)
	}
	if !hmac.Equal(out[len(out)-n:], pad) {
		clear(out)
		return nil, ErrPassphrase
	}
	return out[:len(out)-n], nil
}
