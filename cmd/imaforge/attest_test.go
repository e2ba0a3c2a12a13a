package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// attest policy then attest verify on the kernel end-to-end sample: exit
// 1 with the bad entries named, 0 for the good prefix, 2 for bad input.
func TestAttestCLI(t *testing.T) {
	s := filepath.Join("..", "..", "testdata", "e2e", "enforce-sample")
	dir := t.TempDir()
	ref, kl := filepath.Join(dir, "ref.json"), filepath.Join(dir, "keylime.json")
	cert := filepath.Join(s, "enforce.export", "certs", "02-ima-e2e-ima.der")
	code, _, stderr := run(t, "attest", "policy", "--image", filepath.Join(s, "enforce.image.record.json")+"=/mnt", "--cert", cert,
		"--boot-aggregate", "sha256:"+strings.Repeat("00", 32), "--out", ref, "--keylime", kl)
	if code != 0 || !strings.Contains(stderr, "rogue") {
		t.Fatalf("policy: exit %d: %s", code, stderr)
	}
	var m map[string]any
	if b, err := os.ReadFile(kl); err != nil || json.Unmarshal(b, &m) != nil || m["verification-keys"] == "" {
		t.Fatalf("keylime policy: %v %v", err, m)
	}
	list := filepath.Join(s, "enforce.ascii_runtime_measurements")
	code, out, _ := run(t, "attest", "verify", "--reference", ref, list)
	if code != 1 || !strings.Contains(out, "/mnt/bin/tampered: bad-signature") || !strings.Contains(out, "verdict: NOT trusted") {
		t.Errorf("verify: exit %d:\n%s", code, out)
	}
	// the first two entries (boot_aggregate, /mnt/bin/good) alone are trusted
	b, _ := os.ReadFile(list)
	two := filepath.Join(dir, "two")
	os.WriteFile(two, []byte(strings.Join(strings.SplitN(string(b), "\n", 3)[:2], "\n")+"\n"), 0o644)
	code, out, _ = run(t, "attest", "verify", "--reference", ref, "--json", two)
	if code != 0 || !strings.Contains(out, `"trusted": true`) {
		t.Errorf("two entries: exit %d:\n%s", code, out)
	}
	// malformed list, missing inputs: exit 2
	bad := filepath.Join(dir, "bad")
	os.WriteFile(bad, []byte("10 zz ima-sig\n"), 0o644)
	for _, args := range [][]string{
		{"attest", "verify", "--reference", ref, bad},
		{"attest", "verify", list},
		{"attest", "verify", "--reference", ref, "--quote", list, list},
		{"attest", "verify", "--reference", filepath.Join(dir, "missing"), list},
		{"attest", "policy", "--image", "x", "--out", filepath.Join(dir, "o")},
	} {
		if code, _, stderr := run(t, args...); code != 2 {
			t.Errorf("%v: exit %d, want 2: %s", args, code, stderr)
		}
	}
	if code, _, stderr := run(t, "attest", "verify", "--reference", ref, bad); !strings.Contains(stderr, "line 1") {
		t.Errorf("malformed list error does not name the line (%d): %s", code, stderr)
	}
}
