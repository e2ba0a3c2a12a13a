package pipeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// refusalManifest adds to manifestTmpl (whose /var/** is unsigned) a
// policy fragment that appraises every executable on SquashFS: the
// build's own policy would make the kernel refuse /var/log/boot.log
// (0755 in the test tree).
const refusalPolicy = `policy:
  - name: base
    path: /etc/ima/policy.d/base.policy
    key: manufacturer
    presets: [squashfs-exec]
`

func refusalProject(t *testing.T, extra string) (*project, string) {
	t.Helper()
	p := newProject(t)
	writeTree(t, filepath.Join(p.dir, "src"), sortedPaths(false), 0o755)
	return p, fmt.Sprintf(manifestTmpl, "gzip", "src") + refusalPolicy + extra
}

// warnings returns the logged lines that name the manifest, sorted.
func warnings(logs []string) []string {
	var out []string
	for _, l := range logs {
		if strings.Contains(l, "m.yaml:") {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return out
}

// TestBuildPolicyRefusal: a file the build's own policy fragments would
// make the kernel refuse (an unsigned executable under an appraise rule)
// is a warning at the fragment's manifest line, and an error under
// --strict, before any file is read (was: the build said nothing; verify
// found it afterwards). MakePlan and Check print the same warnings.
func TestBuildPolicyRefusal(t *testing.T) {
	p, body := refusalProject(t, "")
	m := p.manifest(t, "", "", body)
	var logs []string
	logf := func(f string, a ...any) { logs = append(logs, fmt.Sprintf(f, a...)) }
	if _, err := Build(context.Background(), Options{Manifest: m, ToolVersion: "test", Logf: logf}); err != nil {
		t.Fatal(err)
	}
	want := `m.yaml:23:5: policy fragment "base" would make the kernel refuse /var/log/boot.log of this image: it has no security.ima (rule base:`
	buildWarnings := warnings(logs)
	if !strings.Contains(strings.Join(buildWarnings, "\n"), want) {
		t.Errorf("build warnings lack\n%s\n%s", want, strings.Join(logs, "\n"))
	}
	for _, l := range buildWarnings {
		if strings.Contains(l, "/usr/bin/tool") || strings.Contains(l, "/etc/conf") {
			t.Errorf("a signed or non-executable file is predicted refused: %s", l)
		}
	}

	logs = nil
	if _, err := MakePlan(context.Background(), PlanOptions{Manifest: m, ToolVersion: "test", Logf: logf}); err != nil {
		t.Fatal(err)
	}
	if got := warnings(logs); !slices.Equal(got, buildWarnings) {
		t.Errorf("plan warnings\n%s\nwant the build's\n%s", strings.Join(got, "\n"), strings.Join(buildWarnings, "\n"))
	}
	logs = nil
	if err := Check(context.Background(), m, CheckOptions{Logf: logf}); err != nil {
		t.Fatal(err)
	}
	if got := warnings(logs); !slices.Equal(got, buildWarnings) {
		t.Errorf("check warnings\n%s\nwant the build's\n%s", strings.Join(got, "\n"), strings.Join(buildWarnings, "\n"))
	}

	integMust(t, os.RemoveAll(filepath.Join(p.dir, "out")))
	var prog startProgress
	_, err := Build(context.Background(), Options{Manifest: m, ToolVersion: "test", Strict: true, Progress: &prog})
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("--strict: %v", err)
	}
	if prog.started {
		t.Error("the --strict build read files first")
	}
	if _, err := MakePlan(context.Background(), PlanOptions{Manifest: m, Strict: true}); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("plan --strict: %v", err)
	}
	if err := Check(context.Background(), m, CheckOptions{Strict: true}); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("check --strict: %v", err)
	}

	// Signed, the same executable passes.
	m = p.manifest(t, "", "", strings.Replace(body, "    sign: false\n", "    key: manufacturer\n", 1))
	logs = nil
	if err := Check(context.Background(), m, CheckOptions{Logf: logf}); err != nil || strings.Contains(strings.Join(logs, "\n"), "would make the kernel refuse") {
		t.Errorf("all signed: %v\n%s", err, strings.Join(logs, "\n"))
	}
}

// TestCheckAllErrors: Check reports every problem at once, each at its
// manifest line: two policy fragments the kernel would reject and a key
// whose certificate is missing (was: a build stopped at the first, and
// manifest check only parsed).
func TestCheckAllErrors(t *testing.T) {
	p, body := refusalProject(t, `  - name: bad1
    path: /etc/ima/policy.d/bad1.policy
    key: manufacturer
    rules: |
      appraise func=NO_SUCH_HOOK
  - name: bad2
    path: /etc/ima/policy.d/bad2.policy
    key: manufacturer
    rules: |
      measure fowner=x
`)
	body = strings.Replace(body, "cert: keys/ten.pem", "cert: keys/missing.pem", 1)
	m := p.manifest(t, "", "", body)
	err := Check(context.Background(), m, CheckOptions{})
	if err == nil {
		t.Fatal("Check passed")
	}
	for _, want := range []string{
		"m.yaml:31:16: policy fragment \"bad1\"",
		"m.yaml:36:15: policy fragment \"bad2\"",
		`m.yaml:11:11: key "tenant"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}
