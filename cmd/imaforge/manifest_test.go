package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"

	"github.com/imaforge/imaforge/internal/testenv"
	"github.com/imaforge/imaforge/manifest"
)

func TestManifestSchemaCLI(t *testing.T) {
	out, _, code := runCLI(t, "manifest", "schema")
	if code != 0 || out != string(manifest.Schema()) {
		t.Errorf("manifest schema: exit %d, output differs from manifest.Schema()", code)
	}
}

func TestManifestCheckLsCLI(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("a/etc/hostname", "a\n")
	write("b/etc/hostname", "b\n")
	os.Chmod(filepath.Join(dir, "a"), 0o755)
	good := write("good.yaml", "version: 1\nimage: {owner: {uid: 0, gid: 0}}\nsources: [{from: a}, {from: b}]\n"+
		"overrides: [{match: /nothing, uid: 1}]\nrules: [{match: /**, sign: false}]\n")
	if out, errOut, code := runCLI(t, "manifest", "check", good); code != 0 || !strings.HasSuffix(out, "good.yaml: ok: 2 sources, 0 entries, 0 keys, 1 rules\n") {
		t.Errorf("check: exit %d %q %q", code, out, errOut)
	}
	out, errOut, code := runCLI(t, "manifest", "ls", "-v", good)
	want := "drwxr-xr-x 0/0 0 \"/\"\ndrwxr-xr-x 0/0 0 \"/etc\"\n-rw-r--r-- 0/0 2 \"/etc/hostname\"\n"
	if code != 0 || out != want || !strings.Contains(errOut, "note: /etc/hostname: sources[1]") ||
		!strings.Contains(errOut, "warning: "+good+":4:21: overrides[0] /nothing: override matches nothing") {
		t.Errorf("ls: exit %d\n%s\nstderr:\n%s", code, out, errOut)
	}
	if _, errOut, code := runCLI(t, "manifest", "ls", "--strict", good); code != 2 || !strings.Contains(errOut, "override matches nothing") {
		t.Errorf("ls --strict: exit %d %q", code, errOut)
	}
	bad := write("bad.yaml", "version: 1\nimage: {comprssion: zstd}\nsources: [{from: a, to: ../x}]\n")
	_, errOut, code = runCLI(t, "manifest", "check", bad)
	if code != 2 || !strings.Contains(errOut, bad+":2:9: unknown field \"comprssion\" in image (did you mean \"compression\"?)\n"+
		bad+":3:25: sources[0].to: path \"../x\" in the image must be absolute (start with /)") {
		t.Errorf("check bad: exit %d\n%s", code, errOut)
	}
	norule := write("norule.yaml", "version: 1\nsources: [{from: a}]\nrules: [{match: /var/**, sign: false}]\n")
	if _, errOut, code := runCLI(t, "manifest", "check", "--walk", norule); code != 2 || !strings.Contains(errOut, "no rule matches /etc/hostname") {
		t.Errorf("check --walk without a rule: exit %d %q", code, errOut)
	}
	missing := write("missing.yaml", "version: 1\nsources: [{from: nowhere}]\n")
	if _, errOut, code := runCLI(t, "manifest", "check", "--walk", missing); code != 2 || !strings.Contains(errOut, missing+":2:18: sources[0].from: stat ") {
		t.Errorf("check --walk, missing source: exit %d %q", code, errOut)
	}
}

// TestRootlessBuild is issue 10's check: one image, identical to the byte,
// built three ways: as root from a directory with real device nodes, owners
// and a setuid program; as an unprivileged user from a copy owned by that
// user, without the device, plus manifest entries and overrides; and as the
// unprivileged user from a tarball of the root tree (GNU tar, gzip). Every
// file is signed. unsquashfs -lln shows what was declared.
func TestRootlessBuild(t *testing.T) {
	testenv.NeedRoot(t)
	unsquashfs := testenv.NeedTool(t, "unsquashfs")
	tarBin := testenv.NeedTool(t, "tar")
	const nobody = 65534
	dir, err := os.MkdirTemp("", "imaforge-rootless-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	run := func(name string, args ...string) {
		t.Helper()
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	write := func(rel, content string, mode uint32) {
		t.Helper()
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	// The test binary and the key, readable by the unprivileged user.
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	run("cp", exe, filepath.Join(dir, "imaforge")) // runs main under this name (TestMain)
	for _, f := range []string{"rsa2048.key", "rsa2048.pem"} {
		run("install", "-m", "0644", filepath.Join("..", "..", "testdata", "signer", "keys", f), filepath.Join(dir, f))
	}
	// (a) the root tree
	write("root/etc/hostname", "device\n", 0o644)
	write("root/usr/bin/sudo", "sudo program", 0o755)
	write("root/home/user/.profile", "PATH=/bin\n", 0o644)
	if err := os.MkdirAll(filepath.Join(dir, "root/mnt/data"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "root/dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	run("ln", filepath.Join(dir, "root/usr/bin/sudo"), filepath.Join(dir, "root/usr/bin/sudoedit"))
	run("ln", "-s", "usr/bin", filepath.Join(dir, "root/bin"))
	run("chmod", "-R", "go+rX", dir)
	run("mknod", "-m", "0600", filepath.Join(dir, "root/dev/console"), "c", "5", "1")
	run("chown", "-R", "1000:1000", filepath.Join(dir, "root/home/user"))
	run("chmod", "4755", filepath.Join(dir, "root/usr/bin/sudo"))
	// (b) the build user's copy: owned by nobody, no device, no setuid
	run("cp", "-a", filepath.Join(dir, "root"), filepath.Join(dir, "user"))
	os.Remove(filepath.Join(dir, "user/dev/console"))
	run("chown", "-R", fmt.Sprintf("%d:%d", nobody, nobody), filepath.Join(dir, "user"))
	run("chmod", "0755", filepath.Join(dir, "user/usr/bin/sudo"))
	// (c) a tarball of the root tree
	run(tarBin, "--numeric-owner", "-C", filepath.Join(dir, "root"), "-czf", filepath.Join(dir, "root.tar.gz"), ".")
	run("chmod", "0644", filepath.Join(dir, "root.tar.gz"))
	if err := os.MkdirAll(filepath.Join(dir, "out"), 0o777); err != nil {
		t.Fatal(err)
	}
	run("chmod", "0777", filepath.Join(dir, "out"))

	common := "version: 1\nhash: sha256\nkeys:\n  k: {cert: rsa2048.pem, key: rsa2048.key}\nrules:\n  - {match: /**, key: k}\n"
	write("a.yaml", common+"image: {output: out/a.sqsh, compression: gzip, epoch: 1700000000}\nsources: [{from: root}]\n", 0o644)
	write("b.yaml", common+`image: {output: out/b.sqsh, compression: gzip, epoch: 1700000000, owner: {uid: 0, gid: 0}}
sources: [{from: user}]
entries:
  - {path: /dev/console, type: char, mode: 0600, major: 5, minor: 1}
overrides:
  - {match: "/home/user{,/**}", uid: 1000, gid: 1000}
  - {match: "/usr/bin/sudo{,edit}", mode: 04755}
`, 0o644)
	write("c.yaml", common+"image: {output: out/c.sqsh, compression: gzip, epoch: 1700000000}\nsources: [{from: root.tar.gz}]\n", 0o644)

	if _, errOut, code := runCLI(t, "build", "-q", filepath.Join(dir, "a.yaml")); code != 0 {
		t.Fatalf("build as root: exit %d\n%s", code, errOut)
	}
	for _, m := range []string{"b.yaml", "c.yaml"} {
		cmd := exec.Command(filepath.Join(dir, "imaforge"), "build", "-q", m)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "TMPDIR="+filepath.Join(dir, "out"))
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody, Groups: []uint32{}}}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build %s as uid %d: %v\n%s", m, nobody, err, out)
		}
	}
	sum := func(name string) string {
		f, err := os.Open(filepath.Join(dir, "out", name))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		h := sha256.New()
		io.Copy(h, f)
		return fmt.Sprintf("%x", h.Sum(nil))
	}
	a, b, c := sum("a.sqsh"), sum("b.sqsh"), sum("c.sqsh")
	if a != b || a != c {
		t.Fatalf("images differ: root dir %s, unprivileged dir + entries + overrides %s, unprivileged tarball %s", a, b, c)
	}
	st, _ := os.Stat(filepath.Join(dir, "out", "b.sqsh"))
	if st.Sys().(*syscall.Stat_t).Uid != nobody {
		t.Errorf("b.sqsh was not built by uid %d", nobody)
	}
	out, err := exec.Command(unsquashfs, "-lln", filepath.Join(dir, "out", "b.sqsh")).CombinedOutput()
	if err != nil {
		t.Fatalf("unsquashfs -lln: %v\n%s", err, out)
	}
	for _, re := range []string{
		`(?m)^crw------- 0/0 +5, +1 .* squashfs-root/dev/console$`,
		`(?m)^-rwsr-xr-x 0/0 +12 .* squashfs-root/usr/bin/sudo$`,
		`(?m)^-rwsr-xr-x 0/0 +12 .* squashfs-root/usr/bin/sudoedit$`,
		`(?m)^drwxr-xr-x 1000/1000 .* squashfs-root/home/user$`,
		`(?m)^-rw-r--r-- 1000/1000 +10 .* squashfs-root/home/user/.profile$`,
		`(?m)^lrwxrwxrwx 0/0 .* squashfs-root/bin -> usr/bin$`,
		`(?m)^drwxr-xr-x 0/0 .* squashfs-root/mnt/data$`,
	} {
		if !regexp.MustCompile(re).Match(out) {
			t.Errorf("unsquashfs -lln lacks %s:\n%s", re, out)
		}
	}
}

// TestRootlessBadInput checks issue 10's bad inputs through imaforge build:
// each is a clear error, exit 2, and leaves no image.
func TestRootlessBadInput(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "r/dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "r/dev/console"), []byte("a file"), 0o644); err != nil {
		t.Fatal(err)
	}
	var tarball bytes.Buffer
	tw := tar.NewWriter(&tarball)
	tw.WriteHeader(&tar.Header{Name: "../escape", Mode: 0o644, Size: 1, Typeflag: tar.TypeReg})
	tw.Write([]byte("x"))
	tw.Close()
	if err := os.WriteFile(filepath.Join(dir, "evil.tar"), tarball.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	const head = "version: 1\nimage: {output: out.sqsh}\nrules: [{match: /**, sign: false}]\n"
	tests := []struct {
		name, yaml string
		flags      []string
		want       string
	}{
		{"override matching nothing, strict", "sources: [{from: r}]\noverrides: [{match: /home/**, uid: 1000}]\n", []string{"--strict"},
			"m.yaml:5:21: overrides[0] /home/**: override matches nothing"},
		{"entry colliding with a source file", "sources: [{from: r}]\nentries: [{path: /dev/console, type: char, major: 5, minor: 1}]\n", nil,
			"m.yaml:5:11: /dev/console: a regular file from sources[0]"},
		{"device without minor", "entries: [{path: /dev/null, type: char, major: 1}]\n", nil,
			"m.yaml:4:11: entry /dev/null: a char device needs major and minor"},
		{"tar member with ..", "sources: [{from: evil.tar}]\n", nil,
			`member "../escape" has a .. component`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := filepath.Join(dir, "m.yaml")
			if err := os.WriteFile(m, []byte(head+tt.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			_, errOut, code := runCLI(t, append(append([]string{"build", "-q"}, tt.flags...), m)...)
			if code != 2 || !strings.Contains(errOut, tt.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant …%s…", code, errOut, tt.want)
			}
			if _, err := os.Stat(filepath.Join(dir, "out.sqsh")); err == nil {
				t.Error("an image was left behind")
			}
		})
	}
	// Without --strict, an override matching nothing is a warning.
	m := filepath.Join(dir, "m.yaml")
	if err := os.WriteFile(m, []byte(head+"sources: [{from: r}]\noverrides: [{match: /home/**, uid: 1000}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := runCLI(t, "build", m); code != 0 || !strings.Contains(errOut, "override matches nothing") {
		t.Errorf("warning: exit %d\n%s", code, errOut)
	}
}

// TestManifestCheckAllErrors: manifest check runs the checks past parsing
// (certificates, policy lint) and prints every problem at once, each at its
// file:line:col, exit 2 (was: exit 0, "ok", as only the YAML was checked).
func TestManifestCheckAllErrors(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "src", "bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "src", "bin", "app"), []byte("app"), 0o755); err != nil {
		t.Fatal(err)
	}
	m := filepath.Join(dir, "m.yaml")
	if err := os.WriteFile(m, []byte(`version: 1
image: {output: out/img.sqsh}
keys:
  a: {cert: nope-a.pem, key: a.key}
  b: {cert: nope-b.pem, key: b.key}
sources: [{from: src/}]
rules: [{match: /**, key: a}]
policy:
  - name: one
    path: /etc/ima/one.policy
    key: b
    rules: "appraise func=NO_SUCH_HOOK"
  - name: two
    path: /etc/ima/two.policy
    key: b
    rules: "measure fowner=x"
`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := runCLI(t, "manifest", "check", m)
	for _, want := range []string{m + ":4:6: key \"a\"", m + ":5:6: key \"b\"", m + ":12:12: policy fragment \"one\"", m + ":16:12: policy fragment \"two\""} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q", want)
		}
	}
	if code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if t.Failed() {
		t.Logf("stderr:\n%s", errOut)
	}
}
