package pipeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imaforge/imaforge/manifest"
	"github.com/imaforge/imaforge/rootfs"
)

// TestBuildIntent: a typo in a rule (/opt/tenat/**, matching nothing), a
// rule every file of which an earlier rule takes, a key no rule uses and a
// manifest without trust: are warnings naming their manifest line; under
// --strict (Options.Strict) they fail the build together, before any file
// is read, and leave no image. (Was: the build signed the tenant's files
// with the manufacturer key without a word.)
func TestBuildIntent(t *testing.T) {
	p := newProject(t)
	writeTree(t, filepath.Join(p.dir, "src"), sortedPaths(false), 0o755)
	body := strings.Replace(fmt.Sprintf(manifestTmpl, "gzip", "src"), "  - match: /opt/tenant/**\n    key: tenant\n",
		"  - match: /opt/tenat/**\n    key: tenant\n  - match: /usr/**\n    key: manufacturer\n  - match: /usr/bin/**\n    key: manufacturer\n", 1)
	m := p.manifest(t, "", "", body)
	var logs []string
	logf := func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }
	if _, err := Build(context.Background(), Options{Manifest: m, ToolVersion: "test", Logf: logf}); err != nil {
		t.Fatalf("build without --strict: %v", err)
	}
	all := strings.Join(logs, "\n")
	for _, want := range []string{
		"m.yaml:16:5: rule 1 (match: /opt/tenat/**) matches no file",
		"m.yaml:20:5: rule 3 (match: /usr/bin/**) is shadowed",
		`m.yaml:11:11: key "tenant" is used by no rule`,
		"no trust: section",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("warnings lack %q:\n%s", want, all)
		}
	}
	if err := os.RemoveAll(filepath.Join(p.dir, "out")); err != nil {
		t.Fatal(err)
	}
	var prog startProgress
	_, err := Build(context.Background(), Options{Manifest: m, ToolVersion: "test", Strict: true, Progress: &prog})
	if err == nil {
		t.Fatal("--strict build succeeded")
	}
	for _, want := range []string{"matches no file", "is shadowed", "used by no rule", "no trust"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("--strict error lacks %q: %v", want, err)
		}
	}
	if prog.started {
		t.Error("the --strict build read files first")
	}
	assertNoOutput(t, p)
}

// TestBuildStrictKeyPermissions: a private key file readable by group or
// others is a warning, and under --strict an error naming the key (was: a
// warning only).
func TestBuildStrictKeyPermissions(t *testing.T) {
	p := newProject(t)
	writeTree(t, filepath.Join(p.dir, "src"), sortedPaths(false), 0o755)
	m := p.manifest(t, "gzip", "src", "")
	if err := os.Chmod(filepath.Join(p.dir, "keys", "mfr.key"), 0o640); err != nil {
		t.Fatal(err)
	}
	var logs []string
	if _, err := Build(context.Background(), Options{Manifest: m, ToolVersion: "test", Logf: func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(logs, "\n"), "accessible by group or others") {
		t.Errorf("no permission warning: %q", logs)
	}
	// (Build --strict would stop first at this manifest's missing trust:.)
	opts := &Options{Manifest: m, Strict: true}
	_, err := opts.loadKeys(m, map[string]bool{"manufacturer": true, "tenant": true})
	if err == nil || !strings.Contains(err.Error(), "accessible by group or others") || !strings.Contains(err.Error(), `key "manufacturer"`) {
		t.Fatalf("--strict with a group-readable key: %v", err)
	}
}

// TestIntentWarningsAllocs: with every rule deciding some file (the usual
// case) intentWarnings allocates the same for 10 files as for 10,000: it
// made a list of every regular file's path first (16 MiB for a million
// files, before any rule needed it).
func TestIntentWarningsAllocs(t *testing.T) {
	m := &manifest.Manifest{Rules: []manifest.Rule{{}}}
	allocs := func(n int) float64 {
		es := make([]rootfs.Entry, n)
		lay := &layout{hits: map[*manifest.Rule]int{&m.Rules[0]: n}, tree: es}
		for i := range es {
			es[i] = rootfs.Entry{Path: fmt.Sprintf("/f%d", i), Type: rootfs.TypeReg}
			lay.entries = append(lay.entries, entryRef(i))
		}
		return testing.AllocsPerRun(5, func() {
			if errs := intentWarnings(m, lay); len(errs) != 0 {
				t.Fatalf("warnings %v, want none", errs)
			}
		})
	}
	if few, many := allocs(10), allocs(10000); many != few {
		t.Errorf("%v allocations with 10,000 files, %v with 10", many, few)
	}
}
