package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPolicyLintCLI(t *testing.T) {
	out, _, code := runCLI(t, "policy", "lint", "../../testdata/policy/broken/options.policy")
	if code != 1 || !strings.Contains(out, "../../testdata/policy/broken/options.policy:4:26: appraise_type=imasig|modsig is not allowed with func=BPRM_CHECK\n") {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
	if out, errOut, code := runCLI(t, "policy", "lint", "--kernel", "6.6", "../../testdata/policy/builtin/tcb.policy",
		"../../testdata/policy/doc/verity.policy"); code != 0 || out != "" {
		t.Errorf("clean files: exit %d, %q %q", code, out, errOut)
	}
	if _, errOut, code := runCLI(t, "policy", "lint", "--kernel", "5.10", "../../testdata/policy/doc/verity.policy"); code != 1 ||
		!strings.Contains(errOut, "rejected by Linux 5.10") {
		t.Errorf("verity on 5.10: exit %d, %q", code, errOut)
	}
	if _, _, code := runCLI(t, "policy", "lint", "--kernel", "4.19", "x"); code != 2 {
		t.Errorf("--kernel 4.19: exit %d, want 2", code)
	}
}

func TestPolicySignVerifyCLI(t *testing.T) {
	keys, _ := filepath.Abs("../../testdata/signer/keys")
	dir := t.TempDir()
	file := filepath.Join(dir, "60-tenant.policy")
	data := []byte("# tenant\nappraise func=BPRM_CHECK fsmagic=0x73717368 appraise_type=imasig\n")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := runCLI(t, "policy", "sign", "--key", keys+"/rsa2048.key", "--cert", keys+"/rsa2048.pem", file)
	if code != 0 || !strings.Contains(out, "signed 1 policy files") {
		t.Fatalf("sign: exit %d, %q %q", code, out, errOut)
	}
	if sig, err := os.ReadFile(file + ".sig"); err != nil || len(sig) < 10 || sig[0] != 3 {
		t.Fatalf("FILE.sig: %v % x", err, sig)
	}
	out, errOut, code = runCLI(t, "policy", "verify", "--cert", keys+"/rsa2048.der", file)
	if code != 0 || !strings.Contains(out, "signature ok") {
		t.Fatalf("verify: exit %d, %q %q", code, out, errOut)
	}
	// A tampered policy fails; a policy the kernel would reject is never signed.
	if err := os.WriteFile(file, bytes.Replace(data, []byte("BPRM"), []byte("MMAP"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := runCLI(t, "policy", "verify", "--cert", keys+"/rsa2048.der", file); code != 1 || !strings.Contains(errOut, "failed verification") {
		t.Errorf("tampered: exit %d, %q", code, errOut)
	}
	if err := os.WriteFile(file, []byte("appraise func=BPRM_CHECK gid=0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, _, code := runCLI(t, "policy", "sign", "--kernel", "5.15", "--key", keys+"/rsa2048.key", "--cert", keys+"/rsa2048.pem", file); code != 1 ||
		!strings.Contains(out, `60-tenant.policy:1:26: "gid=" is not accepted by Linux 5.15`) {
		t.Errorf("sign of a broken policy: exit %d, %q", code, out)
	}
}

// TestPolicyFmtCLI: the kernel's policy listing (trailing blanks, its own
// option order) and the file it was loaded from print the same rules.
func TestPolicyFmtCLI(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "a.policy")
	listing := filepath.Join(dir, "listing")
	os.WriteFile(src, []byte("# tenant a\nmeasure func=BPRM_CHECK fowner=2001 template=ima-sig pcr=11\nappraise func=BPRM_CHECK fsmagic=0x73717368 fowner=2001 appraise_type=imasig\n"), 0o644)
	os.WriteFile(listing, []byte("measure func=BPRM_CHECK pcr=11 fowner=2001 template=ima-sig \nappraise func=BPRM_CHECK fsmagic=0x73717368 fowner=2001 appraise_type=imasig \n"), 0o644)
	a, _, code1 := runCLI(t, "policy", "fmt", src)
	b, _, code2 := runCLI(t, "policy", "fmt", listing)
	if code1 != 0 || code2 != 0 || a != b || strings.Count(a, "\n") != 2 {
		t.Errorf("exit %d %d:\n%s---\n%s", code1, code2, a, b)
	}
	if _, errOut, code := runCLI(t, "policy", "fmt", "../../testdata/policy/broken/options.policy"); code != 1 || !strings.Contains(errOut, "options.policy:4:26") {
		t.Errorf("broken file: exit %d, %q", code, errOut)
	}
}
