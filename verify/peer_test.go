package verify_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/internal/testenv"
	"github.com/imaforge/imaforge/verify"
)

// TestVerifyMksquashfsImage: an image made by mksquashfs (xz, fragments,
// xattrs stored its way) from a tree whose security.ima values were set on
// the host verifies file by file like imaforge's own build of the same tree.
func TestVerifyMksquashfsImage(t *testing.T) {
	mksquashfs := testenv.NeedTool(t, "mksquashfs")
	testenv.NeedRoot(t) // setting security.* xattrs
	fx := shared(t)
	src := t.TempDir()
	for _, e := range tree {
		p := filepath.Join(src, e.path)
		write(t, p, e.mode, e.content)
		if e.path == "var/log/boot.log" {
			continue
		}
		s := fx.mfrS
		if filepath.Dir(e.path) == "opt/acme/bin" {
			s = fx.tenS
		}
		if err := unix.Setxattr(p, imasig.XattrName, sign(t, s, e.content), 0); err != nil {
			t.Skipf("cannot set security.ima here: %v", err)
		}
	}
	img := filepath.Join(t.TempDir(), "mk.sqsh")
	if out, err := exec.Command(mksquashfs, src, img, "-comp", "xz", "-xattrs", "-no-progress", "-quiet").CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v\n%s", err, out)
	}
	rep, err := verify.File(t.Context(), img, verify.Options{Trust: fx.trust(t, nil), At: time.Now()})
	check(t, err)
	want(t, rep, nil)
	ours := run(t, fx.clean, verify.Options{Trust: fx.trust(t, nil)})
	for _, e := range tree {
		a, b := rep.File("/"+e.path), ours.File("/"+e.path)
		if a == nil || b == nil || a.Status != b.Status || a.Digest != b.Digest || a.KeyID != b.KeyID {
			t.Errorf("/%s: mksquashfs image %+v, imaforge image %+v", e.path, a, b)
		}
	}
	if rep.Summary.Signed != 6 || rep.Summary.Unsigned != 1 {
		t.Errorf("summary %+v", rep.Summary)
	}
	_ = os.Remove(img)
}
