package signer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/internal/testenv"
)

// evmctl runs the real evmctl; keys and files are passed as absolute paths.
func evmctl(t *testing.T, args ...string) error {
	t.Helper()
	out, err := exec.Command("evmctl", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("evmctl %v: %w\n%s", args, err, out)
	}
	return nil
}

func abs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func flipByte(t *testing.T, path string, off int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if off < 0 {
		off += len(b)
	}
	b[off] ^= 0x01
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestEvmctlInterop: for every key type and hash, signatures made here verify
// with evmctl and fail there after one flipped byte of the file or of the
// signature; signatures made by evmctl verify here and fail after tampering.
func TestEvmctlInterop(t *testing.T) {
	testenv.NeedTool(t, "evmctl")
	content := []byte("interop: imaforge and evmctl\n")
	for _, k := range allKeys {
		s := loadSigner(t, k)
		v, err := imasig.NewVerifier(s.Cert())
		if err != nil {
			t.Fatal(err)
		}
		der := abs(t, keyPath(k+".der"))
		for _, h := range signHashes {
			t.Run(k+"/"+h.String(), func(t *testing.T) {
				dir := t.TempDir()
				// imaforge signs, evmctl verifies
				f := filepath.Join(dir, "ours")
				if err := os.WriteFile(f, content, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := SignFiles(context.Background(), s, h, SigFile, []string{f}, 1, nil); err != nil {
					t.Fatal(err)
				}
				if err := evmctl(t, "ima_verify", "--sigfile", "--key", der, f); err != nil {
					t.Fatalf("evmctl rejects our signature: %v", err)
				}
				flipByte(t, f, 0)
				if evmctl(t, "ima_verify", "--sigfile", "--key", der, f) == nil {
					t.Error("evmctl accepts a tampered file")
				}
				flipByte(t, f, 0)
				flipByte(t, f+SigFileSuffix, -1)
				if evmctl(t, "ima_verify", "--sigfile", "--key", der, f) == nil {
					t.Error("evmctl accepts a tampered signature")
				}

				// evmctl signs (it also sets security.ima: needs root), we verify
				testenv.NeedRoot(t)
				g := filepath.Join(dir, "theirs")
				if err := os.WriteFile(g, content, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := evmctl(t, "ima_sign", "--sigfile", "--key", abs(t, keyPath(k+".key")), "-a", h.String(), g); err != nil {
					t.Fatal(err)
				}
				if err := VerifyFile(v, SigFile, g); err != nil {
					t.Fatalf("evmctl's signature does not verify here: %v", err)
				}
				if err := VerifyFile(v, Xattr, g); err != nil {
					t.Fatalf("evmctl's security.ima xattr does not verify here: %v", err)
				}
				flipByte(t, g, -1)
				err := VerifyFile(v, SigFile, g)
				var ise *imasig.InvalidSignatureError
				if !errors.Is(err, imasig.ErrBadSignature) || !errors.As(err, &ise) || ise.Path != g {
					t.Errorf("tampered file: %v", err)
				}
			})
		}
	}
}

// TestEvmctlKeyIDs: evmctl finds our key id through calc_keyid_v2 when the
// certificate has no SKID; and evmctl's SHA-1 signatures of old images verify
// here.
//
// Not tested against evmctl: a certificate with an arbitrary SKID (not the
// SHA-1 of the key). KeyID then uses the SKID's last 4 bytes, as the kernel
// (which matches "id:" against the SKID) and ima-evm-utils >= 1.5 do, but
// Debian's evmctl 1.4 still derives the id with calc_keyid_v2 when verifying
// and reports "unknown keyid" (checked here with keys/rsa2048-skid.der).
func TestEvmctlKeyIDs(t *testing.T) {
	testenv.NeedTool(t, "evmctl")
	dir := t.TempDir()
	for _, c := range []string{"rsa2048-noskid"} {
		s, err := LoadSigner(keyPath("rsa2048.key"), keyPath(c+".pem"), nil)
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(dir, c)
		if err := os.WriteFile(f, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := SignFiles(context.Background(), s, imasig.SHA256, SigFile, []string{f}, 0, nil); err != nil {
			t.Fatal(err)
		}
		if err := evmctl(t, "ima_verify", "--sigfile", "--key", abs(t, keyPath(c+".der")), f); err != nil {
			t.Errorf("%s (key id %x): %v", c, s.KeyID(), err)
		}
	}
	testenv.NeedRoot(t)
	f := filepath.Join(dir, "sha1")
	if err := os.WriteFile(f, []byte("old image"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := evmctl(t, "ima_sign", "--sigfile", "--key", abs(t, keyPath("rsa2048.key")), "-a", "sha1", f); err != nil {
		t.Fatal(err)
	}
	v, _ := imasig.NewVerifier(loadCert(t, "rsa2048-noskid.pem"))
	if err := VerifyFile(v, SigFile, f); err != nil {
		t.Errorf("evmctl sha1 signature: %v", err)
	}
}
