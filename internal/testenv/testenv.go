// Package testenv holds helpers for tests that need real peer tools
// (evmctl, unsquashfs, sqfs2tar, softhsm2, qemu) or root (a tmpfs to fill).
//
// Outside CI a missing peer skips the test with the command that installs it;
// under CI (CI=true) a missing peer fails the test, so a green CI always means
// the peers were really consulted.
package testenv

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
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

// Tmpfs mounts a tmpfs of size bytes on a new directory and returns it, for
// tests of a real full or read-only file system; the test unmounts it. It
// needs root (NeedRoot) and CAP_SYS_ADMIN (missing: a skip, a failure
// under CI=true); any other failure to mount fails the test.
func Tmpfs(t testing.TB, size int64) string {
	t.Helper()
	NeedRoot(t)
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d,mode=0755", size)); err != nil {
		if errors.Is(err, unix.EPERM) {
			// root without CAP_SYS_ADMIN (an unprivileged container)
			missing(t, "mount a tmpfs on %s: %v (needs CAP_SYS_ADMIN)", dir, err)
		}
		t.Fatalf("mount a tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// Remount remounts the file system at dir with flags (unix.MS_RDONLY, or 0
// for read-write) and the mount options opts ("size=64m").
func Remount(t testing.TB, dir string, flags uintptr, opts string) {
	t.Helper()
	if err := unix.Mount("", dir, "", unix.MS_REMOUNT|flags, opts); err != nil {
		t.Fatalf("remount %s (%q): %v", dir, opts, err)
	}
}
