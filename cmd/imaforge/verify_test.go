package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// verifyProject builds a small image with a trust: section: a root signing
// the manufacturer's IMA key, made with the pki commands.
func verifyProject(t *testing.T) (dir, image string) {
	t.Helper()
	dir = t.TempDir()
	pki := filepath.Join(dir, "pki")
	for _, args := range [][]string{
		{"pki", "init", "--name", "Verify Root", "--out", pki, "--key-type", "p256"},
		{"pki", "issue", "--role", "ima", "--name", "Verify IMA", "--basename", "mfr", "--ca", filepath.Join(pki, "root.pem"),
			"--ca-key", filepath.Join(pki, "root.key"), "--key-type", "p256", "--out", pki},
	} {
		if code, _, errOut := run(t, args...); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
	}
	for name, content := range map[string]string{"bin/a": "alpha", "etc/b": "beta"} {
		p := filepath.Join(dir, "src", name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	m := `version: 1
image: {output: out/img.sqsh, compression: none, epoch: 1700000000, owner: {uid: 0, gid: 0}}
trust: {roots: [pki/root.pem], crls: [pki/root.crl]}
keys:
  mfr: {cert: pki/mfr.pem, key: pki/mfr.key}
sources: [{from: src/, to: /}]
rules: [{match: /**, key: mfr}]
`
	if err := os.WriteFile(filepath.Join(dir, "m.yaml"), []byte(m), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := run(t, "build", "--quiet", filepath.Join(dir, "m.yaml")); code != 0 {
		t.Fatalf("build: exit %d: %s", code, errOut)
	}
	return dir, filepath.Join(dir, "out", "img.sqsh")
}

func TestVerifyCLI(t *testing.T) {
	dir, img := verifyProject(t)
	m := filepath.Join(dir, "m.yaml")
	root := filepath.Join(dir, "pki", "root.pem")
	cert := filepath.Join(dir, "pki", "mfr.pem")

	// clean, with the manifest's trust or with flags
	code, out, errOut := run(t, "verify", "--trust-manifest", m, img)
	if code != 0 || !strings.Contains(out, "result: OK") {
		t.Fatalf("clean image: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = run(t, "verify", "--json", "--root", root, "--crl", filepath.Join(dir, "pki", "root.crl"), "--cert", cert, img)
	var rep struct {
		Format  string         `json:"format"`
		OK      bool           `json:"ok"`
		Reasons map[string]int `json:"reasons"`
		Summary struct {
			Files, Signed, Failed int
		} `json:"summary"`
		Files []struct {
			Path, Status string
			Problems     []struct{ Reason, Message string }
		} `json:"files"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if code != 0 || !rep.OK || rep.Format != "imaforge-verify-report/v1" || rep.Summary.Files != 2 || rep.Summary.Signed != 2 {
		t.Errorf("clean --json: exit %d, %+v", code, rep)
	}

	// a flipped byte: exit 1, the file and the reason named, in text and JSON
	data, _ := os.ReadFile(img)
	i := strings.Index(string(data), "alpha")
	data[i] = 'A'
	bad := filepath.Join(dir, "bad.sqsh")
	if err := os.WriteFile(bad, data, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = run(t, "verify", "--trust-manifest", m, bad)
	if code != 1 || !strings.Contains(out, "FAIL     /bin/a: ") || !strings.Contains(errOut, "1 of 2 files failed") {
		t.Errorf("tampered: exit %d\n%s%s", code, out, errOut)
	}
	// the key is ECDSA: the signature cannot say over what it was made
	code, out, _ = run(t, "verify", "--json", "--trust-manifest", m, bad)
	json.Unmarshal([]byte(out), &rep)
	if code != 1 || rep.OK || rep.Reasons["bad-signature"] != 1 || rep.Files[0].Path != "/bin/a" || rep.Files[0].Status != "failed" {
		t.Errorf("tampered --json: exit %d, %+v", code, rep)
	}

	// an untrusted root: unknown or untrusted keys, exit 1
	otherDir := t.TempDir()
	if code, _, errOut := run(t, "pki", "init", "--name", "Other Root", "--out", otherDir, "--key-type", "p256"); code != 0 {
		t.Fatal(errOut)
	}
	if code, out, _ := run(t, "verify", "--root", filepath.Join(otherDir, "root.pem"), img); code != 1 || !strings.Contains(out, "unknown-key") {
		t.Errorf("other root: exit %d\n%s", code, out)
	}
	if code, out, _ := run(t, "verify", "--root", filepath.Join(otherDir, "root.pem"), "--crl", filepath.Join(otherDir, "root.crl"), "--cert", cert, img); code != 1 || !strings.Contains(out, "untrusted-chain") {
		t.Errorf("other root: exit %d\n%s", code, out)
	}
	// expired in three years; fine with --no-dates
	if code, out, _ := run(t, "verify", "--trust-manifest", m, "--at", "2099-01-01", img); code != 1 || !strings.Contains(out, "expired") {
		t.Errorf("--at 2099: exit %d\n%s", code, out)
	}
	if code, _, errOut := run(t, "verify", "--trust-manifest", m, "--no-dates", img); code != 0 {
		t.Errorf("--no-dates: exit %d: %s", code, errOut)
	}

	// usage and input errors: 2
	if err := os.WriteFile(filepath.Join(dir, "junk.sqsh"), []byte(strings.Repeat("junk", 1024)), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"verify", img},            // no trust
		{"verify", "--root", root}, // no image
		{"verify", "--root", root, filepath.Join(dir, "nope")},      // unreadable
		{"verify", "--root", root, filepath.Join(dir, "junk.sqsh")}, // not SquashFS
		{"verify", "--root", root, "--at", "yesterday", img},
		{"verify", "--root", root, "--kernel", "2.6", img},
		{"verify", "--root", root, "--policy", filepath.Join(dir, "nope.policy"), img},
	} {
		if code, _, errOut := run(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2: %s", args[1:], code, errOut)
		}
	}

	// a --policy that appraises reads: the image is still clean (all signed)
	pol := filepath.Join(dir, "device.policy")
	if err := os.WriteFile(pol, []byte("appraise func=FILE_CHECK mask=^MAY_READ fsmagic=0x73717368 appraise_type=imasig\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := run(t, "verify", "--trust-manifest", m, "--policy", pol, img); code != 0 || !strings.Contains(out, "2 files appraised, 0 would be refused") {
		t.Errorf("--policy: exit %d\n%s%s", code, out, errOut)
	}
}

// TestVerifyCLIRevocation: `verify --root --cert` without the root's CRL
// fails the files as revocation-unknown (was: passed); --revocation
// best-effort passes with a warning; `pki verify` the same.
func TestVerifyCLIRevocation(t *testing.T) {
	dir, img := verifyProject(t)
	root := filepath.Join(dir, "pki", "root.pem")
	cert := filepath.Join(dir, "pki", "mfr.pem")
	if code, out, _ := run(t, "verify", "--root", root, "--cert", cert, img); code != 1 || !strings.Contains(out, "revocation-unknown") {
		t.Errorf("verify without CRL: exit %d\n%s", code, out)
	}
	if code, out, errOut := run(t, "verify", "--root", root, "--cert", cert, "--revocation", "best-effort", img); code != 0 || !strings.Contains(out, "warning: key") {
		t.Errorf("verify --revocation best-effort: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := run(t, "pki", "verify", "--root", root, cert); code != 1 || !strings.Contains(errOut, "no CRL of its issuer") {
		t.Errorf("pki verify without CRL: exit %d %s", code, errOut)
	}
	if code, _, errOut := run(t, "pki", "verify", "--root", root, "--revocation", "best-effort", cert); code != 0 || !strings.Contains(errOut, "warning") {
		t.Errorf("pki verify --revocation best-effort: exit %d %s", code, errOut)
	}
	if code, _, errOut := run(t, "pki", "verify", "--root", root, "--crl", filepath.Join(dir, "pki", "root.crl"), cert); code != 0 {
		t.Errorf("pki verify with the CRL: exit %d %s", code, errOut)
	}
	if code, _, _ := run(t, "verify", "--root", root, "--revocation", "sometimes", img); code != 2 {
		t.Errorf("--revocation sometimes: exit %d", code)
	}
}

// TestVerifyRecordCLI: a setuid bit patched into the inode table of an
// image without an image signature passes verify (with a warning: no
// record), and fails with --record, exit 1, the path and reason named in
// text and JSON; a record that cannot be compared with is exit 2.
func TestVerifyRecordCLI(t *testing.T) {
	dir, img := verifyProject(t)
	m := filepath.Join(dir, "m.yaml")
	rec := img + ".record.json"
	if code, out, errOut := run(t, "verify", "--trust-manifest", m, "--record", rec, img); code != 0 || !strings.Contains(out, "differences") {
		t.Fatalf("clean image: exit %d\n%s%s", code, out, errOut)
	}
	// the inode of /bin/a (0755; its data block, "alpha", comes first)
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	inodes, dirs := le.Uint64(data[64:]), le.Uint64(data[72:])
	i := bytes.Index(data[inodes:dirs], le.AppendUint16(le.AppendUint16(nil, 9), 0o755)) // an extended file inode: it has xattrs
	if i < 0 {
		t.Fatal("no 0755 file inode")
	}
	le.PutUint16(data[int(inodes)+i+2:], 0o4755)
	bad := filepath.Join(dir, "bad.sqsh")
	if err := os.WriteFile(bad, data, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, "verify", "--trust-manifest", m, bad)
	if code != 0 || !strings.Contains(out, "warning: /bin/a: -rwsr-xr-x 0:0 is setuid/setgid") {
		t.Errorf("no record: exit %d, want 0 with a warning\n%s%s", code, out, errOut)
	}
	code, out, errOut = run(t, "verify", "--trust-manifest", m, "--record", rec, bad)
	if code != 1 || !strings.Contains(out, "FAIL     /bin/a: record-mode: mode 4755, the record says 0755 (setuid added)") ||
		!strings.Contains(errOut, "1 differences from the record") {
		t.Errorf("--record: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = run(t, "verify", "--json", "--trust-manifest", m, "--record", rec, bad)
	var rep struct {
		OK     bool `json:"ok"`
		Record struct {
			Problems []struct{ Path, Reason string }
		} `json:"record"`
		Setuid []struct {
			Path     string
			Recorded bool
		} `json:"setuid"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if code != 1 || rep.OK || len(rep.Record.Problems) != 1 || rep.Record.Problems[0].Path != "/bin/a" || rep.Record.Problems[0].Reason != "mode" ||
		len(rep.Setuid) != 1 || rep.Setuid[0].Recorded {
		t.Errorf("--json: exit %d, %+v", code, rep)
	}
	// records that cannot be compared with: exit 2
	v1 := filepath.Join(dir, "v1.json")
	b, _ := os.ReadFile(rec)
	if err := os.WriteFile(v1, bytes.Replace(b, []byte("build-record/v2"), []byte("build-record/v1"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{v1, filepath.Join(dir, "nope.json"), m} {
		if code, _, errOut := run(t, "verify", "--trust-manifest", m, "--record", r, img); code != 2 {
			t.Errorf("--record %s: exit %d, want 2: %s", r, code, errOut)
		} else if r == v1 && !strings.Contains(errOut, "rebuild the image") {
			t.Errorf("v1 record: %s", errOut)
		}
	}
}
