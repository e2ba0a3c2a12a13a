package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/imaforge/imaforge/internal/testenv"
	"github.com/imaforge/imaforge/internal/testkeys"
)

const buildManifest = `version: 1
image:
  output: out/img.sqsh
  compression: zstd
  epoch: 1700000000
  owner: {uid: 0, gid: 0}
keys:
  mfr: {cert: mfr.pem, key: mfr.key}
sources:
  - from: src/
    to: /
rules:
  - match: /**
    key: mfr
`

func buildProject(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	testkeys.New(t, dir, "mfr", "p256")
	for name, content := range map[string]string{"a": "alpha", "sub/b": "beta", "sub/c": "alpha"} {
		p := filepath.Join(dir, "src", name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "m.yaml"), []byte(buildManifest), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestBuildCLI(t *testing.T) {
	dir := buildProject(t)
	code, out, errOut := run(t, "build", "--json", "--quiet", filepath.Join(dir, "m.yaml"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var sum buildSummary
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("--json output is not JSON: %v\n%s", err, out)
	}
	if sum.Files != 3 || sum.Signed != 3 || sum.Signatures != 2 || !sum.Reproducible {
		t.Errorf("summary %+v: want 3 files, 3 signed, 2 signatures, reproducible", sum)
	}
	if _, err := os.Stat(sum.Image); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(sum.Record); err != nil {
		t.Error(err)
	}
}

func TestBuildCLIExitCodes(t *testing.T) {
	dir := buildProject(t)
	m := filepath.Join(dir, "m.yaml")

	if code, _, _ := run(t, "build"); code != 2 {
		t.Errorf("no argument: exit %d, want 2", code)
	}
	if err := os.WriteFile(m, []byte(strings.Replace(buildManifest, "epoch:", "epoc:", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := run(t, "build", m)
	if code != 2 || !strings.Contains(errOut, "m.yaml:5:3") {
		t.Errorf("unknown field: exit %d, %q; want 2 and m.yaml:5:3", code, errOut)
	}
	// A key that does not load is the manifest's problem: 2, naming the line.
	if err := os.WriteFile(m, []byte(strings.Replace(buildManifest, "key: mfr.key", "key: nokey.key", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = run(t, "build", m)
	if code != 2 || !strings.Contains(errOut, "nokey.key") {
		t.Errorf("missing key: exit %d, %q; want 2 naming nokey.key", code, errOut)
	}
}

// TestBuildUnreadableFile runs the build as an unprivileged user (root reads
// everything) and expects exit 1 naming the file, and no output.
func TestBuildUnreadableFile(t *testing.T) {
	testenv.NeedRoot(t) // to switch to an unprivileged user below
	dir := buildProject(t)
	// This test binary runs main under the name imaforge (TestMain): a copy
	// the unprivileged user can run.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "imaforge")
	if err := os.WriteFile(bin, exe, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Dir(bin), 0o755)
	// The tree belongs to nobody, but one file is readable by root only.
	filepath.Walk(dir, func(p string, _ os.FileInfo, _ error) error { return os.Lchown(p, 65534, 65534) })
	os.Chmod(dir, 0o755)
	secret := filepath.Join(dir, "src", "sub", "b")
	os.Chown(secret, 0, 0)
	os.Chmod(secret, 0o600)
	for d := filepath.Dir(dir); d != "/"; d = filepath.Dir(d) {
		os.Chmod(d, 0o755) // t.TempDir parents are 0700
	}

	cmd := exec.Command(bin, "build", "--quiet", filepath.Join(dir, "m.yaml"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() == 0 {
		t.Fatalf("build with an unreadable file: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "sub/b") || !strings.Contains(string(out), "permission denied") {
		t.Errorf("error does not name the file and the cause:\n%s", out)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "out")); len(ents) != 0 {
		t.Errorf("output left behind: %d entries in out/", len(ents))
	}
}
