package server

import (
	"context"
	"os"
	"testing"

	"github.com/sassoftware/relic/v8/cmdline/shared"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/service"
	"github.com/imaforge/imaforge/signer"
)

// TestFileKeyLibcrypto: the server signs with a file token's RSA key through
// the system libcrypto (as a local build does; relic's token signs with
// crypto/rsa, 3.3x the CPU), and only with the key relic's token holds: a
// key file that does not match the token's key, or a rate-limited token,
// leaves the signing to relic's key.
func TestFileKeyLibcrypto(t *testing.T) {
	if !signer.LibcryptoAvailable {
		t.Skip("built without libcrypto")
	}
	f := newFixture(t, 1)
	serveInProcess(t, f, 0) // fileSigners and shared.CurrentConfig are this process's
	fileSigners.Clear()
	c := newClient(t, f, "mfr")
	d := digest("fast")
	vals, err := c.Sign(context.Background(), "mfr", []service.Entry{service.NewEntry("/usr/bin/fast", imasig.SHA256, d)})
	if err != nil {
		t.Fatal(err)
	}
	if err := imasig.Verify(vals[0], d, f.mfr.Cert); err != nil {
		t.Fatal(err)
	}
	v, ok := fileSigners.Load("mfr")
	if !ok || v.(*signer.Signer).Backend() != "libcrypto" {
		t.Fatalf("the mfr key was not signed with libcrypto: %v", v)
	}

	mfrPub, tenantPub := f.mfr.Cert.PublicKey, f.tenant.Cert.PublicKey
	if s := fileSigner("mfr", mfrPub, f.mfr.Cert); s == nil || s != v {
		t.Fatalf("the cached signer is not reused: %v", s)
	}
	if s := fileSigner("mfr", tenantPub, f.mfr.Cert); s != nil {
		t.Fatal("a signer whose key is not the token's")
	}
	if s := fileSigner("mfr", mfrPub, f.tenant.Cert); s != nil {
		t.Fatal("a signer for another certificate")
	}

	cfg := shared.CurrentConfig
	kc, err := cfg.GetKey("mfr")
	if err != nil {
		t.Fatal(err)
	}
	orig, err := os.ReadFile(kc.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	tk, _ := cfg.GetKey("tenant")
	other, err := os.ReadFile(tk.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kc.KeyFile, other, 0o600); err != nil {
		t.Fatal(err)
	}
	fileSigners.Clear()
	if s := fileSigner("mfr", mfrPub, f.mfr.Cert); s != nil {
		t.Fatal("signs with a key file that is not the token's key")
	}
	// relic's token still holds the mfr key: the request is signed with it.
	vals, err = c.Sign(context.Background(), "mfr", []service.Entry{service.NewEntry("/usr/bin/fast", imasig.SHA256, d)})
	if err != nil {
		t.Fatal(err)
	}
	if err := imasig.Verify(vals[0], d, f.mfr.Cert); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kc.KeyFile, orig, 0o600); err != nil {
		t.Fatal(err)
	}

	tc, err := cfg.GetToken(kc.Token)
	if err != nil {
		t.Fatal(err)
	}
	tc.RateLimit = 100
	if s := fileSigner("mfr", mfrPub, f.mfr.Cert); s != nil {
		t.Fatal("bypasses the token's rate limit")
	}
	tc.RateLimit = 0
	if s := fileSigner("mfr", mfrPub, f.mfr.Cert); s == nil {
		t.Fatal("no libcrypto signer once the key file is restored")
	}
}
