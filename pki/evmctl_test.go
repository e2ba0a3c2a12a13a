package pki

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"testing"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/internal/testenv"
	"github.com/imaforge/imaforge/signer"
)

// TestEvmctlVerifiesIssuedKey: a file signed with an IMA key issued here
// (through package signer) verifies with evmctl and the issued certificate
// in DER, as exported for a device; the signature names imasig.KeyID.
func TestEvmctlVerifiesIssuedKey(t *testing.T) {
	evmctl := testenv.NeedTool(t, "evmctl")
	h := newHierarchy(t, RSA2048)
	dir := t.TempDir()
	file := filepath.Join(dir, "app")
	content := []byte("#!/bin/sh\necho signed by a tenant\n")
	if err := os.WriteFile(file, content, 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := signer.New(h.ima.Key, h.ima.Cert)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256(content)
	value, err := s.SignDigest(imasig.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	sig, err := imasig.ParseSignature(value)
	if err != nil || sig.KeyID != imasig.KeyID(h.ima.Cert) {
		t.Fatalf("signature key id %x, want %x (%v)", sig.KeyID, imasig.KeyID(h.ima.Cert), err)
	}
	if err := signer.SigFile.Write(file, value); err != nil {
		t.Fatal(err)
	}
	der := filepath.Join(dir, "tenant.der")
	if err := os.WriteFile(der, h.ima.Cert.Raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := run(evmctl, "ima_verify", "--sigfile", "--key", der, file); err != nil {
		t.Fatalf("evmctl ima_verify: %v\n%s", err, out)
	}
	// And with another issued certificate it must not verify.
	other := filepath.Join(dir, "owner.der")
	if err := os.WriteFile(other, h.owner.Cert.Raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := run(evmctl, "ima_verify", "--sigfile", "--key", other, file); err == nil {
		t.Fatalf("evmctl verified with the wrong certificate:\n%s", out)
	}
}
