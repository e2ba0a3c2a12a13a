package pki

import (
	"bytes"
	"crypto/x509"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/internal/testenv"
	"github.com/imaforge/imaforge/policy"
	"github.com/imaforge/imaforge/signer"
)

// policyFixture: a hierarchy with the owner's policy key (issued by the
// owner CA, no scope), a scoped tenant key (h.ima) and the manufacturer's
// base-system key (issued by the root), exported.
type policyFixture struct {
	*hierarchy
	policyKey, mfrIMA *Issued
	dir               string
	res               *ExportResult
}

func newPolicyFixture(t *testing.T) *policyFixture {
	t.Helper()
	f := &policyFixture{hierarchy: newHierarchy(t, RSA2048)}
	ri, oi := f.rootIssuer(), f.ownerIssuer()
	f.policyKey = mustIssue(t, Request{Role: RoleIMA, Name: "Owner One policy", KeyType: RSA2048}, &oi, at(t0))
	f.mfrIMA = mustIssue(t, Request{Role: RoleIMA, Name: "ACME base system", KeyType: RSA2048}, &ri, at(t0))
	ts, err := NewTrustStore([]*x509.Certificate{f.root.Cert},
		[]*x509.Certificate{f.owner.Cert, f.ima.Cert, f.policyKey.Cert, f.mfrIMA.Cert}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.dir = t.TempDir()
	if f.res, err = Export(ts, f.dir, t0); err != nil {
		t.Fatal(err)
	}
	return f
}

func keyIDHex(c *x509.Certificate) string {
	id := imasig.KeyID(c)
	return hex.EncodeToString(id[:])
}

// TestPolicySigners: only the owner-issued, unscoped IMA certificate may
// sign tenant rules, and load-policy.sh names exactly its key id.
func TestPolicySigners(t *testing.T) {
	f := newPolicyFixture(t)
	s := PolicySigners(f.res)
	if len(s) != 1 || s[0].KeyID != keyIDHex(f.policyKey.Cert) {
		t.Fatalf("policy signers %+v, want only %s", s, keyIDHex(f.policyKey.Cert))
	}
	script, err := os.ReadFile(filepath.Join(f.dir, "load-policy.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*x509.Certificate{f.ima.Cert, f.mfrIMA.Cert} {
		if bytes.Contains(script, []byte(keyIDHex(c))) {
			t.Errorf("load-policy.sh accepts %s", c.Subject.CommonName)
		}
	}
	if !bytes.Contains(script, []byte(keyIDHex(f.policyKey.Cert)+" "+s[0].File+"\n")) {
		t.Errorf("load-policy.sh does not name the policy key:\n%s", script)
	}
}

// shells returns the POSIX shells to run the device scripts with: sh
// (dash on Debian) and busybox's, which devices and the e2e guest use.
func shells(t *testing.T) [][]string {
	var out [][]string
	out = append(out, []string{testenv.NeedTool(t, "sh")})
	out = append(out, []string{testenv.NeedTool(t, "busybox"), "sh"})
	return out
}

// TestLoadPolicyLint: the loader's confinement check (awk, on the device)
// refuses exactly the rules policy.LintTenant (the build's check) refuses.
func TestLoadPolicyLint(t *testing.T) {
	f := newPolicyFixture(t)
	rules := []string{
		"appraise func=BPRM_CHECK fsmagic=0x73717368 fowner=2001 appraise_type=imasig",
		"measure func=MMAP_CHECK mask=MAY_EXEC fowner=2001 template=ima-sig",
		"audit func=FILE_CHECK mask=^MAY_READ fgroup=3001",
		"appraise func=BPRM_CHECK fowner=2001 fgroup=3001 appraise_type=imasig",
		"appraise\tfunc=BPRM_CHECK  fowner=2001\tappraise_type=imasig",
		"dont_appraise fsmagic=0x73717368",
		"dont_appraise func=BPRM_CHECK fowner=2001",
		"dont_measure func=BPRM_CHECK fowner=2001",
		"hash func=FILE_CHECK fowner=2001",
		"appraise fowner=2001 appraise_type=imasig",
		"appraise func=POLICY_CHECK fowner=2001 appraise_type=imasig",
		"appraise func=MODULE_CHECK fowner=2001 appraise_type=imasig",
		"appraise func=BPRM_CHECK fsmagic=0x73717368 appraise_type=imasig",
		"appraise func=BPRM_CHECK uid=2001 appraise_type=imasig",
		"appraise func=BPRM_CHECK fowner=2002 appraise_type=imasig",
		"appraise func=BPRM_CHECK fowner>1000 appraise_type=imasig",
		"appraise func=BPRM_CHECK fowner<2002 appraise_type=imasig",
		"appraise func=BPRM_CHECK fowner=2001 fgroup=0 appraise_type=imasig",
		"appraise func=BPRM_CHECK fowner=20011 appraise_type=imasig",
	}
	ten := policy.Tenant{FOwner: u32(2001), FGroup: u32(3001)}
	dir := t.TempDir()
	for _, sh := range shells(t) {
		for i, rule := range rules {
			data := []byte("# tenant\n\n" + rule + "\n")
			parsed, err := policy.ParseFor("t", data, policy.V6_12)
			if err != nil {
				t.Fatalf("row %d is not a valid rule: %v", i, err)
			}
			want := len(policy.LintTenant(parsed, ten)) == 0
			frag := filepath.Join(dir, "frag.policy")
			if err := os.WriteFile(frag, data, 0o644); err != nil {
				t.Fatal(err)
			}
			args := append(sh[1:], filepath.Join(f.dir, "load-policy.sh"), "--lint-only", "--fowner", "2001", "--fgroup", "3001", frag)
			out, err := exec.Command(sh[0], args...).CombinedOutput()
			if got := err == nil; got != want {
				t.Errorf("%s: %q: loader accepts=%v, build accepts=%v\n%s", sh, rule, got, want, out)
			}
			if !want && !strings.Contains(string(out), frag+":3: ") {
				t.Errorf("%s: %q: refusal does not name the line:\n%s", sh, rule, out)
			}
		}
	}
}

func u32(v uint32) *uint32 { return &v }

// TestLoadPolicyIntoKernel runs load-policy.sh on this machine's kernel in
// a throw-away session keyring, after load-keys.sh, with IMA_POLICY a plain
// file: a fragment the owner's policy key signed is written (its path, one
// write); an unsigned one, a tampered one, one signed by the tenant's own
// key, and an owner-signed one that exempts the base system are refused
// and nothing is written. keyctl pkey_verify is the host kernel's RSA.
func TestLoadPolicyIntoKernel(t *testing.T) {
	testenv.NeedRoot(t)
	keyctl := testenv.NeedTool(t, "keyctl")
	setfattr := testenv.NeedTool(t, "setfattr")
	testenv.NeedTool(t, "getfattr")
	if out, err := run(keyctl, "session", "-", "true"); err != nil {
		t.Skipf("keyrings are not usable here (%v: %s)", err, out)
	}
	f := newPolicyFixture(t)
	dir := t.TempDir()
	const good = "appraise func=BPRM_CHECK fsmagic=0x73717368 fowner=2001 appraise_type=imasig\n"
	sign := func(name, text string, is *Issued, tamper bool) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if is == nil {
			return p
		}
		s, err := signer.New(is.Key, is.Cert)
		if err != nil {
			t.Fatal(err)
		}
		v, err := policy.Sign(s, imasig.SHA256, []byte(text))
		if err != nil {
			t.Fatal(err)
		}
		if out, err := run(setfattr, "-n", "security.ima", "-v", "0x"+hex.EncodeToString(v), p); err != nil {
			t.Skipf("cannot set security.ima in %s: %v %s", dir, err, out)
		}
		if tamper {
			if err := os.WriteFile(p, []byte(strings.Replace(text, "v1", "v2", 1)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return p
	}
	tests := []struct {
		name, path, want string
	}{
		{"owner-signed", sign("good.policy", good, f.policyKey, false), "appended"},
		{"unsigned", sign("unsigned.policy", good, nil, false), "no security.ima"},
		{"tampered", sign("tampered.policy", "# v1\n"+good, f.policyKey, true), "does not verify"},
		{"tenant-signed", sign("tenant.policy", good, f.ima, false), "not one of the owner's policy keys"},
		{"manufacturer-signed", sign("mfr.policy", good, f.mfrIMA, false), "not one of the owner's policy keys"},
		{"exempts the base system", sign("exempt.policy", "dont_appraise fsmagic=0x73717368\n", f.policyKey, false), "dont_appraise is not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pol := filepath.Join(t.TempDir(), "policy")
			if err := os.WriteFile(pol, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			script := `KEYRING=@s sh "$1/load-keys.sh" >/dev/null || exit 9
KEYRING=@s IMA_POLICY="$2" sh "$1/load-policy.sh" --fowner 2001 "$3"`
			out, err := run(keyctl, "session", "-", "sh", "-c", script, "sh", f.dir, pol, tt.path)
			written, _ := os.ReadFile(pol)
			if !strings.Contains(out, tt.want) {
				t.Errorf("output lacks %q (err %v):\n%s", tt.want, err, out)
			}
			if tt.want == "appended" {
				if err != nil || string(written) != tt.path+"\n" {
					t.Errorf("err %v, policy file %q, want the path in one line", err, written)
				}
				return
			}
			if err == nil || len(written) != 0 {
				t.Errorf("refusal: err %v, policy file %q, want exit 1 and nothing written", err, written)
			}
		})
	}
}
