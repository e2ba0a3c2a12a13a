package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/internal/testenv"
)

var signerKeys = filepath.Join("..", "..", "testdata", "signer", "keys")

func sk(name string) string { return filepath.Join(signerKeys, name) }

func writeFiles(t *testing.T, n int) []string {
	t.Helper()
	dir := t.TempDir()
	var fs []string
	for i := range n {
		p := filepath.Join(dir, "f"+string(rune('a'+i)))
		if err := os.WriteFile(p, bytes.Repeat([]byte{byte(i)}, 100*i), 0o644); err != nil {
			t.Fatal(err)
		}
		fs = append(fs, p)
	}
	return fs
}

func TestFileSignVerify(t *testing.T) {
	for _, k := range []string{"rsa2048", "p384"} {
		for _, h := range []string{"sha256", "sha512"} {
			files := writeFiles(t, 5)
			code, out, errOut := run(t, append([]string{"file", "sign", "--key", sk(k + ".key"), "--cert", sk(k + ".pem"), "--hash", h, "--sigfile"}, files...)...)
			if code != 0 || !strings.Contains(out, "signed 5 files") {
				t.Fatalf("%s/%s sign: exit %d\n%s%s", k, h, code, out, errOut)
			}
			code, out, errOut = run(t, append([]string{"file", "verify", "--cert", sk(k + ".der"), "--sigfile"}, files...)...)
			if code != 0 || !strings.Contains(out, "verified 5 files") {
				t.Fatalf("%s/%s verify: exit %d\n%s%s", k, h, code, out, errOut)
			}
			// tamper one file and one signature: both named, exit 1
			if err := os.WriteFile(files[1], []byte("tampered"), 0o644); err != nil {
				t.Fatal(err)
			}
			sig, _ := os.ReadFile(files[3] + ".sig")
			sig[len(sig)-1] ^= 1
			if err := os.WriteFile(files[3]+".sig", sig, 0o644); err != nil {
				t.Fatal(err)
			}
			code, _, errOut = run(t, append([]string{"file", "verify", "--cert", sk(k + ".pem"), "--sigfile"}, files...)...)
			if code != 1 || !strings.Contains(errOut, files[1]+": invalid signature") || !strings.Contains(errOut, files[3]+": invalid signature") ||
				strings.Contains(errOut, files[0]+":") || !strings.Contains(errOut, "2 of 5 files failed") {
				t.Errorf("%s/%s tampered: exit %d\n%s", k, h, code, errOut)
			}
		}
	}
}

// TestFileBadInput: each bad input is a clear error naming the file, and a
// non-zero exit.
func TestFileBadInput(t *testing.T) {
	files := writeFiles(t, 2)
	dir := filepath.Dir(files[0])
	sign := func(key, cert string, f ...string) []string {
		return append([]string{"file", "sign", "--key", key, "--cert", cert, "--sigfile"}, f...)
	}
	verify := func(f ...string) []string {
		return append([]string{"file", "verify", "--cert", sk("rsa2048.pem"), "--sigfile"}, f...)
	}
	if code, _, e := run(t, sign(sk("rsa2048.key"), sk("rsa2048.pem"), files...)...); code != 0 {
		t.Fatal(e)
	}
	truncated := filepath.Join(dir, "truncated")
	if err := os.WriteFile(truncated, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(files[0] + ".sig")
	if err := os.WriteFile(truncated+".sig", good[:40], 0o644); err != nil {
		t.Fatal(err)
	}
	wrongType := filepath.Join(dir, "wrongtype")
	if err := os.WriteFile(wrongType, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	dng, _ := imasig.NewDigestNG(imasig.SHA256, make([]byte, 32))
	b, _ := dng.MarshalBinary()
	if err := os.WriteFile(wrongType+".sig", b, 0o644); err != nil {
		t.Fatal(err)
	}
	unsigned := filepath.Join(dir, "unsigned")
	if err := os.WriteFile(unsigned, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")

	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string // all in stderr
	}{
		{"key does not match cert", sign(sk("rsa2048.key"), sk("rsa3072.pem"), files...), 1,
			[]string{sk("rsa2048.key"), "does not match", sk("rsa3072.pem")}},
		{"unsupported key ed25519", sign(sk("ed25519.key"), sk("ed25519.pem"), files...), 1,
			[]string{sk("ed25519.key"), "unsupported key", "ed25519"}},
		{"unsupported key RSA-1024", sign(sk("rsa1024.key"), sk("rsa1024.pem"), files...), 1,
			[]string{sk("rsa1024.key"), "RSA-1024"}},
		{"missing key file", sign(filepath.Join(dir, "nokey.pem"), sk("rsa2048.pem"), files...), 1,
			[]string{filepath.Join(dir, "nokey.pem"), "no such file"}},
		{"encrypted key without passphrase source", sign(sk("p256-pkcs8-enc.key"), sk("p256.pem"), files...), 1,
			[]string{sk("p256-pkcs8-enc.key"), "passphrase"}},
		{"file to sign missing", sign(sk("rsa2048.key"), sk("rsa2048.pem"), missing), 2, // an input error
			[]string{missing, "no such file"}},
		{"file to sign is a directory", sign(sk("rsa2048.key"), sk("rsa2048.pem"), dir), 1,
			[]string{dir + ": hash: not a regular file"}},
		{"sha1 signing refused", sign(sk("rsa2048.key"), sk("rsa2048.pem"), append([]string{"--hash", "sha1"}, files...)...), 1,
			[]string{"sha1", "sign"}},
		{"unknown hash", sign(sk("rsa2048.key"), sk("rsa2048.pem"), append([]string{"--hash", "md6"}, files...)...), 2,
			[]string{"md6"}},
		{"no store flag", []string{"file", "sign", "--key", sk("rsa2048.key"), "--cert", sk("rsa2048.pem"), files[0]}, 2,
			[]string{"--sigfile"}},
		{"no files", []string{"file", "verify", "--cert", sk("rsa2048.pem"), "--sigfile"}, 2,
			[]string{"file verify: missing argument FILE"}},
		{"truncated signature", verify(truncated), 1,
			[]string{truncated + ": invalid signature", "truncated"}},
		{"wrong-type signature", verify(wrongType), 1,
			[]string{wrongType + ": invalid signature", "wrong security.ima type", "digest-ng"}},
		{"no signature", verify(unsigned), 1,
			[]string{unsigned + ".sig does not exist"}},
		{"file to verify missing", verify(missing), 1,
			[]string{missing}},
		{"wrong certificate", []string{"file", "verify", "--cert", sk("p256.pem"), "--sigfile", files[0]}, 1,
			[]string{files[0] + ": invalid signature", "no certificate with the signature's key id"}},
		{"unreadable certificate", []string{"file", "verify", "--cert", filepath.Join(dir, "nocert.pem"), "--sigfile", files[0]}, 2,
			[]string{filepath.Join(dir, "nocert.pem")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, e := run(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\n%s", code, tc.code, e)
			}
			for _, w := range tc.want {
				if !strings.Contains(e, w) {
					t.Errorf("stderr lacks %q:\n%s", w, e)
				}
			}
		})
	}
	// the good files still verify after all that
	if code, _, e := run(t, verify(files...)...); code != 0 {
		t.Errorf("good files: %s", e)
	}
}

// TestFilePassphrase: encrypted keys via --passphrase-env and --passphrase-file.
func TestFilePassphrase(t *testing.T) {
	files := writeFiles(t, 1)
	pf := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(pf, []byte("imaforge-test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("IMAFORGE_TEST_PASSPHRASE", "imaforge-test")
	for _, args := range [][]string{
		{"--key", sk("rsa2048-legacy-enc.key"), "--cert", sk("rsa2048.pem"), "--passphrase-file", pf},
		{"--key", sk("p256-pkcs8-enc.key"), "--cert", sk("p256.pem"), "--passphrase-env", "IMAFORGE_TEST_PASSPHRASE"},
	} {
		code, _, e := run(t, append(append([]string{"file", "sign", "--sigfile"}, args...), files...)...)
		if code != 0 {
			t.Fatalf("%v: %s", args, e)
		}
	}
	t.Setenv("IMAFORGE_TEST_PASSPHRASE", "wrong")
	code, _, e := run(t, "file", "sign", "--sigfile", "--key", sk("p256-pkcs8-enc.key"), "--cert", sk("p256.pem"),
		"--passphrase-env", "IMAFORGE_TEST_PASSPHRASE", files[0])
	if code == 0 || !strings.Contains(e, "wrong or missing passphrase") || !strings.Contains(e, sk("p256-pkcs8-enc.key")) {
		t.Errorf("wrong passphrase: exit %d\n%s", code, e)
	}
}

// TestFileXattr: --xattr writes security.ima, and evmctl ima_verify (which
// reads the xattr without --sigfile) accepts it.
func TestFileXattr(t *testing.T) {
	testenv.NeedRoot(t)
	testenv.NeedTool(t, "evmctl")
	files := writeFiles(t, 3)
	if code, _, e := run(t, append([]string{"file", "sign", "--key", sk("p256.key"), "--cert", sk("p256.pem"), "--xattr"}, files...)...); code != 0 {
		t.Fatal(e)
	}
	if _, err := os.Stat(files[0] + ".sig"); err == nil {
		t.Error("--xattr wrote a .sig file")
	}
	der, _ := filepath.Abs(sk("p256.der"))
	for _, f := range files {
		if out, err := exec.Command("evmctl", "ima_verify", "--key", der, f).CombinedOutput(); err != nil {
			t.Errorf("evmctl rejects the xattr of %s: %v\n%s", f, err, out)
		}
	}
	if code, _, e := run(t, append([]string{"file", "verify", "--cert", sk("p256.pem"), "--xattr"}, files...)...); code != 0 {
		t.Fatal(e)
	}
	if err := os.WriteFile(files[2], []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, e := run(t, append([]string{"file", "verify", "--cert", sk("p256.pem"), "--xattr"}, files...)...); code != 1 || !strings.Contains(e, files[2]) {
		t.Errorf("tampered: exit %d\n%s", code, e)
	}
}

// TestSignWithoutCert: file sign and policy sign need no --cert for a key
// file: the key id is the public key's (evmctl's calc_keyid_v2), which is
// the tail of the SKID of a certificate made with subjectKeyIdentifier=hash,
// so the signature equals the one made with that certificate and verifies
// with it (imaforge and evmctl). A certificate that is given still sets the
// key id (rsa2048-skid.pem: the same key with another SKID).
func TestSignWithoutCert(t *testing.T) {
	files := writeFiles(t, 4)
	sign := func(extra ...string) []byte {
		t.Helper()
		args := append([]string{"file", "sign", "--key", sk("rsa2048.key"), "--sigfile"}, extra...)
		code, out, errOut := run(t, append(args, files[1])...)
		if code != 0 {
			t.Fatalf("file sign %v: exit %d\n%s%s", extra, code, out, errOut)
		}
		sig, err := os.ReadFile(files[1] + ".sig")
		if err != nil {
			t.Fatal(err)
		}
		return sig
	}
	noCert := sign()
	if withCert := sign("--cert", sk("rsa2048.pem")); !bytes.Equal(noCert, withCert) {
		t.Fatalf("without --cert % x\nwith it       % x", noCert[:8], withCert[:8])
	}
	// security.ima v2: 03 02 hash-algo key-id[4] ...
	if other := sign("--cert", sk("rsa2048-skid.pem")); !bytes.Equal(other[3:7], []byte{1, 2, 3, 4}) {
		t.Fatalf("--cert rsa2048-skid.pem: key id % x, want its SKID's tail 01 02 03 04", other[3:7])
	}
	if err := os.WriteFile(files[1]+".sig", noCert, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := run(t, "file", "verify", "--cert", sk("rsa2048.der"), "--sigfile", files[1]); code != 0 {
		t.Fatalf("file verify: exit %d\n%s%s", code, out, errOut)
	}
	if _, err := exec.LookPath("evmctl"); err == nil || testenv.InCI() {
		evmctl := testenv.NeedTool(t, "evmctl")
		if out, err := exec.Command(evmctl, "ima_verify", "--sigfile", "--key", sk("rsa2048.der"), files[1]).CombinedOutput(); err != nil {
			t.Errorf("evmctl ima_verify: %v\n%s", err, out)
		}
	}

	policy := filepath.Join(t.TempDir(), "60-tenant.policy")
	if err := os.WriteFile(policy, []byte("appraise func=BPRM_CHECK fsmagic=0x73717368 appraise_type=imasig\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := run(t, "policy", "sign", "--key", sk("rsa2048.key"), policy); code != 0 {
		t.Fatalf("policy sign: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, errOut := run(t, "policy", "verify", "--cert", sk("rsa2048.der"), policy); code != 0 || !strings.Contains(out, "signature ok") {
		t.Fatalf("policy verify: exit %d\n%s%s", code, out, errOut)
	}
}
