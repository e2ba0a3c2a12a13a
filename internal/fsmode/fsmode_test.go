package fsmode

import (
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	for perm := uint32(0); perm <= 0o7777; perm++ {
		if got := Perm(FromPerm(perm)); got != perm {
			t.Fatalf("Perm(FromPerm(%#o)) = %#o", perm, got)
		}
	}
	// Type bits and bits above the 12 are ignored.
	if got := FromPerm(0o170755); got != 0o755 {
		t.Errorf("FromPerm(0o170755) = %v", got)
	}
	if got := Perm(fs.ModeDir | fs.ModeSetgid | 0o750); got != 0o2750 {
		t.Errorf("Perm(dir setgid 750) = %#o", got)
	}
}

// TestKernelAgrees: the mapping is the one the os package and the kernel use
// (chmod with Go's mode bits, stat's st_mode).
func TestKernelAgrees(t *testing.T) {
	dir := t.TempDir()
	for _, m := range []fs.FileMode{0o644, 0o755 | fs.ModeSetuid, 0o750 | fs.ModeSetgid, 0o1777&0o777 | fs.ModeSticky, 0o6711&0o777 | fs.ModeSetuid | fs.ModeSetgid} {
		p := filepath.Join(dir, "f")
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, m); err != nil {
			t.Fatal(err)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			t.Fatal(err)
		}
		if got := Perm(m); got != st.Mode&0o7777 {
			t.Errorf("%v: Perm %#o, kernel %#o", m, got, st.Mode&0o7777)
		}
		if got := FromPerm(st.Mode); got != m {
			t.Errorf("%#o: FromPerm %v, want %v", st.Mode, got, m)
		}
		os.Remove(p)
	}
}
