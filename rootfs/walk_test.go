package rootfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imaforge/imaforge/internal/testenv"
	"github.com/imaforge/imaforge/manifest"
)

// project is a temporary manifest directory.
type project struct {
	t   *testing.T
	dir string
}

func newProject(t *testing.T) *project {
	return &project{t: t, dir: t.TempDir()}
}

func (p *project) path(rel string) string { return filepath.Join(p.dir, rel) }

func (p *project) file(rel, content string, mode os.FileMode) {
	p.t.Helper()
	full := p.path(rel)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(full, []byte(content), mode); err != nil {
		p.t.Fatal(err)
	}
	if err := syscall.Chmod(full, uint32(mode)); err != nil { // umask, setuid
		p.t.Fatal(err)
	}
}

func (p *project) dirs(rels ...string) {
	p.t.Helper()
	for _, rel := range rels {
		if err := os.MkdirAll(p.path(rel), 0o755); err != nil {
			p.t.Fatal(err)
		}
	}
}

func (p *project) symlink(target, rel string) {
	p.t.Helper()
	if err := os.Symlink(target, p.path(rel)); err != nil {
		p.t.Fatal(err)
	}
}

// walk writes the manifest (with a rule so it is complete) and walks it.
func (p *project) walk(yaml string, opts Options) (*Tree, error) {
	p.t.Helper()
	m, err := p.load(yaml)
	if err != nil {
		p.t.Fatal(err)
	}
	t, err := Walk(context.Background(), m, opts)
	if t != nil {
		p.t.Cleanup(func() { t.Close() })
	}
	return t, err
}

func (p *project) load(yaml string) (*manifest.Manifest, error) {
	text := "version: 1\n" + yaml + "rules:\n  - {match: /**, sign: false}\n"
	if err := os.WriteFile(p.path("m.yaml"), []byte(text), 0o644); err != nil {
		p.t.Fatal(err)
	}
	return manifest.Load(p.path("m.yaml"))
}

func listing(t *testing.T, tr *Tree) string {
	t.Helper()
	var b bytes.Buffer
	if err := tr.WriteListing(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func content(t *testing.T, e *Entry) string {
	t.Helper()
	r, err := e.Content.Open()
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWalkTree(t *testing.T) {
	p := newProject(t)
	p.dirs("rootfs/usr/bin", "rootfs/a-b", "rootfs/a/x", "rootfs/tmp")
	p.file("rootfs/usr/bin/ls", "ls", 0o755)
	p.file("rootfs/usr/bin/sudo", "sudo", 0o4755)
	p.file("rootfs/a/x/f", "f", 0o640)
	p.file("rootfs/a-b/g", "g", 0o644)
	p.symlink("ls", "rootfs/usr/bin/dir")
	p.symlink("/nonexistent/target", "rootfs/usr/bin/dangling")
	p.symlink("../a", "rootfs/usr/loop") // a symlink to a directory is not followed
	if err := os.Link(p.path("rootfs/usr/bin/ls"), p.path("rootfs/usr/bin/vdir")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Chmod(p.path("rootfs/tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(p.path("rootfs/a/fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	p.file("build/app", "app", 0o600)
	p.symlink("build/app", "app") // a source named through a symlink
	want := `drwxr-xr-x 0/0 0 "/"
drwxr-xr-x 0/0 0 "/a"
prw------- 0/0 0 "/a/fifo"
drwxr-xr-x 0/0 0 "/a/x"
-rw-r----- 0/0 1 "/a/x/f"
drwxr-xr-x 0/0 0 "/a-b"
-rw-r--r-- 0/0 1 "/a-b/g"
drwxr-xr-x 0/0 0 "/opt"
drwxr-xr-x 0/0 0 "/opt/acme"
drwxr-xr-x 0/0 0 "/opt/acme/bin"
-rwxr-xr-x 0/0 3 "/opt/acme/bin/app"
drwxrwxrwt 0/0 0 "/tmp"
drwxr-xr-x 0/0 0 "/usr"
drwxr-xr-x 0/0 0 "/usr/bin"
lrwxrwxrwx 0/0 19 "/usr/bin/dangling" -> "/nonexistent/target"
lrwxrwxrwx 0/0 2 "/usr/bin/dir" -> "ls"
-rwxr-xr-x 0/0 2 "/usr/bin/ls" link=1
-rwsr-xr-x 0/0 4 "/usr/bin/sudo"
-rwxr-xr-x 0/0 2 "/usr/bin/vdir" link=1
lrwxrwxrwx 0/0 4 "/usr/loop" -> "../a"
`
	// The root directory's mode is the source directory's (t.TempDir: 0700 → chmod).
	if err := os.Chmod(p.path("rootfs"), 0o755); err != nil {
		t.Fatal(err)
	}
	tr, err := p.walk(`image: {owner: {uid: 0, gid: 0}}
sources:
  - from: rootfs/
  - from: app
    to: /opt/acme/bin/
    mode: 0755
`, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := listing(t, tr); got != want {
		t.Errorf("listing:\n%s\nwant:\n%s", got, want)
	}
	e, ok := tr.Lookup("/opt/acme/bin/app")
	if !ok {
		t.Fatal("Lookup(/opt/acme/bin/app) failed")
	}
	if got := content(t, e); got != "app" {
		t.Errorf("app content %q", got)
	}
	if hf := e.Content.(*HostFile); hf.HostPath() != p.path("build/app") {
		t.Errorf("HostPath %s, want %s", hf.HostPath(), p.path("app"))
	}
	e, _ = tr.Lookup("/a/x/f")
	if hf := e.Content.(*HostFile); hf.HostPath() != p.path("rootfs/a/x/f") {
		t.Errorf("HostPath %s", hf.HostPath())
	}
	if _, ok := tr.Lookup("/a/x/nope"); ok {
		t.Error("Lookup found a missing path")
	}
	for i := 1; i < len(tr.Entries); i++ {
		if ComparePaths(tr.Entries[i-1].Path, tr.Entries[i].Path) >= 0 {
			t.Errorf("not sorted: %s before %s", tr.Entries[i-1].Path, tr.Entries[i].Path)
		}
		parent := filepath.Dir(tr.Entries[i].Path)
		if d, ok := tr.Lookup(parent); !ok || d.Type != TypeDir {
			t.Errorf("%s has no parent directory", tr.Entries[i].Path)
		}
	}
}

func TestComparePaths(t *testing.T) {
	sorted := []string{"/", "/a", "/a/b", "/a/b/c", "/a/c", "/a b", "/a-b", "/a.b/z", "/ab", "/b"}
	for i := range sorted {
		for j := range sorted {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := ComparePaths(sorted[i], sorted[j]); got != want {
				t.Errorf("ComparePaths(%q, %q) = %d, want %d", sorted[i], sorted[j], got, want)
			}
		}
	}
}

func TestOverlapLaterWins(t *testing.T) {
	p := newProject(t)
	p.file("base/etc/hostname", "base\n", 0o644)
	p.file("base/etc/keep", "keep\n", 0o644)
	p.file("extra/etc/hostname", "extra\n", 0o600)
	p.file("extra/etc/new", "new\n", 0o644)
	os.Chmod(p.path("extra/etc"), 0o750)
	tr, err := p.walk("image: {owner: {uid: 0, gid: 0}}\nsources:\n  - from: base\n  - from: extra\n", Options{})
	if err != nil {
		t.Fatal(err)
	}
	e, _ := tr.Lookup("/etc/hostname")
	if got := content(t, e); got != "extra\n" || e.Mode != 0o600 {
		t.Errorf("/etc/hostname: %q mode %o, want the later source's", got, e.Mode)
	}
	for _, p := range []string{"/etc/keep", "/etc/new"} {
		if _, ok := tr.Lookup(p); !ok {
			t.Errorf("%s missing: directories must merge", p)
		}
	}
	var notes []string
	for _, o := range tr.Overlaps {
		notes = append(notes, o.String())
	}
	got := strings.Join(notes, "\n")
	if len(tr.Overlaps) < 2 || !strings.Contains(got, "/etc/hostname: sources[1] "+p.path("extra")+" (line 5) replaces sources[0] "+p.path("base")+" (line 4)") ||
		!strings.Contains(got, "/etc: directory metadata from sources[1]") {
		t.Errorf("overlaps:\n%s", got)
	}
}

func TestWalkErrors(t *testing.T) {
	tests := []struct {
		name  string
		setup func(p *project)
		yaml  string
		opts  Options
		kind  error
		want  string // substring of the message, %D is the project directory
	}{
		{"type conflict between sources", func(p *project) {
			p.dirs("a/etc/conf")
			p.file("b/etc/conf", "x", 0o644)
		}, "sources:\n  - from: a\n  - from: b\n", Options{}, ErrTypeConflict,
			"m.yaml:4:5: /etc/conf: a directory from sources[0] %D/a (line 3) and a regular file from sources[1] %D/b (line 4): type conflict"},
		{"file over implied directory", func(p *project) {
			p.file("app", "x", 0o644)
			p.file("r/opt", "x", 0o644)
		}, "sources:\n  - from: app\n    to: /opt/app\n  - from: r\n", Options{}, ErrTypeConflict,
			"m.yaml:5:5: /opt: a directory from a directory implied by line 4 and a regular file from sources[1]"},
		{"symlink loop in from", func(p *project) {
			p.symlink("loop2", "loop1")
			p.symlink("loop1", "loop2")
		}, "sources:\n  - from: loop1\n", Options{}, ErrSymlinkLoop,
			"m.yaml:3:11: sources[0].from: symlink loop: stat %D/loop1: too many levels of symbolic links"},
		{"missing source", func(p *project) {}, "sources:\n  - from: nowhere/\n", Options{}, os.ErrNotExist,
			"m.yaml:3:11: sources[0].from: stat %D/nowhere: no such file or directory"},
		{"dir as file", func(p *project) { p.dirs("d") }, "sources:\n  - from: d\n    format: file\n", Options{}, nil,
			"m.yaml:3:11: sources[0].from: %D/d is a directory, not a file"},
		{"declared entry over source file", func(p *project) {
			p.file("r/dev/console", "not a device", 0o644)
		}, "sources:\n  - from: r\nentries:\n  - {path: /dev/console, type: char, major: 5, minor: 1}\n", Options{}, ErrTypeConflict,
			"m.yaml:5:5: /dev/console: a regular file from sources[0] %D/r (line 3) and a char device from entries[0] (line 5): type conflict"},
		{"conflicting overrides", func(p *project) { p.file("r/usr/bin/sudo", "x", 0o755) },
			"sources:\n  - from: r\noverrides:\n  - {match: /usr/bin/*, mode: 0755}\n  - {match: /usr/bin/sudo, mode: 04755}\n", Options{}, ErrOverrideConflict,
			"m.yaml:6:5: /usr/bin/sudo: overrides[0] (line 5) and overrides[1] (line 6) set different mode"},
		{"unmatched override strict", func(p *project) { p.dirs("r") },
			"sources:\n  - from: r\noverrides:\n  - {match: /home/**, uid: 1000}\n", Options{Strict: true}, ErrUnmatchedOverride,
			"m.yaml:5:13: overrides[0] /home/**: override matches nothing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProject(t)
			tt.setup(p)
			tr, err := p.walk(tt.yaml, tt.opts)
			if err == nil {
				t.Fatalf("Walk succeeded:\n%s", listing(t, tr))
			}
			want := strings.ReplaceAll(tt.want, "%D", p.dir)
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error:\n got %v\nwant …%s…", err, want)
			}
			if tt.kind != nil && !errors.Is(err, tt.kind) {
				t.Errorf("errors.Is(%v) = false", tt.kind)
			}
			var me *manifest.Error
			if !errors.As(err, &me) || me.Pos.Line == 0 {
				t.Errorf("error is not positioned in the manifest: %v", err)
			}
		})
	}
}

func TestUnmatchedOverrideWarns(t *testing.T) {
	p := newProject(t)
	p.dirs("r")
	tr, err := p.walk("sources:\n  - from: r\noverrides:\n  - {match: /home/**, uid: 1000}\n", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(tr.Warnings) != 1 || !errors.Is(tr.Warnings[0], ErrUnmatchedOverride) {
		t.Errorf("warnings: %v", tr.Warnings)
	}
}

func TestExclude(t *testing.T) {
	p := newProject(t)
	p.file("r/src/a.o", "o", 0o644)
	p.file("r/src/a.c", "c", 0o644)
	p.file("r/src/deep/b.o", "o", 0o644)
	p.file("r/tmp/cache/x", "x", 0o644)
	p.file("r/top.o", "o", 0o644)
	tr, err := p.walk("sources:\n  - from: r\nexclude: [\"*.o\", /tmp/cache]\n", Options{})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, e := range tr.Entries {
		paths = append(paths, e.Path)
	}
	if got, want := strings.Join(paths, " "), "/ /src /src/a.c /src/deep /tmp"; got != want {
		t.Errorf("paths %s, want %s", got, want)
	}
}

func TestDeclaredAndOverrides(t *testing.T) {
	p := newProject(t)
	p.file("r/usr/bin/sudo", "sudo", 0o755)
	p.file("r/home/user/.profile", "x", 0o644)
	p.dirs("r/mnt")
	os.Chmod(p.path("r"), 0o755)
	want := `drwxr-xr-x 0/0 0 "/"
drwxr-xr-x 0/0 0 "/bin"
lrwxrwxrwx 0/0 7 "/bin/sh" -> "busybox"
drwxr-xr-x 0/0 0 "/dev"
crw------- 0/0 5,1 "/dev/console"
brw-rw---- 0/6 8,0 "/dev/sda"
drwxr-xr-x 0/0 0 "/etc"
-rw-r--r-- 0/0 4 "/etc/hostname" user.origin=6d616e6966657374
drwxr-xr-x 1000/1000 0 "/home"
drwxr-xr-x 1000/1000 0 "/home/user"
-rw-r--r-- 1000/1000 1 "/home/user/.profile"
drwx------ 0/0 0 "/mnt"
drwxr-xr-x 0/0 0 "/run"
prw-r--r-- 0/0 0 "/run/initctl"
drwxr-xr-x 0/0 0 "/usr"
drwxr-xr-x 0/0 0 "/usr/bin"
-rwsr-xr-x 0/0 4 "/usr/bin/sudo" security.capability=0100000200200000
`
	tr, err := p.walk(`image: {owner: {uid: 0, gid: 0}}
sources:
  - from: r
entries:
  - {path: /dev/console, type: char, mode: 0600, major: 5, minor: 1}
  - {path: /dev/sda, type: block, major: 8, minor: 0, gid: 6, mode: 0660}
  - {path: /run/initctl, type: fifo}
  - {path: /mnt, type: dir, mode: 0700}
  - {path: /bin/sh, type: symlink, target: busybox}
  - {path: /etc/hostname, type: file, content: "dev\n", xattrs: {user.origin: manifest}}
overrides:
  - {match: /usr/bin/sudo, mode: 04755}
  - {match: "/home/**", uid: 1000, gid: 1000}
  - {match: /usr/bin/sudo, mode: 04755, xattrs: {security.capability: "0x0100000200200000"}}
`, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := listing(t, tr); got != want {
		t.Errorf("listing:\n%s\nwant:\n%s", got, want)
	}
	e, _ := tr.Lookup("/etc/hostname")
	if got := content(t, e); got != "dev\n" {
		t.Errorf("inline content %q", got)
	}
	e, _ = tr.Lookup("/dev/console")
	if e.Rdev() != 5<<8|1 {
		t.Errorf("Rdev %#x", e.Rdev())
	}
}

// TestModifiedDuringRead checks that a host file's reader notices a change
// between the walk and the read, and during the read.
func TestModifiedDuringRead(t *testing.T) {
	p := newProject(t)
	p.file("r/grow", "1234", 0o644)
	p.file("r/shrink", "1234", 0o644)
	p.file("r/touch", "1234", 0o644)
	p.file("r/swap", "1234", 0o644)
	p.file("r/during", strings.Repeat("x", 1<<16), 0o644)
	tr, err := p.walk("sources:\n  - from: r\n", Options{})
	if err != nil {
		t.Fatal(err)
	}
	open := func(path string) (io.ReadCloser, error) {
		e, ok := tr.Lookup(path)
		if !ok {
			t.Fatalf("%s missing", path)
		}
		return e.Content.Open()
	}
	// read reads a file to its end and closes it: the first error. A
	// change before Open is found by the reads or, at the latest, by
	// Close (Open does not check: HostFile.Open).
	read := func(path string) ([]byte, error) {
		r, err := open(path)
		if err != nil {
			return nil, err
		}
		got, err := io.ReadAll(r)
		if cerr := r.Close(); err == nil {
			err = cerr
		}
		return got, err
	}
	if err := os.WriteFile(p.path("r/grow"), []byte("12345"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := read("/grow"); !errors.Is(err, ErrModified) {
		t.Errorf("grown before open: %v", err)
	}
	os.Truncate(p.path("r/shrink"), 2)
	if _, err := read("/shrink"); !errors.Is(err, ErrModified) {
		t.Errorf("shrunk before open: %v", err)
	}
	later := time.Now().Add(time.Hour)
	os.Chtimes(p.path("r/touch"), later, later)
	if _, err := read("/touch"); !errors.Is(err, ErrModified) || !strings.Contains(err.Error(), p.path("r/touch")) {
		t.Errorf("touched before open: %v", err)
	}
	// another file (renamed over it: another inode) with the same size,
	// bytes and modification time
	st, _ := os.Stat(p.path("r/swap"))
	p.file("r/swap.new", "1234", 0o644)
	os.Chtimes(p.path("r/swap.new"), st.ModTime(), st.ModTime())
	os.Rename(p.path("r/swap.new"), p.path("r/swap"))
	if _, err := read("/swap"); !errors.Is(err, ErrModified) || !strings.Contains(err.Error(), "replaced") {
		t.Errorf("replaced before open: %v", err)
	}
	r, err := open("/during")
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(p.path("r/during"), os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte("more"))
	f.Close()
	_, rerr := io.ReadAll(r)
	cerr := r.Close()
	// Read may stop at the walked size (no read(2) only to find the end);
	// Close's check always tells.
	if (rerr != nil && !errors.Is(rerr, ErrModified)) || !errors.Is(cerr, ErrModified) {
		t.Errorf("appended while reading: read %v, close %v", rerr, cerr)
	}
}

// TestDeviceNodes walks real device nodes (root only: mknod).
func TestDeviceNodes(t *testing.T) {
	testenv.NeedRoot(t)
	p := newProject(t)
	p.dirs("r/dev")
	os.Chmod(p.path("r"), 0o755)
	if err := syscall.Mknod(p.path("r/dev/console"), syscall.S_IFCHR|0o600, 5<<8|1); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mknod(p.path("r/dev/big"), syscall.S_IFBLK|0o660, int((259<<8)|(0x12345&0xff)|((0x12345&^0xff)<<12))); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Chmod(p.path("r/dev/big"), 0o660); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(p.path("r/dev/big"), 0, 6); err != nil {
		t.Fatal(err)
	}
	tr, err := p.walk("sources:\n  - from: r\n", Options{})
	if err != nil {
		t.Fatal(err)
	}
	e, _ := tr.Lookup("/dev/big")
	if e.Type != TypeBlock || e.Major() != 259 || e.Minor() != 0x12345 || e.GID != 6 || e.Mode != 0o660 {
		t.Errorf("/dev/big: %+v", e)
	}
	e, _ = tr.Lookup("/dev/console")
	if e.Type != TypeChar || e.Major() != 5 || e.Minor() != 1 {
		t.Errorf("/dev/console: %+v", e)
	}
}

// TestKeepXattrs reads user xattrs only when the manifest asks, and never
// security.ima.
func TestKeepXattrs(t *testing.T) {
	p := newProject(t)
	p.file("r/f", "x", 0o644)
	os.Chmod(p.path("r"), 0o755)
	if err := exec.Command("setfattr", "-n", "user.test", "-v", "0x0102", p.path("r/f")).Run(); err != nil {
		t.Skipf("the temporary directory does not take user xattrs: %v", err)
	}
	root := os.Geteuid() == 0
	if root {
		if err := exec.Command("setfattr", "-n", "security.ima", "-v", "0x0404", p.path("r/f")).Run(); err != nil {
			t.Fatalf("setfattr security.ima as root: %v", err)
		}
	}
	tr, err := p.walk("sources:\n  - from: r\n", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if e, _ := tr.Lookup("/f"); len(e.Xattrs()) != 0 {
		t.Errorf("xattrs kept without keep_xattrs: %v", e.Xattrs())
	}
	tr, err = p.walk("image: {keep_xattrs: true}\nsources:\n  - from: r\n", Options{})
	if err != nil {
		t.Fatal(err)
	}
	e, _ := tr.Lookup("/f")
	if v, ok := e.Xattrs().Get("user.test"); !ok || string(v) != "\x01\x02" {
		t.Errorf("user.test not kept: %v", e.Xattrs())
	}
	if _, ok := e.Xattrs().Get("security.ima"); ok {
		t.Error("security.ima from the host was kept")
	}
}

// TestDirectoryCycle mounts a source directory inside itself: the walk must
// stop with an error naming the directory instead of walking it twice.
func TestDirectoryCycle(t *testing.T) {
	testenv.NeedRoot(t)
	p := newProject(t)
	p.file("r/etc/hostname", "x", 0o644)
	p.dirs("r/loop")
	if out, err := exec.Command("mount", "--bind", p.path("r"), p.path("r/loop")).CombinedOutput(); err != nil {
		t.Skipf("mount --bind is not permitted here: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", p.path("r/loop")).Run() })
	_, err := p.walk("sources:\n  - from: r\n", Options{})
	if !errors.Is(err, ErrCycle) || !strings.Contains(err.Error(), p.path("r/loop")+" is its own ancestor") {
		t.Errorf("walk over a bind-mount cycle: %v", err)
	}
}

// TestHostReaderDescriptors: a host file's reader gives the content, closes
// its descriptor on Close (a second Close is an error, not a second close of
// a number another file may have by then), also when the file changed.
func TestHostReaderDescriptors(t *testing.T) {
	p := newProject(t)
	p.file("r/a", "content of a\n", 0o644)
	p.file("r/b", "bb", 0o644)
	tr, err := p.walk("sources:\n  - from: r\n", Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := tr.Lookup("/a")
	b, _ := tr.Lookup("/b")
	os.WriteFile(p.path("r/b"), []byte("bbb"), 0o644) // b: changed before its Open
	fds := func() int {
		es, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Skip("no /proc/self/fd")
		}
		return len(es)
	}
	before := fds()
	for range 200 {
		r, err := a.Content.Open()
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(r)
		if err != nil || string(got) != "content of a\n" {
			t.Fatalf("read %q, %v", got, err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err == nil {
			t.Fatal("second Close: no error")
		}
		if _, err := r.Read(make([]byte, 1)); err == nil {
			t.Fatal("Read after Close: no error")
		}
		rb, err := b.Content.Open()
		if err != nil {
			t.Fatal(err)
		}
		io.ReadAll(rb)
		if err := rb.Close(); !errors.Is(err, ErrModified) {
			t.Fatalf("changed file: Close %v", err)
		}
	}
	// Read ends at the walked size without a read(2); a file that grew
	// after its last byte was read fails Close.
	r, err := a.Content.Open()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := io.ReadAll(r); err != nil || string(got) != "content of a\n" {
		t.Fatalf("read %q, %v", got, err)
	}
	f, _ := os.OpenFile(p.path("r/a"), os.O_WRONLY|os.O_APPEND, 0)
	f.Write([]byte("more"))
	f.Close()
	if err := r.Close(); !errors.Is(err, ErrModified) {
		t.Errorf("grown after the last read: Close %v", err)
	}
	if after := fds(); after > before+2 {
		t.Errorf("%d descriptors open before, %d after 400 opens", before, after)
	}
}

// TestHostFilesOpenFromSourceDirectory: a source directory's files are
// opened relative to the descriptor the walk took of it (the kernel does
// not resolve the source's path again for each file), so they are the
// walked directory's even after its path is renamed; Tree.Close closes the
// descriptor, and the files are then opened by their full host paths.
func TestHostFilesOpenFromSourceDirectory(t *testing.T) {
	p := newProject(t)
	p.file("r/sub/a", "content of a\n", 0o644)
	p.symlink("sub/a", "r/link")
	tr, err := p.walk("sources:\n  - from: r\n    to: /opt\n", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := tr.Lookup("/opt/link"); !ok || e.Target() != "sub/a" {
		t.Fatalf("symlink %+v", e)
	}
	e, ok := tr.Lookup("/opt/sub/a")
	if !ok {
		t.Fatal("/opt/sub/a missing")
	}
	if err := os.Rename(p.path("r"), p.path("r.moved")); err != nil {
		t.Fatal(err)
	}
	read := func() (string, error) {
		r, err := e.Content.Open()
		if err != nil {
			return "", err
		}
		got, err := io.ReadAll(r)
		if cerr := r.Close(); err == nil {
			err = cerr
		}
		return string(got), err
	}
	if got, err := read(); err != nil || got != "content of a\n" {
		t.Fatalf("after the source's rename: %q, %v", got, err)
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = read()
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), p.path("r/sub/a")) {
		t.Errorf("after Tree.Close, by the old path: %v", err)
	}
}

// TestWalkLargeDirectory: a directory of more than parallelStat children,
// whose lstats two goroutines share, gives every child in name order with
// its own type, mode, size and symlink target (files, symlinks and
// directories in both halves, excluded names and the build's outputs
// among them), and a small directory the same through one goroutine.
func TestWalkLargeDirectory(t *testing.T) {
	for _, n := range []int{parallelStat / 2, 3 * parallelStat} {
		p := newProject(t)
		type want struct {
			typ    Type
			mode   uint32
			size   int64
			target string
		}
		wants := map[string]want{"/": {typ: TypeDir, mode: 0o755}}
		for i := range n {
			name := fmt.Sprintf("c%04d", i)
			switch i % 4 {
			case 0, 1:
				mode := []os.FileMode{0o644, 0o600}[i%2]
				p.file("r/"+name, strings.Repeat("x", i), mode)
				wants["/"+name] = want{typ: TypeReg, mode: uint32(mode), size: int64(i)}
			case 2:
				target := fmt.Sprintf("target-%d", i)
				p.symlink(target, "r/"+name)
				wants["/"+name] = want{typ: TypeSymlink, mode: 0o777, size: int64(len(target)), target: target}
			case 3:
				p.file("r/"+name+"/f", "f", 0o644)
				wants["/"+name] = want{typ: TypeDir, mode: 0o755}
				wants["/"+name+"/f"] = want{typ: TypeReg, mode: 0o644, size: 1}
			}
			p.file(fmt.Sprintf("r/%s.o", name), "excluded", 0o644)
		}
		p.file("r/out.img", "the image", 0o644)
		m, err := p.load("sources:\n  - from: r\nexclude: [\"*.o\"]\n")
		if err != nil {
			t.Fatal(err)
		}
		tr, err := Walk(context.Background(), m, Options{Output: p.path("r/out.img")})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tr.Close() })
		if len(tr.Entries) != len(wants) || len(tr.Skipped) != 1 {
			t.Fatalf("%d children: %d entries, want %d; skipped %q", n, len(tr.Entries), len(wants), tr.Skipped)
		}
		for i := range tr.Entries {
			e := &tr.Entries[i]
			w, ok := wants[e.Path]
			if i > 0 && ComparePaths(tr.Entries[i-1].Path, e.Path) >= 0 {
				t.Errorf("%s after %s", e.Path, tr.Entries[i-1].Path)
			}
			if !ok || e.Type != w.typ || e.Mode != w.mode || e.Size != w.size || e.Target() != w.target {
				t.Errorf("%d children: %s: %v %o %d %q, want %+v", n, e.Path, e.Type, e.Mode, e.Size, e.Target(), w)
			}
		}
	}
}

// TestEntryList: entries added across chunks are found by the index add
// returned, changes through at stay, and all gives them in order in one
// slice of their number.
func TestEntryList(t *testing.T) {
	var l entryList
	const n = 2*entryChunk + 3
	for i := range n {
		if got := l.add(Entry{Path: fmt.Sprintf("/e%d", i)}); got != int32(i) {
			t.Fatalf("add %d returned %d", i, got)
		}
	}
	for _, i := range []int32{0, entryChunk - 1, entryChunk, 2 * entryChunk, n - 1} {
		l.at(i).Size = int64(i) + 1
	}
	all := l.all()
	if l.len() != n || len(all) != n || cap(all) != n || len(l.chunks) != 3 {
		t.Fatalf("len %d, all %d (cap %d), %d chunks; want %d in 3", l.len(), len(all), cap(all), len(l.chunks), n)
	}
	for i, e := range all {
		size := int64(0)
		if i == 0 || i == entryChunk-1 || i == entryChunk || i == 2*entryChunk || i == n-1 {
			size = int64(i) + 1
		}
		if e.Path != fmt.Sprintf("/e%d", i) || e.Size != size {
			t.Fatalf("entry %d: %s size %d, want /e%d size %d", i, e.Path, e.Size, i, size)
		}
	}
}

// TestOverlapAcrossChunks: a later source replaces files and merges
// directories whose entries are in any chunk of the walk's entry list
// (more than entryChunk entries), and every entry is kept once, in order.
func TestOverlapAcrossChunks(t *testing.T) {
	p := newProject(t)
	const n = entryChunk + 1200 // d5's entry is in the second chunk
	for i := range n {
		p.file(fmt.Sprintf("base/d%d/f%05d", i/1000, i), "base", 0o644)
	}
	replaced := []int{0, entryChunk - 2, entryChunk + 1, n - 1}
	for _, i := range replaced {
		p.file(fmt.Sprintf("extra/d%d/f%05d", i/1000, i), "extra", 0o600)
	}
	p.file("extra/d0/new", "new", 0o644)
	os.Chmod(p.path("extra/d5"), 0o750)
	tr, err := p.walk("image: {owner: {uid: 0, gid: 0}}\nsources:\n  - from: base\n  - from: extra\n", Options{})
	if err != nil {
		t.Fatal(err)
	}
	dirs := (n + 999) / 1000
	if want := 1 + dirs + n + 1; len(tr.Entries) != want {
		t.Fatalf("%d entries, want %d", len(tr.Entries), want)
	}
	for i := 1; i < len(tr.Entries); i++ {
		if ComparePaths(tr.Entries[i-1].Path, tr.Entries[i].Path) >= 0 {
			t.Fatalf("%s after %s", tr.Entries[i].Path, tr.Entries[i-1].Path)
		}
	}
	for i := range n {
		e, ok := tr.Lookup(fmt.Sprintf("/d%d/f%05d", i/1000, i))
		want, mode := "base", uint32(0o644)
		if slices.Contains(replaced, i) {
			want, mode = "extra", 0o600
		}
		if !ok || e.Mode != mode || (want == "extra" || i%997 == 0) && content(t, e) != want {
			t.Fatalf("file %d: %v, want %s mode %o", i, e, want, mode)
		}
	}
	if d, _ := tr.Lookup("/d5"); d.Mode != 0o750 {
		t.Errorf("/d5 mode %o, want the later source's 750", d.Mode)
	}
	// the replaced files and /d5's metadata
	if len(tr.Overlaps) != len(replaced)+1 {
		t.Errorf("%d overlaps, want %d: %v", len(tr.Overlaps), len(replaced)+1, tr.Overlaps)
	}
}
