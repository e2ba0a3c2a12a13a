package rootfs

import (
	"fmt"
	"go/build"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

// treeSpec is a tree to create: files (with content and mode), dirs, links.
var treeSpec = struct {
	dirs  map[string]uint32
	files map[string]struct {
		content string
		mode    uint32
	}
	symlinks map[string]string
	hard     [][2]string
}{
	dirs: map[string]uint32{"etc": 0o755, "usr": 0o755, "usr/bin": 0o755, "tmp": 0o1777, "var/lib/x": 0o700, "var": 0o755, "var/lib": 0o750},
	files: map[string]struct {
		content string
		mode    uint32
	}{
		"etc/hostname":   {"dev\n", 0o644},
		"etc/shadow":     {"root:*:0:0\n", 0o600},
		"usr/bin/sudo":   {"sudo", 0o4755},
		"usr/bin/ls":     {"ls binary", 0o755},
		"var/lib/x/data": {strings.Repeat("d", 5000), 0o640},
		"empty":          {"", 0o444},
	},
	symlinks: map[string]string{"usr/bin/dir": "ls", "bin": "usr/bin"},
	hard:     [][2]string{{"usr/bin/ls", "usr/bin/vdir"}},
}

// makeTree creates treeSpec under dir; reverse creates everything in the
// opposite order, then gives every entry another mtime.
func makeTree(t *testing.T, dir string, reverse bool, mtime time.Time, uid int) {
	t.Helper()
	keys := func(m map[string]uint32) []string {
		var l []string
		for k := range m {
			l = append(l, k)
		}
		return l
	}
	dirs := keys(treeSpec.dirs)
	sortStrings(dirs, reverse)
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	var files []string
	for f := range treeSpec.files {
		files = append(files, f)
	}
	sortStrings(files, reverse)
	for _, f := range files {
		s := treeSpec.files[f]
		p := filepath.Join(dir, f)
		if err := os.WriteFile(p, []byte(s.content), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Chmod(p, s.mode); err != nil {
			t.Fatal(err)
		}
	}
	for l, target := range treeSpec.symlinks {
		if err := os.Symlink(target, filepath.Join(dir, l)); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range treeSpec.hard {
		if err := os.Link(filepath.Join(dir, h[0]), filepath.Join(dir, h[1])); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range append(dirs, ".") {
		mode := treeSpec.dirs[d]
		if d == "." {
			mode = 0o755
		}
		if err := syscall.Chmod(filepath.Join(dir, d), mode); err != nil {
			t.Fatal(err)
		}
	}
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if uid >= 0 {
			os.Lchown(p, uid, uid)
		}
		ts := []syscall.Timespec{syscall.NsecToTimespec(mtime.UnixNano()), syscall.NsecToTimespec(mtime.UnixNano())}
		return syscall.UtimesNano(p, ts) // follows symlinks; dangling ones are fine to skip
	})
	for f, s := range treeSpec.files { // chown cleared setuid
		if err := syscall.Chmod(filepath.Join(dir, f), s.mode); err != nil {
			t.Fatal(err)
		}
	}
}

func sortStrings(l []string, reverse bool) {
	for i := 1; i < len(l); i++ {
		for j := i; j > 0 && (l[j] < l[j-1]) != reverse; j-- {
			l[j], l[j-1] = l[j-1], l[j]
		}
	}
}

// TestReproducible walks two copies of a tree made in different orders,
// with other mtimes, umask and (as root) host owners, and requires equal
// trees: the same listing and the same bytes for every file.
func TestReproducible(t *testing.T) {
	p := newProject(t)
	makeTree(t, p.path("a"), false, time.Unix(1000, 0), -1)
	old := syscall.Umask(0o077)
	uid := -1
	if os.Geteuid() == 0 {
		uid = 1234
	}
	makeTree(t, p.path("b"), true, time.Unix(2000000000, 5), uid)
	syscall.Umask(old)

	walk := func(src string) (*Tree, string) {
		tr, err := p.walk(fmt.Sprintf("image: {owner: {uid: 0, gid: 0}}\nsources:\n  - from: %s\n", src), Options{})
		if err != nil {
			t.Fatal(err)
		}
		return tr, listing(t, tr)
	}
	ta, la := walk("a")
	tb, lb := walk("b")
	if la != lb {
		t.Fatalf("listings differ:\n%s\n---\n%s", la, lb)
	}
	if !strings.Contains(la, `-rwsr-xr-x 0/0 4 "/usr/bin/sudo"`) || !strings.Contains(la, "link=1") || !strings.Contains(la, `drwxrwxrwt 0/0 0 "/tmp"`) {
		t.Errorf("listing lacks setuid, sticky or hard link:\n%s", la)
	}
	for i := range ta.Entries {
		ea, eb := &ta.Entries[i], &tb.Entries[i]
		if ea.Type == TypeReg && content(t, ea) != content(t, eb) {
			t.Errorf("%s: contents differ", ea.Path)
		}
	}
	if uid >= 0 {
		// Without owner: the host owners show through, so the tree differs.
		tr, err := p.walk("sources:\n  - from: b\n", Options{})
		if err != nil {
			t.Fatal(err)
		}
		if e, _ := tr.Lookup("/etc/hostname"); e.UID != 1234 || e.GID != 1234 {
			t.Errorf("host owner not kept without image.owner: %d:%d", e.UID, e.GID)
		}
	}
}

// TestMemoryPerEntry measures the heap a walked tree holds per entry.
func TestMemoryPerEntry(t *testing.T) {
	const dirs, perDir = 100, 200
	p := newProject(t)
	for d := range dirs {
		dir := p.path(fmt.Sprintf("r/usr/share/component-%03d", d))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for f := range perDir {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("file-%05d.dat", f)), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	m, err := p.load("sources:\n  - from: r\n")
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	tr, err := Walk(t.Context(), m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	n := len(tr.Entries)
	per := float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
	t.Logf("%d entries, %.0f bytes of heap per entry (paths of ~45 bytes)", n, per)
	if per > 400 {
		t.Errorf("%.0f bytes per entry; a million files must fit in a few hundred MB at most", per)
	}
	runtime.KeepAlive(tr)
}

// TestNoCLIImport checks that the library does not depend on the CLI.
func TestNoCLIImport(t *testing.T) {
	for _, dir := range []string{".", "../manifest"} {
		pkg, err := build.ImportDir(dir, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range append(pkg.Imports, pkg.TestImports...) {
			if strings.Contains(imp, "/cmd/") || strings.Contains(imp, "urfave/cli") {
				t.Errorf("%s imports %s", pkg.ImportPath, imp)
			}
		}
	}
}
