// Package testenv holds helpers for tests that need real peer tools
// (evmctl, unsquashfs, sqfs2tar, softhsm2, qemu).
//
// Outside CI a missing peer skips the test with the command that installs it;
// under CI (CI=true) a missing peer fails the test, so a green CI always means
// the peers were really consulted.
package testenv

import (
	"os"
	"os/exec"
	"testing"
)

// InCI reports whether the tests run under CI (CI=true).
func InCI() bool { return os.Getenv("CI") == "true" }

// NeedTool returns the path of the named program, failing the test under CI
// and skipping it elsewhere when the program is missing.
func NeedTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		missing(t, "%s not found (run `make deps` to install the peer tools)", name)
	}
	return p
}

// NeedRoot fails under CI, or skips elsewhere, when the test does not run as root.
func NeedRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, "this test needs root")
	}
}

func missing(t testing.TB, format string, args ...any) {
	t.Helper()
	if InCI() {
		t.Fatalf("CI=true: "+format, args...)
	}
	t.Skipf(format, args...)
}
