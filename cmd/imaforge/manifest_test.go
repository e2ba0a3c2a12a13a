package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imaforge/imaforge/manifest"
)

func runManifestCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	app := newApp()
	var out, errOut bytes.Buffer
	app.Writer, app.ErrWriter = &out, &errOut
	err := app.Run(append([]string{"imaforge"}, args...))
	code := 0
	if err != nil {
		code = 1
		var ee *exitError
		if errors.As(err, &ee) {
			code = ee.code
		}
		errOut.WriteString(err.Error())
	}
	return out.String(), errOut.String(), code
}

func TestManifestSchemaCLI(t *testing.T) {
	out, _, code := runManifestCLI(t, "manifest", "schema")
	if code != 0 || out != string(manifest.Schema()) {
		t.Errorf("manifest schema: exit %d, output differs from manifest.Schema()", code)
	}
}

func TestManifestCheckLsCLI(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
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
	if out, errOut, code := runManifestCLI(t, "manifest", "check", good); code != 0 || !strings.HasSuffix(out, "good.yaml: ok: 2 sources, 0 entries, 0 keys, 1 rules\n") {
		t.Errorf("check: exit %d %q %q", code, out, errOut)
	}
	out, errOut, code := runManifestCLI(t, "manifest", "ls", "-v", good)
	want := "drwxr-xr-x 0/0 0 \"/\"\ndrwxr-xr-x 0/0 0 \"/etc\"\n-rw-r--r-- 0/0 2 \"/etc/hostname\"\n"
	if code != 0 || out != want || !strings.Contains(errOut, "note: /etc/hostname: sources[1]") ||
		!strings.Contains(errOut, "warning: "+good+":4:21: overrides[0] /nothing: override matches nothing") {
		t.Errorf("ls: exit %d\n%s\nstderr:\n%s", code, out, errOut)
	}
	if _, errOut, code := runManifestCLI(t, "manifest", "ls", "--strict", good); code != 2 || !strings.Contains(errOut, "override matches nothing") {
		t.Errorf("ls --strict: exit %d %q", code, errOut)
	}
	bad := write("bad.yaml", "version: 1\nimage: {comprssion: zstd}\nsources: [{from: a, to: ../x}]\n")
	_, errOut, code = runManifestCLI(t, "manifest", "check", bad)
	if code != 2 || !strings.Contains(errOut, bad+":2:9: unknown field \"comprssion\" in image (did you mean \"compression\"?)\n"+
		bad+":3:25: sources[0].to: path \"../x\" in the image must be absolute (start with /)") {
		t.Errorf("check bad: exit %d\n%s", code, errOut)
	}
	norule := write("norule.yaml", "version: 1\nsources: [{from: a}]\nrules: [{match: /var/**, sign: false}]\n")
	if _, errOut, code := runManifestCLI(t, "manifest", "check", "--walk", norule); code != 2 || !strings.Contains(errOut, "no rule matches /etc/hostname") {
		t.Errorf("check --walk without a rule: exit %d %q", code, errOut)
	}
	missing := write("missing.yaml", "version: 1\nsources: [{from: nowhere}]\n")
	if _, errOut, code := runManifestCLI(t, "manifest", "check", "--walk", missing); code != 2 || !strings.Contains(errOut, missing+":2:18: sources[0].from: stat ") {
		t.Errorf("check --walk, missing source: exit %d %q", code, errOut)
	}
}
