package signer_test

import (
	"crypto/sha256"
	"fmt"
	"log"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/signer"
)

// Sign a file's digest with a fixed RSA-2048 test key and verify the value.
// RSA PKCS#1 v1.5 is deterministic, so the bytes are always the same (and
// the same as `evmctl ima_sign --sigfile` makes).
func Example() {
	s, err := signer.LoadSigner("../testdata/signer/keys/rsa2048.key", "../testdata/signer/keys/rsa2048.pem", nil)
	if err != nil {
		log.Fatal(err)
	}
	digest := sha256.Sum256([]byte("hello, IMA\n"))
	value, err := s.SignDigest(imasig.SHA256, digest[:])
	if err != nil {
		log.Fatal(err)
	}
	sig, err := imasig.ParseSignature(value)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("header:    % x\n", value[:9])
	fmt.Printf("hash:      %s, key id %x, %d signature bytes\n", sig.Hash, sig.KeyID, len(sig.Sig))
	fmt.Printf("signature: %x...\n", sig.Sig[:16])
	fmt.Println("verify:", imasig.Verify(value, digest[:], s.Cert()))
	digest[0] ^= 1
	fmt.Println("tampered:", imasig.Verify(value, digest[:], s.Cert()))
	// Output:
	// header:    03 02 04 6a d9 d9 9c 01 00
	// hash:      sha256, key id 6ad9d99c, 256 signature bytes
	// signature: 57c627695ae56680ad693a0baaa051e0...
	// verify: <nil>
	// tampered: security.ima: invalid signature (key id 6ad9d99c): signature does not verify (RSA-2048, sha256)
}
