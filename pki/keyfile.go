package pki

import (
	"bytes"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"io"
)

// Private keys are written (reading them is signer.LoadPrivateKey's job) as PEM "PRIVATE KEY" (PKCS#8, RFC 5208) or, with a
// passphrase, "ENCRYPTED PRIVATE KEY" (RFC 5958 EncryptedPrivateKeyInfo) with
// PBES2 (RFC 8018 section 6.2): PBKDF2-HMAC-SHA256 and AES-256-CBC, the same
// scheme `openssl pkcs8 -topk8 -v2 aes256` writes, so openssl and evmctl
// (--pass) read the files.

// PEM block types of private key files.
const (
	pemPrivateKey          = "PRIVATE KEY"
	pemEncryptedPrivateKey = "ENCRYPTED PRIVATE KEY"
)

// DefaultKDFIterations is the PBKDF2 iteration count for new encrypted keys
// (OWASP 2023 recommendation for PBKDF2-HMAC-SHA256).
const DefaultKDFIterations = 600000

var (
	oidPBES2          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 13}
	oidPBKDF2         = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidHMACWithSHA256 = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
	oidAES256CBC      = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 1, 42}
)

// encryptedPrivateKeyInfo is RFC 5958's EncryptedPrivateKeyInfo.
type encryptedPrivateKeyInfo struct {
	Algorithm     pkix.AlgorithmIdentifier // id-PBES2 with pbes2Params
	EncryptedData []byte
}

// pbes2Params is RFC 8018's PBES2-params.
type pbes2Params struct {
	KeyDerivationFunc pkix.AlgorithmIdentifier // id-PBKDF2 with pbkdf2Params
	EncryptionScheme  pkix.AlgorithmIdentifier // aesNNN-CBC with the IV as OCTET STRING
}

// pbkdf2Params is RFC 8018's PBKDF2-params (salt as the specified OCTET STRING).
type pbkdf2Params struct {
	Salt           []byte
	IterationCount int
	KeyLength      int                      `asn1:"optional"`
	PRF            pkix.AlgorithmIdentifier `asn1:"optional"` // default hmacWithSHA1
}

// KeyFileOptions tunes MarshalPrivateKey.
type KeyFileOptions struct {
	// Passphrase encrypts the key when non-empty.
	Passphrase []byte
	// Iterations overrides DefaultKDFIterations (tests use fewer).
	Iterations int
	// Rand supplies the salt and IV (crypto/rand when nil).
	Rand io.Reader
}

// MarshalPrivateKey encodes key as a PEM PKCS#8 file, encrypted when
// opts.Passphrase is set.
func MarshalPrivateKey(key crypto.Signer, opts KeyFileOptions) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode private key: %w", err)
	}
	if len(opts.Passphrase) == 0 {
		return pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: der}), nil
	}
	r := opts.Rand
	if r == nil {
		r = rand.Reader
	}
	iter := opts.Iterations
	if iter <= 0 {
		iter = DefaultKDFIterations
	}
	salt := make([]byte, 16)
	iv := make([]byte, aes.BlockSize)
	if _, err := io.ReadFull(r, salt); err != nil {
		return nil, fmt.Errorf("encrypt private key: %w", err)
	}
	if _, err := io.ReadFull(r, iv); err != nil {
		return nil, fmt.Errorf("encrypt private key: %w", err)
	}
	k, err := pbkdf2.Key(sha256.New, string(opts.Passphrase), salt, iter, 32)
	if err != nil {
		return nil, fmt.Errorf("encrypt private key: %w", err)
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, fmt.Errorf("encrypt private key: %w", err)
	}
	pad := aes.BlockSize - len(der)%aes.BlockSize
	plain := append(bytes.Clone(der), bytes.Repeat([]byte{byte(pad)}, pad)...)
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(plain, plain)

	kdf, err := asn1.Marshal(pbkdf2Params{
		Salt: salt, IterationCount: iter,
		PRF: pkix.AlgorithmIdentifier{Algorithm: oidHMACWithSHA256, Parameters: asn1.NullRawValue},
	})
	if err != nil {
		return nil, fmt.Errorf("encrypt private key: %w", err)
	}
	ivDER, err := asn1.Marshal(iv)
	if err != nil {
		return nil, fmt.Errorf("encrypt private key: %w", err)
	}
	params, err := asn1.Marshal(pbes2Params{
		KeyDerivationFunc: pkix.AlgorithmIdentifier{Algorithm: oidPBKDF2, Parameters: asn1.RawValue{FullBytes: kdf}},
		EncryptionScheme:  pkix.AlgorithmIdentifier{Algorithm: oidAES256CBC, Parameters: asn1.RawValue{FullBytes: ivDER}},
	})
	if err != nil {
		return nil, fmt.Errorf("encrypt private key: %w", err)
	}
	out, err := asn1.Marshal(encryptedPrivateKeyInfo{
		Algorithm:     pkix.AlgorithmIdentifier{Algorithm: oidPBES2, Parameters: asn1.RawValue{FullBytes: params}},
		EncryptedData: plain,
	})
	if err != nil {
		return nil, fmt.Errorf("encrypt private key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemEncryptedPrivateKey, Bytes: out}), nil
}
