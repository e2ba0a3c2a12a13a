package pipeline

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imaforge/imaforge/internal/testenv"
	"github.com/imaforge/imaforge/internal/tpm2test"
)

// TestBuildKeyInTPM: the build signs security.ima and security.evm with
// keys held in a (software) TPM, reached through tpm2-pkcs11 by pkcs11:
// URIs in the manifest, the PIN from an environment variable. With the
// keys imported from their files, the SquashFS image and the tar.zst
// archive are byte for byte the builds with the key files (RSA PKCS#1
// v1.5 is deterministic). With an EVM key generated inside the TPM (no
// file of it exists), GNU tar installs the archive and evmctl verifies
// every file's security.ima and security.evm.
func TestBuildKeyInTPM(t *testing.T) {
	evmctl := testenv.NeedTool(t, "evmctl")
	tpm := tpm2test.Start(t, "imaforge", "4711")
	t.Setenv("TPM_PIN", "4711")
	p := tarProject(t)
	writeTree(t, filepath.Join(p.dir, "a"), sortedPaths(false), 0o755)
	tpm.ImportKey(t, p.mfr.KeyPath, "mfr", "rsa")
	tpm.ImportKey(t, filepath.Join(p.dir, "keys/tenrsa.key"), "tenrsa", "rsa")
	genCert := certifyTPMKey(t, p, tpm.GenerateKey(t, "gen", "rsa2048"))

	inTPM := func(body string) string {
		for _, k := range []string{"mfr", "tenrsa"} {
			body = strings.Replace(body, "key: keys/"+k+".key}",
				fmt.Sprintf("key: %q, passphrase_env: TPM_PIN}", tpm.URI(k)), 1)
		}
		return body
	}
	for _, format := range []string{"squashfs", "tar.zst"} {
		t.Run(format, func(t *testing.T) {
			body := fmt.Sprintf(tarManifest, format, "a", "sha256")
			file, err := build(t, p.manifest(t, "", "", body), 2)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := os.ReadFile(file.ImagePath)
			tb := inTPM(body)
			if tb == body || strings.Contains(tb, ".key}") {
				t.Fatalf("the manifest still names key files:\n%s", tb)
			}
			tok, err := build(t, p.manifest(t, "", "", tb), 2)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(tok.ImagePath)
			if len(want) == 0 || !bytes.Equal(got, want) {
				t.Fatalf("the build with the keys in the TPM differs from the build with the key files (%d and %d bytes)", len(got), len(want))
			}
			if tok.Signed != 6 {
				t.Errorf("%d files signed, want 6", tok.Signed)
			}
		})
	}

	t.Run("generated in the TPM", func(t *testing.T) {
		testenv.NeedRoot(t) // tar restores security.* xattrs as root only
		gnutar := testenv.NeedTool(t, "tar")
		body := inTPM(fmt.Sprintf(tarManifest, "tar.zst", "a", "sha512"))
		body = strings.Replace(body, "keys:\n", fmt.Sprintf("keys:\n  gen: {cert: keys/gen.pem, key: %q, passphrase_env: TPM_PIN}\n", tpm.URI("gen")), 1)
		body = strings.ReplaceAll(body, "evm_key: tenant", "evm_key: gen")
		res, err := build(t, p.manifest(t, "", "", body), 2)
		if err != nil {
			t.Fatal(err)
		}
		dst := t.TempDir()
		if out, err := exec.Command(gnutar, "--xattrs", "--xattrs-include=security.*", "-xpf", res.ImagePath, "-C", dst).CombinedOutput(); err != nil {
			t.Fatalf("tar: %v\n%s", err, out)
		}
		for path := range files {
			if strings.HasPrefix(path, "var/") {
				continue
			}
			f := filepath.Join(dst, path)
			imaKey, evmKey := p.mfr.DERPath, genCert
			if strings.HasPrefix(path, "opt/tenant/") {
				imaKey, evmKey = filepath.Join(p.dir, "keys/tenrsa.der"), filepath.Join(p.dir, "keys/tenrsa.der")
			}
			if out, err := exec.Command(evmctl, "ima_verify", "--key", imaKey, f).CombinedOutput(); err != nil {
				t.Errorf("evmctl ima_verify %s: %v\n%s", path, err, out)
			}
			if out, err := exec.Command(evmctl, "verify", "--key", evmKey, f).CombinedOutput(); err != nil {
				t.Errorf("evmctl verify %s: %v\n%s", path, err, out)
			}
		}
		// The TPM key's signature is the TPM key's: another key refuses it.
		if exec.Command(evmctl, "verify", "--key", p.mfr.DERPath, filepath.Join(dst, "usr/bin/tool")).Run() == nil {
			t.Error("evmctl verify accepts the TPM key's EVM signature with the manufacturer's certificate")
		}
	})
}

// certifyTPMKey writes keys/gen.pem and keys/gen.der, a certificate for the
// DER public key pubDER issued by the manufacturer key, and returns the DER
// path (what evmctl takes).
func certifyTPMKey(t *testing.T, p *project, pubDER []byte) string {
	t.Helper()
	pub, err := x509.ParsePKIXPublicKey(pubDER)
	if err != nil {
		t.Fatalf("the TPM's public key: %v", err)
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(pubDER, &spki); err != nil {
		t.Fatal(err)
	}
	skid := sha1.Sum(spki.PublicKey.Bytes)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(42),
		Subject:      pkix.Name{CommonName: "key generated in the TPM"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		SubjectKeyId: skid[:],
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.mfr.Cert, pub, p.mfr.Signer)
	if err != nil {
		t.Fatal(err)
	}
	derPath := filepath.Join(p.dir, "keys/gen.der")
	if err := os.WriteFile(derPath, der, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p.dir, "keys/gen.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return derPath
}
