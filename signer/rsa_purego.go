//go:build !cgo || imaforge_purego

package signer

import (
	"crypto"
	"crypto/rsa"
	"errors"
)

// LibcryptoAvailable reports whether this build signs RSA with the system
// libcrypto (built with cgo and without the imaforge_purego tag).
const LibcryptoAvailable = false

func newLibcryptoRSA(*rsa.PrivateKey) (rsaBackend, error) {
	return nil, errors.New("built without cgo: RSA signs with crypto/rsa")
}

func newLibcryptoRSAVerifier(*rsa.PublicKey) (func(h crypto.Hash, digest, sig []byte) bool, error) {
	return nil, errors.New("built without cgo: RSA verifies with crypto/rsa")
}
