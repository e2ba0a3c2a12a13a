package rootfs

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/imaforge/imaforge/internal/testenv"
)

type member struct {
	hdr  tar.Header
	data string
}

func dir(name string, mode int64) member {
	return member{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode}}
}

func reg(name string, mode int64, data string) member {
	return member{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data))}, data: data}
}

// testMembers is a root tree as another build step would archive it.
func testMembers() []member {
	sudo := reg("./usr/bin/sudo", 0o4755, "sudo binary")
	sudo.hdr.PAXRecords = map[string]string{"SCHILY.xattr.security.capability": "\x01\x00\x00\x02", "SCHILY.xattr.security.ima": "\x04\x04junk", "SCHILY.xattr.user.note": "n"}
	big := reg("./var/lib/big", 0o640, strings.Repeat("0123456789abcdef", 5000))
	big.hdr.Uid, big.hdr.Gid = 100, 101
	return []member{
		dir("./", 0o755),
		dir("./etc/", 0o755),
		reg("./etc/hostname", 0o644, "device\n"),
		dir("./usr/", 0o755),
		dir("./usr/bin/", 0o755),
		sudo,
		{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "./usr/bin/sudoedit", Linkname: "./usr/bin/sudo"}},
		{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: "./bin", Linkname: "usr/bin", Mode: 0o777}},
		dir("./dev/", 0o755),
		{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "./dev/console", Mode: 0o600, Devmajor: 5, Devminor: 1}},
		{hdr: tar.Header{Typeflag: tar.TypeBlock, Name: "./dev/sda", Mode: 0o660, Gid: 6, Devmajor: 8, Devminor: 0}},
		{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "./run/initctl", Mode: 0o600}}, // parent not in the archive
		big,
		reg("./empty", 0o444, ""),
	}
}

func writeTar(t testing.TB, w io.Writer, members []member) {
	t.Helper()
	tw := tar.NewWriter(w)
	for _, m := range members {
		h := m.hdr
		h.ModTime = time.Unix(1234567890, 0)
		if h.PAXRecords != nil {
			h.Format = tar.FormatPAX
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, m.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

// compressors write the tar stream in each supported compression.
var compressors = map[string]func(io.Writer) (io.WriteCloser, error){
	"rootfs.tar": func(w io.Writer) (io.WriteCloser, error) { return nopWriteCloser{w}, nil },
	"rootfs.tgz": func(w io.Writer) (io.WriteCloser, error) { return gzip.NewWriter(w), nil },
	"rootfs.tar.zst": func(w io.Writer) (io.WriteCloser, error) {
		return zstd.NewWriter(w)
	},
	"rootfs.tar.xz": func(w io.Writer) (io.WriteCloser, error) { return xz.NewWriter(w) },
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

func (p *project) tarball(name string, members []member) {
	p.t.Helper()
	var buf bytes.Buffer
	writeTar(p.t, &buf, members)
	f, err := os.Create(p.path(name))
	if err != nil {
		p.t.Fatal(err)
	}
	defer f.Close()
	mk := compressors[name]
	if mk == nil {
		mk = compressors["rootfs.tar"]
	}
	cw, err := mk(f)
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := cw.Write(buf.Bytes()); err != nil {
		p.t.Fatal(err)
	}
	if err := cw.Close(); err != nil {
		p.t.Fatal(err)
	}
}

const wantTarListing = `drwxr-xr-x 0/0 0 "/"
lrwxrwxrwx 0/0 7 "/bin" -> "usr/bin"
drwxr-xr-x 0/0 0 "/dev"
crw------- 0/0 5,1 "/dev/console"
brw-rw---- 0/6 8,0 "/dev/sda"
-r--r--r-- 0/0 0 "/empty"
drwxr-xr-x 0/0 0 "/etc"
-rw-r--r-- 0/0 7 "/etc/hostname"
drwxr-xr-x 0/0 0 "/run"
prw------- 0/0 0 "/run/initctl"
drwxr-xr-x 0/0 0 "/usr"
drwxr-xr-x 0/0 0 "/usr/bin"
-rwsr-xr-x 0/0 11 "/usr/bin/sudo" link=1 security.capability=01000002 user.note=6e
-rwsr-xr-x 0/0 11 "/usr/bin/sudoedit" link=1 security.capability=01000002 user.note=6e
drwxr-xr-x 0/0 0 "/var"
drwxr-xr-x 0/0 0 "/var/lib"
-rw-r----- 100/101 80000 "/var/lib/big"
`

func TestTarSources(t *testing.T) {
	for name := range compressors {
		t.Run(name, func(t *testing.T) {
			p := newProject(t)
			p.tarball(name, testMembers())
			tr, err := p.walk("image: {keep_xattrs: true}\nsources:\n  - from: "+name+"\n", Options{TempDir: p.dir})
			if err != nil {
				t.Fatal(err)
			}
			if got := listing(t, tr); got != wantTarListing {
				t.Errorf("listing:\n%s\nwant:\n%s", got, wantTarListing)
			}
			for path, want := range map[string]string{"/etc/hostname": "device\n", "/usr/bin/sudoedit": "sudo binary",
				"/var/lib/big": strings.Repeat("0123456789abcdef", 5000), "/empty": ""} {
				e, _ := tr.Lookup(path)
				if got := content(t, e); got != want {
					t.Errorf("%s: content %.20q…, want %.20q…", path, got, want)
				}
			}
			// The spool file is unlinked: nothing is left in TempDir.
			left, _ := filepath.Glob(filepath.Join(p.dir, "imaforge-tar-*"))
			if len(left) != 0 {
				t.Errorf("spool files left: %v", left)
			}
		})
	}
}

func TestTarUnderTo(t *testing.T) {
	p := newProject(t)
	p.tarball("app.tar", []member{reg("bin/app", 0o755, "app"), reg("share/doc", 0o644, "doc")})
	tr, err := p.walk("image: {owner: {uid: 0, gid: 0}}\nsources:\n  - from: app.tar\n    to: /opt/app\n    mode: 0750\nexclude: [/opt/app/share]\n", Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := `drwxr-xr-x 0/0 0 "/"
drwxr-xr-x 0/0 0 "/opt"
drwxr-x--- 0/0 0 "/opt/app"
drwxr-xr-x 0/0 0 "/opt/app/bin"
-rwxr-xr-x 0/0 3 "/opt/app/bin/app"
`
	if got := listing(t, tr); got != want {
		t.Errorf("listing:\n%s\nwant:\n%s", got, want)
	}
}

func TestTarUnsafe(t *testing.T) {
	tests := []struct {
		name    string
		members []member
		want    string
	}{
		{"dotdot", []member{reg("../evil", 0o644, "x")}, `member "../evil" has a .. component`},
		{"inner dotdot", []member{reg("a/../../b", 0o644, "x")}, `member "a/../../b" has a .. component`},
		{"absolute", []member{reg("/etc/passwd", 0o644, "x")}, `member "/etc/passwd" has an absolute name`},
		{"link out", []member{{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "l", Linkname: "../../etc/shadow"}}}, `hard link "l" -> "../../etc/shadow" has a .. component`},
		{"link forward", []member{{hdr: tar.Header{Typeflag: tar.TypeLink, Name: "l", Linkname: "later"}}, reg("later", 0o644, "x")},
			`hard link "l" -> "later" names no earlier member of the archive`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProject(t)
			p.tarball("bad.tar", tt.members)
			_, err := p.walk("sources:\n  - from: bad.tar\n", Options{})
			if !errors.Is(err, ErrUnsafeMember) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "m.yaml:3:11: sources[0]: "+p.path("bad.tar")) {
				t.Errorf("error %v, want …%s…", err, tt.want)
			}
		})
	}
	p := newProject(t)
	if err := os.WriteFile(p.path("junk.tar"), bytes.Repeat([]byte("junk"), 200), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := p.walk("sources:\n  - from: junk.tar\n", Options{}); err == nil || !strings.Contains(err.Error(), "reading the archive") {
		t.Errorf("junk tarball: %v", err)
	}
}

func TestTarModified(t *testing.T) {
	p := newProject(t)
	p.tarball("r.tar", []member{reg("f", 0o644, "content")})
	tr, err := p.walk("sources:\n  - from: r.tar\n", Options{})
	if err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Hour)
	os.Chtimes(p.path("r.tar"), later, later)
	e, _ := tr.Lookup("/f")
	if _, err := e.Content.Open(); !errors.Is(err, ErrModified) {
		t.Errorf("Open after the tarball changed: %v", err)
	}
}

// TestThreeWays builds one tree three ways, as issue 10 asks of images: as
// root from a directory with real device nodes and ownership; from a
// directory owned by a build user plus declared entries and overrides; and
// from a tarball of the root tree made by GNU tar. The listings and contents
// must be equal.
func TestThreeWays(t *testing.T) {
	testenv.NeedRoot(t)
	tarBin := testenv.NeedTool(t, "tar")
	p := newProject(t)
	// (a) the root tree
	root := p.path("root")
	p.file("root/etc/hostname", "device\n", 0o644)
	p.file("root/usr/bin/sudo", "sudo", 0o755)
	p.file("root/home/user/.profile", "profile", 0o644)
	p.dirs("root/dev", "root/mnt/data")
	for _, d := range []string{"root", "root/etc", "root/usr", "root/usr/bin", "root/home", "root/home/user", "root/dev", "root/mnt", "root/mnt/data"} {
		syscall.Chmod(p.path(d), 0o755)
	}
	if err := syscall.Mknod(p.path("root/dev/console"), syscall.S_IFCHR|0o600, 5<<8|1); err != nil {
		t.Fatal(err)
	}
	os.Lchown(p.path("root/home/user"), 1000, 1000)
	os.Lchown(p.path("root/home/user/.profile"), 1000, 1000)
	syscall.Chmod(p.path("root/usr/bin/sudo"), 0o4755)
	syscall.Chmod(p.path("root/dev/console"), 0o600)

	// (b) the build user's copy: everything owned by 4242, no device
	user := p.path("user")
	if out, err := exec.Command("cp", "-a", root, user).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	os.Remove(filepath.Join(user, "dev/console"))
	filepath.Walk(user, func(path string, info os.FileInfo, err error) error {
		os.Lchown(path, 4242, 4242)
		if info.Mode()&os.ModeSetuid != 0 {
			syscall.Chmod(path, 0o755) // what a build user's copy would have
		}
		return nil
	})

	// (c) a tarball of the root tree
	if out, err := exec.Command(tarBin, "--numeric-owner", "-C", root, "-cf", p.path("root.tar"), ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v %s", err, out)
	}
	if out, err := exec.Command("gzip", "-k", p.path("root.tar")).CombinedOutput(); err != nil {
		t.Fatalf("gzip: %v %s", err, out)
	}

	walk := func(yaml string) (*Tree, string) {
		tr, err := p.walk(yaml, Options{Strict: true})
		if err != nil {
			t.Fatal(err)
		}
		return tr, listing(t, tr)
	}
	ta, la := walk("sources:\n  - from: root\n")
	_, lb := walk(`image: {owner: {uid: 0, gid: 0}}
sources:
  - from: user
entries:
  - {path: /dev/console, type: char, mode: 0600, major: 5, minor: 1}
overrides:
  - {match: "/home/user{,/**}", uid: 1000, gid: 1000}
  - {match: /usr/bin/sudo, mode: 04755}
`)
	tc, lc := walk("sources:\n  - from: root.tar\n")
	_, ld := walk("sources:\n  - from: root.tar.gz\n")
	if la != lb || la != lc || la != ld {
		t.Fatalf("listings differ:\nroot dir:\n%s\nuser dir + entries + overrides:\n%s\ntarball:\n%s\ntar.gz:\n%s", la, lb, lc, ld)
	}
	if !strings.Contains(la, `crw------- 0/0 5,1 "/dev/console"`) || !strings.Contains(la, `-rwsr-xr-x 0/0 4 "/usr/bin/sudo"`) {
		t.Errorf("listing lacks the device or setuid bit:\n%s", la)
	}
	for i := range ta.Entries {
		if ta.Entries[i].Type == TypeReg && content(t, &ta.Entries[i]) != content(t, &tc.Entries[i]) {
			t.Errorf("%s: contents differ", ta.Entries[i].Path)
		}
	}
}
