package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rhysd/actionlint"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"gopkg.in/yaml.v3"

	"github.com/imaforge/imaforge/internal/testenv"
)

// The integrations in contrib/ run here as their hosts would run them, with
// the real imaforge on PATH (TestMain): the Yocto class's image function
// with bitbake's variables set, the Buildroot post-image script with
// Buildroot's arguments and environment, the CI jobs' commands, and the RAUC
// recipe's bundle checked by rauc itself. The CI files are also checked by
// actionlint and by GitLab's CI schema.

var contribDir = filepath.Join("..", "..", "contrib")

// devProject makes `imaforge init` development keys and a sample rootfs in
// dir: an executable, a library, a log file, a symlink.
func devProject(t *testing.T, dir string) (keys, rootfs string) {
	t.Helper()
	if _, errOut, code := runCLIIn(t, dir, "init", "proj"); code != 0 {
		t.Fatalf("init: exit %d: %s", code, errOut)
	}
	keys = filepath.Join(dir, "proj", "dev-keys")
	rootfs = filepath.Join(dir, "rootfs")
	for p, body := range map[string]string{
		"usr/bin/hello":      "#!/bin/sh\necho hello\n",
		"lib/libc.so.6":      "not really libc\n",
		"var/log/messages":   "boot\n",
		"etc/fstab":          "/dev/root / squashfs ro 0 0\n",
		"usr/share/doc/READ": "doc\n",
	} {
		f := filepath.Join(rootfs, p)
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("hello", filepath.Join(rootfs, "usr/bin/hi")); err != nil {
		t.Fatal(err)
	}
	return keys, rootfs
}

func runCLIIn(t *testing.T, dir string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command("imaforge", args...)
	cmd.Dir = dir
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	if err := cmd.Run(); err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			t.Fatal(err)
		}
		code = ee.ExitCode()
	}
	return o.String(), e.String(), code
}

// verifyOK runs imaforge verify with the development keys and requires
// result OK; it returns the listing of the image's xattrs.
func verifyOK(t *testing.T, image, keys string) string {
	t.Helper()
	out, errOut, code := runCLI(t, "verify", image, "--root", filepath.Join(keys, "root.pem"),
		"--crl", filepath.Join(keys, "root.crl"), "--cert", filepath.Join(keys, "ima.pem"))
	if code != 0 || !strings.Contains(out, "result: OK") {
		t.Fatalf("verify %s: exit %d\n%s%s", image, code, out, errOut)
	}
	ls, errOut, code := runCLI(t, "squashfs", "ls", "-l", "--xattrs", image)
	if code != 0 {
		t.Fatalf("squashfs ls: %s", errOut)
	}
	return ls
}

// signedPaths returns the paths of entries listed with security.ima.
func signedPaths(ls string) map[string]bool {
	signed := map[string]bool{}
	last := ""
	for _, l := range strings.Split(ls, "\n") {
		if strings.HasPrefix(l, "\tsecurity.ima=") {
			signed[last] = true
		} else if f := strings.Fields(l); len(f) > 0 && !strings.HasPrefix(l, "\t") {
			last = f[len(f)-1]
			if i := strings.Index(l, " -> "); i >= 0 {
				last = strings.Fields(l[:i])[len(strings.Fields(l[:i]))-1]
			}
		}
	}
	return signed
}

var bbDefault = regexp.MustCompile(`^([A-Z0-9_]+) \?= "(.*)"$`)

// bbFunction returns the class's `?=` defaults as shell assignments that
// keep a value already set, and the body of shell function name.
func bbFunction(t *testing.T, class, name string) (defaults, body string) {
	t.Helper()
	f, err := os.Open(class)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var d, b strings.Builder
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case in && l == "}":
			in = false
		case in:
			b.WriteString(l + "\n")
		case l == name+" () {":
			in = true
		default:
			if m := bbDefault.FindStringSubmatch(l); m != nil {
				if strings.Contains(m[2], "${@") {
					t.Fatalf("%s: %s: inline python cannot be run without bitbake", class, l)
				}
				fmt.Fprintf(&d, "[ -n \"${%s+set}\" ] || %s=\"%s\"\n", m[1], m[1], m[2])
			}
		}
	}
	if b.Len() == 0 {
		t.Fatalf("%s: no shell function %s", class, name)
	}
	return d.String(), b.String()
}

// TestYoctoClass runs imaforge.bbclass's image function as bitbake would
// (sh -e, bitbake's variables, bbnote and bbfatal) on a sample rootfs, set
// up with meta-integrity's variable names: the image verifies, /var is left
// unsigned as IMAFORGE_UNSIGNED says, a second run (do_image again) gives
// the same bytes, and without a key it stops with bbfatal and no image.
func TestYoctoClass(t *testing.T) {
	sh := testenv.NeedTool(t, "sh")
	testenv.NeedTool(t, "tar")
	dir := t.TempDir()
	keys, rootfs := devProject(t, dir)
	defaults, body := bbFunction(t, filepath.Join(contribDir, "yocto", "imaforge.bbclass"), "imaforge_build_image")
	deploy := filepath.Join(dir, "deploy")
	vars := map[string]string{
		"WORKDIR": filepath.Join(dir, "work"), "IMGDEPLOYDIR": deploy, "IMAGE_ROOTFS": rootfs,
		"IMAGE_NAME": "core-image-minimal-qemux86-64-20261204", "IMAGE_NAME_SUFFIX": ".rootfs",
		"SOURCE_DATE_EPOCH": "1700000000",
		"IMA_EVM_PRIVKEY":   filepath.Join(keys, "ima.key"), "IMA_EVM_X509": filepath.Join(keys, "ima.pem"),
		"IMA_EVM_ROOT_CA": filepath.Join(keys, "root.pem"), "IMAFORGE_CRLS": filepath.Join(keys, "root.crl"),
		"IMAFORGE_UNSIGNED": "/var/**",
	}
	script := func(vars map[string]string) string {
		var s strings.Builder
		s.WriteString("bbnote() { echo \"NOTE: $*\"; }\nbbfatal() { echo \"ERROR: $*\" >&2; exit 1; }\n")
		for k, v := range vars {
			fmt.Fprintf(&s, "%s='%s'\n", k, v)
		}
		s.WriteString(defaults)
		fmt.Fprintf(&s, "imaforge_build_image() {\n%s}\nimaforge_build_image\n", body)
		return s.String()
	}
	run := func(vars map[string]string) (string, error) {
		out, err := exec.Command(sh, "-e", "-c", script(vars)).CombinedOutput()
		return string(out), err
	}
	shellcheck(t, "imaforge.bbclass:imaforge_build_image", script(vars))
	out, err := run(vars)
	if err != nil {
		t.Fatalf("imaforge_build_image: %v\n%s", err, out)
	}
	image := filepath.Join(deploy, "core-image-minimal-qemux86-64-20261204.rootfs.imaforge")
	if !strings.Contains(out, "NOTE: imaforge: signing "+rootfs+" into "+image) {
		t.Errorf("output %q", out)
	}
	signed := signedPaths(verifyOK(t, image, keys))
	for p, want := range map[string]bool{"/usr/bin/hello": true, "/lib/libc.so.6": true, "/etc/fstab": true, "/var/log/messages": false} {
		if signed[p] != want {
			t.Errorf("%s signed: %v, want %v (signed: %v)", p, signed[p], want, signed)
		}
	}
	if _, err := os.Stat(image + ".record.json"); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "work", "imaforge", "rootfs.tar")); !os.IsNotExist(err) {
		t.Errorf("the rootfs tarball was left behind: %v", err)
	}
	first, _ := os.ReadFile(image)
	if out, err := run(vars); err != nil {
		t.Fatalf("second run: %v\n%s", err, out)
	}
	if again, _ := os.ReadFile(image); !bytes.Equal(first, again) || len(first) == 0 {
		t.Error("do_image run again gave other bytes")
	}

	// IMAFORGE_MANIFEST: the user's manifest, its output replaced by the
	// deploy path; its sources name the rootfs tarball
	own := filepath.Join(dir, "own.yaml")
	must(t, os.WriteFile(own, []byte("version: 1\nimage:\n  output: somewhere/else.sqsh\n  compression: gzip\n  owner: {uid: 0, gid: 0}\n"+
		"trust: {roots: ["+filepath.Join(keys, "root.pem")+"], crls: ["+filepath.Join(keys, "root.crl")+"]}\n"+
		"keys:\n  dev: {cert: "+filepath.Join(keys, "ima.pem")+", key: "+filepath.Join(keys, "ima.key")+"}\n"+
		"sources:\n  - {from: rootfs.tar, to: /}\nrules:\n  - {match: /**, key: dev}\n"), 0o644))
	vars["IMAFORGE_MANIFEST"] = own
	vars["IMAGE_NAME"] = "own"
	if out, err := run(vars); err != nil {
		t.Fatalf("with IMAFORGE_MANIFEST: %v\n%s", err, out)
	}
	if signed := signedPaths(verifyOK(t, filepath.Join(deploy, "own.rootfs.imaforge"), keys)); !signed["/var/log/messages"] {
		t.Errorf("with IMAFORGE_MANIFEST (every file signed): %v", signed)
	}
	delete(vars, "IMAFORGE_MANIFEST")

	// no key: bbfatal, nothing deployed
	vars["IMGDEPLOYDIR"] = filepath.Join(dir, "deploy2")
	vars["IMA_EVM_PRIVKEY"] = ""
	out, err = run(vars)
	if err == nil || !strings.Contains(out, "ERROR: imaforge: set IMAFORGE_KEY") {
		t.Errorf("without a key: %v\n%s", err, out)
	}
	if ents, _ := os.ReadDir(vars["IMGDEPLOYDIR"]); len(ents) != 0 {
		t.Errorf("without a key something was deployed: %v", ents)
	}
}

// TestBuildrootPostImage runs contrib/buildroot/post-image.sh as Buildroot
// does: from the Buildroot tree, the images directory as $1 and
// BR2_ROOTFS_POST_SCRIPT_ARGS after it, its variables in the environment.
// From TARGET_DIR the files are root's; from images/rootfs.tar they keep
// the tarball's owners. A key that does not chain to the root fails.
func TestBuildrootPostImage(t *testing.T) {
	sh := testenv.NeedTool(t, "sh")
	testenv.NeedTool(t, "tar")
	dir := t.TempDir()
	keys, rootfs := devProject(t, dir)
	script, err := filepath.Abs(filepath.Join(contribDir, "buildroot", "post-image.sh"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(script)
	must(t, err)
	shellcheck(t, "post-image.sh", string(b))
	base := filepath.Join(dir, "output")
	images := filepath.Join(base, "images")
	for _, d := range []string{images, filepath.Join(base, "build"), filepath.Join(dir, "buildroot")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	post := func(args ...string) (string, error) {
		cmd := exec.Command(sh, append([]string{script, images}, args...)...)
		cmd.Dir = filepath.Join(dir, "buildroot")
		cmd.Env = append(os.Environ(), "BASE_DIR="+base, "BINARIES_DIR="+images, "TARGET_DIR="+rootfs,
			"BUILD_DIR="+filepath.Join(base, "build"), "HOST_DIR="+filepath.Join(base, "host"),
			"BR2_CONFIG="+filepath.Join(dir, "buildroot", ".config"), "SOURCE_DATE_EPOCH=1700000000")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	trust := []string{"--key", filepath.Join(keys, "ima.key"), "--cert", filepath.Join(keys, "ima.pem"),
		"--root", filepath.Join(keys, "root.pem"), "--crl", filepath.Join(keys, "root.crl"), "--unsigned", "/var/**"}
	out, err := post(trust...)
	if err != nil {
		t.Fatalf("post-image.sh: %v\n%s", err, out)
	}
	image := filepath.Join(images, "rootfs.imaforge.sqsh")
	if !strings.Contains(out, "owned by root") {
		t.Errorf("output %q", out)
	}
	ls := verifyOK(t, image, keys)
	if !strings.Contains(ls, " 0/0 ") || signedPaths(ls)["/var/log/messages"] || !signedPaths(ls)["/usr/bin/hello"] {
		t.Errorf("from TARGET_DIR:\n%s", ls)
	}
	var rep struct{ OK bool }
	if b, err := os.ReadFile(filepath.Join(images, "rootfs.imaforge.verify.json")); err != nil || json.Unmarshal(b, &rep) != nil || !rep.OK {
		t.Errorf("verify.json: %v %+v", err, rep)
	}

	// Buildroot's rootfs.tar, made under fakeroot: its owners are kept
	tarArgs := []string{"-C", rootfs, "--owner=1000", "--group=1000", "--numeric-owner", "-cf", filepath.Join(images, "rootfs.tar"), "."}
	if out, err := exec.Command("tar", tarArgs...).CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	if out, err = post(trust...); err != nil || !strings.Contains(out, "signing "+filepath.Join(images, "rootfs.tar")) {
		t.Fatalf("post-image.sh with rootfs.tar: %v\n%s", err, out)
	}
	if ls := verifyOK(t, image, keys); !strings.Contains(ls, " 1000/1000 ") {
		t.Errorf("rootfs.tar's owners not kept:\n%s", ls)
	}

	// a certificate that is not the key's: the build fails, exit non-zero
	bad := append([]string(nil), trust...)
	bad[3] = filepath.Join(keys, "root.pem")
	if out, err := post(bad...); err == nil {
		t.Errorf("a CA certificate as the signing certificate built:\n%s", out)
	}
}

// ciSteps returns the shell commands of the jobs in order: GitHub's `run:`
// steps (with their env) but the one that installs imaforge, GitLab's
// script lines.
type ciStep struct {
	name string
	env  map[string]string
	run  string
}

// TestCIJobs lints the GitHub workflow with actionlint and validates the
// GitLab job against GitLab's CI schema (both must also reject a broken
// copy), then runs each job's build, verify and record steps on a project
// made by imaforge init, with the secret key as the job would get it.
func TestCIJobs(t *testing.T) {
	bash := testenv.NeedTool(t, "bash")
	gh, err := os.ReadFile(filepath.Join(contribDir, "ci", "github-actions.yml"))
	if err != nil {
		t.Fatal(err)
	}
	gl, err := os.ReadFile(filepath.Join(contribDir, "ci", "gitlab-ci.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if errs := lintWorkflow(t, gh); len(errs) > 0 {
		t.Errorf("actionlint: %v", errs)
	}
	if errs := lintWorkflow(t, bytes.Replace(gh, []byte("runs-on:"), []byte("run-on:"), 1)); len(errs) == 0 {
		t.Error("actionlint accepts a job without runs-on")
	}
	schema := gitlabSchema(t)
	if err := validateYAML(schema, gl); err != nil {
		t.Errorf("gitlab-ci.yml: %v", err)
	}
	if err := validateYAML(schema, bytes.Replace(gl, []byte("expire_in:"), []byte("expires_in:"), 1)); err == nil {
		t.Error("the schema accepts artifacts:expires_in")
	}

	var w struct {
		Env  map[string]string
		Jobs map[string]struct {
			Steps []struct {
				Name string
				Env  map[string]string
				Run  string
			}
		}
	}
	if err := yaml.Unmarshal(gh, &w); err != nil {
		t.Fatal(err)
	}
	var g struct {
		Variables map[string]string
		Job       struct {
			BeforeScript []string `yaml:"before_script"`
			Script       []string
		} `yaml:"firmware-image"`
	}
	if err := yaml.Unmarshal(gl, &g); err != nil {
		t.Fatal(err)
	}
	glVars, glJob := g.Variables, g.Job
	shellcheck(t, "gitlab-ci.yml firmware-image", strings.Join(append(g.Job.BeforeScript, g.Job.Script...), "\n"))
	jobs := map[string][]ciStep{}
	for _, s := range w.Jobs["image"].Steps {
		if s.Run != "" && s.Name != "Install imaforge" {
			env := map[string]string{}
			for k, v := range w.Env {
				env[k] = v
			}
			for k, v := range s.Env {
				env[k] = v
			}
			jobs["github"] = append(jobs["github"], ciStep{s.Name, env, s.Run})
		}
	}
	for _, l := range glJob.Script {
		jobs["gitlab"] = append(jobs["gitlab"], ciStep{l, glVars, l})
	}
	if len(jobs["github"]) != 2 || len(jobs["gitlab"]) != 4 {
		t.Fatalf("steps: %d GitHub, %d GitLab", len(jobs["github"]), len(jobs["gitlab"]))
	}
	for name, steps := range jobs {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			keys, rootfs := devProject(t, dir)
			proj := filepath.Join(dir, "repo")
			// the repository: manifest, public certificates, rootfs; the
			// key comes from the CI secret
			must(t, os.MkdirAll(filepath.Join(proj, "pki"), 0o755))
			for _, f := range []string{"root.pem", "root.crl", "ima.pem"} {
				copyFile(t, filepath.Join(keys, f), filepath.Join(proj, "pki", f))
			}
			must(t, os.Rename(rootfs, filepath.Join(proj, "rootfs")))
			manifest := "version: 1\nimage: {output: out/firmware.sqsh, compression: zstd, epoch: 0, owner: {uid: 0, gid: 0}}\n" +
				"trust: {roots: [pki/root.pem], crls: [pki/root.crl]}\nkeys:\n  ima: {cert: pki/ima.pem, key: keys/ima.key}\n" +
				"sources:\n  - {from: rootfs/, to: /}\nrules:\n  - {match: /**, key: ima}\n"
			must(t, os.WriteFile(filepath.Join(proj, "firmware.yaml"), []byte(manifest), 0o644))
			key, err := os.ReadFile(filepath.Join(keys, "ima.key"))
			must(t, err)
			secret := map[string]string{"github": strings.TrimSpace(string(key)), "gitlab": filepath.Join(dir, "secret-file")}
			must(t, os.WriteFile(secret["gitlab"], key, 0o600))
			for _, s := range steps {
				cmd := exec.Command(bash, "-e", "-c", s.run)
				cmd.Dir = proj
				cmd.Env = append(os.Environ(), "IMA_SIGNING_KEY="+secret[name])
				for k, v := range s.env {
					if !strings.Contains(v, "${{") {
						cmd.Env = append(cmd.Env, k+"="+v)
					}
				}
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("step %q: %v\n%s", s.name, err, out)
				}
			}
			for _, f := range []string{"firmware.sqsh", "firmware.sqsh.record.json", "build.json", "verify.json"} {
				if _, err := os.Stat(filepath.Join(proj, "out", f)); err != nil {
					t.Errorf("kept file: %v", err)
				}
			}
			if _, err := os.Stat(filepath.Join(proj, "keys", "ima.key")); !os.IsNotExist(err) {
				t.Errorf("the private key was left in the workspace: %v", err)
			}
			var rep struct{ OK bool }
			b, _ := os.ReadFile(filepath.Join(proj, "out", "verify.json"))
			if json.Unmarshal(b, &rep) != nil || !rep.OK {
				t.Errorf("verify.json: %s", b)
			}
		})
	}
}

// shellcheck runs shellcheck on a POSIX sh script: no finding at all.
func shellcheck(t *testing.T, name, script string) {
	t.Helper()
	cmd := exec.Command(testenv.NeedTool(t, "shellcheck"), "-s", "sh", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("shellcheck %s: %v\n%s", name, err, out)
	}
}

// lintWorkflow runs actionlint, with shellcheck on the run: scripts.
func lintWorkflow(t *testing.T, content []byte) []*actionlint.Error {
	t.Helper()
	l, err := actionlint.NewLinter(io.Discard, &actionlint.LinterOptions{Shellcheck: testenv.NeedTool(t, "shellcheck")})
	if err != nil {
		t.Fatal(err)
	}
	errs, err := l.Lint(".github/workflows/firmware.yml", content, nil)
	if err != nil {
		t.Fatal(err)
	}
	return errs
}

// gitlabSchema compiles contrib/ci/testdata/gitlab-ci.schema.json (see the
// README there for its source and version).
func gitlabSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open(filepath.Join(contribDir, "ci", "testdata", "gitlab-ci.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("gitlab-ci.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("gitlab-ci.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// validateYAML validates a YAML document as the JSON it denotes.
func validateYAML(s *jsonschema.Schema, doc []byte) error {
	var v any
	if err := yaml.Unmarshal(doc, &v); err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		return err
	}
	return s.Validate(inst)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	must(t, err)
	must(t, os.WriteFile(to, b, 0o644))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestRAUCRecipe builds contrib/rauc/firmware.yaml with the bundle as its
// comment says, on keys under root -> owner CA, and checks the bundle with
// the real rauc against contrib/rauc/system.conf: `rauc info` verifies the
// signature with the recipe's keyring settings (check-purpose=codesign) and
// names the compatible and the rootfs slot image, and `rauc extract` gives
// back the image imaforge built, byte for byte; under another root CA rauc
// refuses the bundle.
func TestRAUCRecipe(t *testing.T) {
	bin := testenv.NeedTool(t, "rauc")
	src := raucProject(t) // pki/: root, owner-ca, their CRLs, mfr and release keys
	dir := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(dir, "keys"), 0o755))
	for to, from := range map[string]string{"root.pem": "root.pem", "owner-ca.pem": "owner-ca.pem", "root.crl": "root.crl",
		"owner-ca.crl": "owner-ca.crl", "ima.pem": "mfr.pem", "ima.key": "mfr.key", "release.pem": "release.pem", "release.key": "release.key"} {
		copyFile(t, filepath.Join(src, "pki", from), filepath.Join(dir, "keys", to))
	}
	must(t, os.Chmod(filepath.Join(dir, "keys", "ima.key"), 0o600))
	must(t, os.Chmod(filepath.Join(dir, "keys", "release.key"), 0o600))
	must(t, os.Rename(filepath.Join(src, "src"), filepath.Join(dir, "rootfs")))
	copyFile(t, filepath.Join(contribDir, "rauc", "firmware.yaml"), filepath.Join(dir, "firmware.yaml"))
	conf, err := filepath.Abs(filepath.Join(contribDir, "rauc", "system.conf"))
	must(t, err)
	compatible := ""
	b, err := os.ReadFile(conf)
	must(t, err)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "compatible="); ok {
			compatible = v
		}
	}
	if compatible == "" {
		t.Fatal("system.conf names no compatible")
	}
	bundle := func(name, compatible string) string {
		out := filepath.Join(dir, "out", name)
		if _, errOut, code := runCLIIn(t, dir, "build", "--quiet", "firmware.yaml", "--rauc-bundle", out,
			"--rauc-compatible", compatible, "--rauc-version", "1.0", "--rauc-slot", "rootfs"); code != 0 {
			t.Fatalf("build: exit %d: %s", code, errOut)
		}
		return out
	}
	good := bundle("update.raucb", compatible)
	root := filepath.Join(dir, "keys", "root.pem")
	info := exec.Command(bin, "--conf", conf, "--keyring", root, "info", "--output-format=json", good)
	out, err := info.Output()
	if err != nil {
		t.Fatalf("rauc info: %v\n%s", err, out)
	}
	var meta struct {
		Compatible string
		Images     []map[string]struct{ Filename string }
	}
	if err := json.Unmarshal(out, &meta); err != nil {
		t.Fatalf("rauc info --output-format=json: %v\n%s", err, out)
	}
	if meta.Compatible != compatible || len(meta.Images) != 1 || meta.Images[0]["rootfs"].Filename == "" {
		t.Fatalf("rauc info: %s", out)
	}
	ext := filepath.Join(dir, "extract")
	if out, err := exec.Command(bin, "--conf", conf, "--keyring", root, "extract", good, ext).CombinedOutput(); err != nil {
		t.Fatalf("rauc extract: %v\n%s", err, out)
	}
	got, err := os.ReadFile(filepath.Join(ext, meta.Images[0]["rootfs"].Filename))
	must(t, err)
	want, err := os.ReadFile(filepath.Join(dir, "out", "rootfs.sqsh"))
	must(t, err)
	if !bytes.Equal(got, want) {
		t.Errorf("the bundle's rootfs image (%d bytes) is not the image imaforge built (%d bytes)", len(got), len(want))
	}

	// rauc checks the signature: with another product's root as the
	// keyring the bundle is refused
	otherRoot := filepath.Join(raucProject(t), "pki", "root.pem")
	if out, err := exec.Command(bin, "--conf", conf, "--keyring", otherRoot, "info", good).CombinedOutput(); err == nil {
		t.Errorf("rauc info accepted the bundle under another root:\n%s", out)
	}
}
