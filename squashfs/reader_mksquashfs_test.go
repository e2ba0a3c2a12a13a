package squashfs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"golang.org/x/sys/unix"

	"github.com/imaforge/imaforge/internal/testenv"
)

// buildTrickyTree makes a tree of awkward entries under dir: every inode
// type, sizes around block boundaries, a sparse file, long, non-UTF-8 and
// newline names, deep nesting, a big directory, links of all kinds, special
// modes and many xattrs. Entries that need root (devices, owners,
// trusted./security. xattrs) are made only as root.
func buildTrickyTree(t testing.TB, dir string) {
	t.Helper()
	root := os.Geteuid() == 0
	rnd := rand.New(rand.NewPCG(1, 2))
	data := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rnd.Uint32())
		}
		// half compressible
		for i := 0; i < n/2; i++ {
			b[i] = byte(i / 64)
		}
		return b
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	write := func(name string, b []byte, mode fs.FileMode) {
		t.Helper()
		p := filepath.Join(dir, name)
		must(os.MkdirAll(filepath.Dir(p), 0o755))
		must(os.WriteFile(p, b, mode))
		must(os.Chmod(p, mode))
	}
	must(os.MkdirAll(filepath.Join(dir, "empty-dir"), 0o755))
	write("empty-file", nil, 0o644)
	for _, n := range []int{1, 4095, 4096, 4097, 131071, 131072, 131073, 1<<20 + 1, 2<<20 + 12345} {
		write(fmt.Sprintf("size-%d", n), data(n), 0o644)
	}
	write("setuid", data(100), 0o4755)
	write("setgid", data(100), 0o2711)
	must(os.Mkdir(filepath.Join(dir, "sticky"), 0o755))
	must(os.Chmod(filepath.Join(dir, "sticky"), 0o1777|fs.ModeSticky))
	// sparse: 8 MiB, data at 1 MiB and at the end
	f, err := os.Create(filepath.Join(dir, "sparse"))
	must(err)
	_, err = f.WriteAt(data(5000), 1<<20)
	must(err)
	_, err = f.WriteAt([]byte("0123456789"), 8<<20-10)
	must(err)
	must(f.Close())
	dup := data(200000)
	for i := range 3 {
		write(fmt.Sprintf("dup%d", i), dup, 0o644)
	}
	write(strings.Repeat("n", 255), []byte("long name\n"), 0o644)
	write("caf\u00e9-\u6587\u4ef6", []byte("utf-8\n"), 0o644)
	write("latin1-\xe9", []byte("not utf-8\n"), 0o644)
	write("new\nline", []byte("newline\n"), 0o644)
	write("with space 'quote'", []byte("spaces\n"), 0o644)
	deep := "deep"
	for i := range 100 {
		deep = filepath.Join(deep, fmt.Sprintf("d%d", i))
	}
	write(filepath.Join(deep, "bottom"), []byte("bottom\n"), 0o600)
	for i := range 3000 {
		write(fmt.Sprintf("bigdir/entry-%05d-%08x", i, rnd.Uint32()), data(rnd.IntN(300)), 0o644)
	}
	for _, l := range [][2]string{{"size-4096", "rel-link"}, {"/etc/hostname", "abs-link"},
		{"does/not/exist", "dangling-link"}, {strings.Repeat("l", 1000), "long-target-link"}, {"bigdir", "dir-link"},
		{"loop-b", "loop-a"}, {"loop-a", "loop-b"}, {"../../deep/d0/../d0", "bigdir/up-up"}} {
		must(os.Symlink(l[0], filepath.Join(dir, l[1])))
	}
	must(os.Link(filepath.Join(dir, "size-4096"), filepath.Join(dir, "hardlink-1")))
	must(os.Link(filepath.Join(dir, "size-4096"), filepath.Join(dir, "bigdir", "hardlink-2")))
	for i := range 500 {
		write(fmt.Sprintf("small/s%d", i), data(rnd.IntN(9000)), 0o644)
	}
	must(unix.Mkfifo(filepath.Join(dir, "fifo"), 0o644))
	if l, err := net.Listen("unix", filepath.Join(dir, "socket")); err == nil {
		l.(*net.UnixListener).SetUnlinkOnClose(false)
		l.Close()
	}
	// xattrs: user. always (ext4 and tmpfs keep them), the others as root
	setx := func(p, name string, v []byte) {
		t.Helper()
		if err := unix.Lsetxattr(filepath.Join(dir, p), name, v, 0); err != nil {
			t.Fatalf("setxattr %s %s: %v", p, name, err)
		}
	}
	setx("size-1", "user.comment", []byte("one byte"))
	setx("size-1", "user.empty", nil)
	for i := range 40 {
		setx("size-4097", fmt.Sprintf("user.many%02d", i), []byte(fmt.Sprintf("value %d", i)))
	}
	big := data(4000)
	for _, p := range []string{"size-131072", "size-131073", "small/s1", "small/s2"} {
		setx(p, "user.big", big) // repeated: stored once, out of line
	}
	if root {
		ima := append([]byte{3, 2, 4, 0x43, 0x1c, 0x21, 0x74, 1, 0}, data(256)...)
		for _, p := range []string{"size-1", "size-4096", "sparse", "deep"} {
			setx(p, "security.ima", ima)
		}
		setx("small", "trusted.overlay.opaque", []byte("y"))
		setx("abs-link", "trusted.link", []byte("on a symlink"))
		must(unix.Mknod(filepath.Join(dir, "char-dev"), syscall.S_IFCHR|0o600, int(unix.Mkdev(1, 3))))
		must(unix.Mknod(filepath.Join(dir, "block-dev"), syscall.S_IFBLK|0o660, int(unix.Mkdev(7, 0))))
		must(unix.Mknod(filepath.Join(dir, "big-dev"), syscall.S_IFCHR|0o600, int(unix.Mkdev(259, 70000))))
		setx("char-dev", "trusted.dev", []byte("1"))
		must(os.Lchown(filepath.Join(dir, "small/s1"), 1000, 1000))
		must(os.Lchown(filepath.Join(dir, "small/s2"), 65534, 100))
		must(os.Lchown(filepath.Join(dir, "rel-link"), 4242, 4243))
		must(os.Lchown(filepath.Join(dir, "deep"), 123456, 654321))
	}
	// distinct times, directories last
	var paths []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		paths = append(paths, p)
		return err
	})
	for i := len(paths) - 1; i >= 0; i-- {
		ts := unix.NsecToTimespec(time.Unix(1700000000+int64(i)*3607, 0).UnixNano())
		must(unix.UtimesNanoAt(unix.AT_FDCWD, paths[i], []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW))
	}
}

// entryRecord is what both sides must agree on for one path.
type entryRecord struct {
	Mode     fs.FileMode
	UID, GID uint32
	Size     int64 // regular files and symlinks
	MTime    int64
	Nlink    uint32
	Major    uint32
	Minor    uint32
	Target   string
	SHA256   string
	Xattrs   string
}

func fmtXattrs(x []Xattr) string {
	x = sortedXattrs(x)
	var b strings.Builder
	for _, a := range x {
		fmt.Fprintf(&b, "%s=%x;", a.Name, a.Value)
	}
	return b.String()
}

func hashFile(t testing.TB, open func() (io.Reader, error)) string {
	r, err := open()
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		t.Fatal(err)
	}
	if c, ok := r.(io.Closer); ok {
		c.Close()
	}
	return hex.EncodeToString(h.Sum(nil))
}

// sourceRecords describes the tree on disk; links groups hard-linked paths.
func sourceRecords(t testing.TB, dir string) (map[string]entryRecord, [][]string) {
	recs := map[string]entryRecord{}
	byIno := map[uint64][]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		r := entryRecord{Mode: fi.Mode(), UID: st.Uid, GID: st.Gid, MTime: st.Mtim.Sec, Nlink: uint32(st.Nlink)}
		switch {
		case fi.Mode().IsRegular():
			r.Size = fi.Size()
			r.SHA256 = hashFile(t, func() (io.Reader, error) { return os.Open(p) })
			byIno[st.Ino] = append(byIno[st.Ino], rel)
		case fi.Mode()&fs.ModeSymlink != 0:
			r.Size = fi.Size()
			r.Target, _ = os.Readlink(p)
		case fi.Mode()&fs.ModeDevice != 0:
			r.Major, r.Minor = unix.Major(st.Rdev), unix.Minor(st.Rdev)
		}
		if fi.IsDir() || fi.Mode()&(fs.ModeSymlink|fs.ModeDevice|fs.ModeNamedPipe|fs.ModeSocket) != 0 {
			r.Nlink = 0 // compared for regular files only (directory counts are filesystem-specific)
		}
		var xs []Xattr
		sz, _ := unix.Llistxattr(p, nil)
		if sz > 0 {
			buf := make([]byte, sz)
			sz, _ = unix.Llistxattr(p, buf)
			for _, name := range strings.Split(strings.TrimRight(string(buf[:sz]), "\x00"), "\x00") {
				if _, _, ok := SplitXattrName(name); !ok {
					continue // system.* (ACLs) are not stored by mksquashfs
				}
				n, _ := unix.Lgetxattr(p, name, nil)
				v := make([]byte, n)
				n, _ = unix.Lgetxattr(p, name, v)
				xs = append(xs, Xattr{Name: name, Value: v[:n]})
			}
		}
		r.Xattrs = fmtXattrs(xs)
		recs[rel] = r
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return recs, linkGroups(byIno)
}

func linkGroups[K comparable](m map[K][]string) [][]string {
	var out [][]string
	for _, g := range m {
		if len(g) > 1 {
			slices.Sort(g)
			out = append(out, g)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

// imageRecords describes the image as our reader sees it.
func imageRecords(t testing.TB, r *Reader) (map[string]entryRecord, [][]string) {
	recs := map[string]entryRecord{}
	byIno := map[uint32][]string{}
	err := r.Walk(".", func(p string, fi fs.FileInfo, err error) error {
		if err != nil {
			return err
		}
		s := fi.Sys().(*InodeInfo)
		rec := entryRecord{Mode: fi.Mode(), UID: s.UID, GID: s.GID, MTime: fi.ModTime().Unix(), Nlink: s.Nlink,
			Major: s.Major, Minor: s.Minor, Target: s.Target, Xattrs: fmtXattrs(s.Xattrs)}
		if fi.Mode().IsRegular() {
			rec.Size = fi.Size()
			rec.SHA256 = hashFile(t, func() (io.Reader, error) { return r.Open(p) })
			byIno[s.InodeNumber] = append(byIno[s.InodeNumber], p)
		} else if fi.Mode()&fs.ModeSymlink != 0 {
			rec.Size = fi.Size()
		}
		if !fi.Mode().IsRegular() {
			rec.Nlink = 0
		}
		recs[p] = rec
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return recs, linkGroups(byIno)
}

func compareRecords(t *testing.T, got, want map[string]entryRecord) {
	t.Helper()
	for p, w := range want {
		g, ok := got[p]
		if !ok {
			t.Errorf("%q missing from the image", p)
			continue
		}
		if g != w {
			t.Errorf("%q:\n got %+v\nwant %+v", p, g, w)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%q in the image but not in the source", p)
		}
	}
}

func mksquashfs(t testing.TB, src, img string, args ...string) {
	t.Helper()
	bin := testenv.NeedTool(t, "mksquashfs")
	cmd := exec.Command(bin, append([]string{src, img, "-noappend", "-no-progress", "-quiet"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs %v: %v\n%s", args, err, out)
	}
}

// mksquashfsCases: every compressor mksquashfs has, at several block sizes.
var mksquashfsCases = []struct {
	name string
	args []string
}{
	{"gzip-4k", []string{"-comp", "gzip", "-b", "4K"}},
	{"zstd-1m", []string{"-comp", "zstd", "-b", "1M"}},
	{"xz-bcj", []string{"-comp", "xz", "-Xbcj", "x86"}},
	{"lz4-hc", []string{"-comp", "lz4", "-Xhc"}},
	{"lzo", []string{"-comp", "lzo", "-b", "64K"}},
	{"lzma", []string{"-comp", "lzma"}},
	{"gzip-nofrag-plain", []string{"-comp", "gzip", "-no-fragments", "-noI", "-noD", "-no-exports"}},
	{"zstd-always-frag", []string{"-comp", "zstd", "-always-use-fragments", "-b", "16K"}},
}

// TestMksquashfsTree packs the tricky tree with mksquashfs for every
// compressor and checks that our reader sees exactly the source tree: names,
// modes, owners, sizes, times, content, link targets, devices, hard links
// and xattrs.
func TestMksquashfsTree(t *testing.T) {
	testenv.NeedTool(t, "mksquashfs")
	src := filepath.Join(t.TempDir(), "src")
	buildTrickyTree(t, src)
	want, wantLinks := sourceRecords(t, src)
	for _, tc := range mksquashfsCases {
		t.Run(tc.name, func(t *testing.T) {
			if testing.Short() && (tc.args[1] == "xz" || tc.args[1] == "lzma") {
				t.Skip("slow compressor in -short mode (the committed fixtures cover it)")
			}
			img := filepath.Join(t.TempDir(), "img.sqsh")
			mksquashfs(t, src, img, tc.args...)
			rc, err := OpenReader(img)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			got, gotLinks := imageRecords(t, &rc.Reader)
			want := want
			if got["."].Xattrs != want["."].Xattrs { // the root's xattrs are not packed by mksquashfs
				w := maps(want)
				r := w["."]
				r.Xattrs = got["."].Xattrs
				w["."] = r
				want = w
			}
			compareRecords(t, got, want)
			if !slices.EqualFunc(gotLinks, wantLinks, slices.Equal) {
				t.Errorf("hard links %q, want %q", gotLinks, wantLinks)
			}
			crossCheckUnsquashfs(t, &rc.Reader, img)
			checkResolution(t, &rc.Reader)
		})
	}
}

// checkResolution follows links through directories, loops and "..".
func checkResolution(t *testing.T, r *Reader) {
	t.Helper()
	if _, err := r.Open("loop-a"); !errors.Is(err, syscall.ELOOP) {
		t.Errorf("Open(loop-a): %v, want ELOOP", err)
	}
	if fi, err := r.Stat("dir-link/hardlink-2"); err != nil || fi.Size() != 4096 {
		t.Errorf("Stat through a directory link: %v, %v", fi, err)
	}
	if ents, err := r.ReadDir("dir-link"); err != nil || len(ents) != 3002 {
		t.Errorf("ReadDir(dir-link): %d entries, %v; want 3002", len(ents), err)
	}
	if fi, err := r.Stat("bigdir/up-up/d1"); err != nil || !fi.IsDir() {
		t.Errorf("Stat(bigdir/up-up/d1) (.. past the root stays at the root): %v, %v", fi, err)
	}
	if fi, err := r.Lstat("bigdir/up-up"); err != nil || fi.Mode().Type() != fs.ModeSymlink {
		t.Errorf("Lstat of a link: %v, %v", fi, err)
	}
}

func maps(m map[string]entryRecord) map[string]entryRecord {
	out := make(map[string]entryRecord, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// crossCheckUnsquashfs compares our `squashfs ls -l` listing (List with
// Long) with unsquashfs -lln -UTC -d "" on the same image, byte for byte
// after undoing unsquashfs's device quirk (it prints rdev>>8,rdev&0xff) and
// naming the root "/".
func crossCheckUnsquashfs(t *testing.T, r *Reader, img string) {
	t.Helper()
	bin := testenv.NeedTool(t, "unsquashfs")
	out, err := exec.Command(bin, "-lln", "-UTC", "-d", "", img).Output()
	if err != nil {
		t.Fatalf("unsquashfs -lln: %v", err)
	}
	var ours bytes.Buffer
	if err := r.List(&ours, ListOptions{Long: true}); err != nil {
		t.Fatal(err)
	}
	want := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(want) > 0 && strings.HasSuffix(want[0], " ") {
		want[0] += "/"
	}
	for i, l := range want {
		if l == "" || (l[0] != 'c' && l[0] != 'b') {
			continue
		}
		var hi, lo uint32
		f := strings.Fields(l)
		if len(f) < 4 {
			continue
		}
		num := f[2]
		if strings.HasSuffix(num, ",") {
			num += f[3]
		}
		if _, err := fmt.Sscanf(num, "%d,%d", &hi, &lo); err != nil {
			t.Fatalf("cannot parse unsquashfs device line %q", l)
		}
		major, minor := DecodeDev(hi<<8 | lo)
		old := fmt.Sprintf("%3d,%3d ", hi, lo)
		j := strings.Index(l, old)
		if j < 0 {
			t.Fatalf("cannot parse unsquashfs device line %q", l)
		}
		want[i] = l[:j] + fmt.Sprintf("%3d,%3d ", major, minor) + l[j+len(old):]
	}
	got := strings.Split(strings.TrimSuffix(ours.String(), "\n"), "\n")
	if !slices.Equal(got, want) {
		for i := range min(len(got), len(want)) {
			if got[i] != want[i] {
				t.Fatalf("ls -l differs from unsquashfs -lln at line %d:\n ours %q\n peer %q", i+1, got[i], want[i])
			}
		}
		t.Fatalf("ls -l has %d lines, unsquashfs -lln %d", len(got), len(want))
	}
}

// TestMksquashfsFSTest runs testing/fstest on an image of a tree whose links
// all resolve (fstest, like os.DirFS, opens every entry).
func TestMksquashfsFSTest(t *testing.T) {
	src := filepath.Join(t.TempDir(), "src")
	files := fstest.MapFS{}
	for i := range 50 {
		name := fmt.Sprintf("d%d/f%d", i%5, i)
		files[name] = &fstest.MapFile{Data: bytes.Repeat([]byte{byte(i)}, i*997), Mode: 0o644}
	}
	files["top"] = &fstest.MapFile{Data: []byte("top\n"), Mode: 0o600}
	if err := os.CopyFS(src, files); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Symlink("top", filepath.Join(src, "link-to-file")))
	must(os.Symlink("d1", filepath.Join(src, "link-to-dir")))
	must(os.Symlink("../d2/f2", filepath.Join(src, "d3", "up-link")))
	must(os.Symlink("/top", filepath.Join(src, "d4", "abs-link"))) // resolved at the image root
	must(os.Mkdir(filepath.Join(src, "empty"), 0o755))
	for _, comp := range []string{"gzip", "zstd", "xz", "lz4"} {
		t.Run(comp, func(t *testing.T) {
			img := filepath.Join(t.TempDir(), "img.sqsh")
			mksquashfs(t, src, img, "-comp", comp, "-b", "4K")
			rc, err := OpenReader(img)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			if err := fstest.TestFS(rc, "top", "d0/f0", "d4/f49", "link-to-file", "link-to-dir", "d3/up-link", "d4/abs-link", "empty"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestMksquashfsHugeSparse reads a file over 4 GiB (an extended file inode
// with 64-bit size, made of sparse blocks but for a few bytes) packed by
// mksquashfs: its size, the bytes on either side of 4 GiB, and a full
// parallel read (WriteTo) that must see zeros everywhere else.
func TestMksquashfsHugeSparse(t *testing.T) {
	if testing.Short() || os.Getenv("IMAFORGE_TEST_HUGE") == "" {
		t.Skip("set IMAFORGE_TEST_HUGE=1: mksquashfs and the reader each read 4 GiB (about a minute on 2 cores)")
	}
	testenv.NeedTool(t, "mksquashfs")
	src := filepath.Join(t.TempDir(), "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	const size = 4<<30 + 3<<20 + 7
	marks := map[int64]string{1 << 20: "first", 4<<30 - 2: "across 4 GiB", size - 4: "end!"}
	f, err := os.Create(filepath.Join(src, "huge"))
	if err != nil {
		t.Fatal(err)
	}
	for off, s := range marks {
		if _, err := f.WriteAt([]byte(s), off); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	img := filepath.Join(t.TempDir(), "img.sqsh")
	mksquashfs(t, src, img, "-comp", "zstd", "-b", "1M")
	rc, err := OpenReader(img)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	fi, err := rc.Stat("huge")
	if err != nil || fi.Size() != size || fi.Sys().(*InodeInfo).Type != TypeExtReg {
		t.Fatalf("Stat: %v, %v; want an extended file of %d bytes", fi, err, int64(size))
	}
	hf, err := rc.Open("huge")
	if err != nil {
		t.Fatal(err)
	}
	file := hf.(*File)
	for off, s := range marks {
		buf := make([]byte, len(s)+2)
		n, err := file.ReadAt(buf, off-1)
		if (err != nil && err != io.EOF) || string(buf[1:1+len(s)]) != s || buf[0] != 0 {
			t.Errorf("ReadAt(%d) = %q (%d, %v), want %q", off-1, buf[:n], n, err, s)
		}
	}
	zc := &zeroChecker{marks: marks}
	n, err := file.WriteTo(zc)
	if err != nil || n != size {
		t.Fatalf("WriteTo: %d bytes, %v; want %d", n, err, int64(size))
	}
	if zc.bad != "" {
		t.Fatal(zc.bad)
	}
}

// zeroChecker accepts zeros, except the marked strings at their offsets
// (which may be split across writes).
type zeroChecker struct {
	off     int64
	marks   map[int64]string
	pending string // rest of a mark cut by the previous write
	bad     string
}

func (z *zeroChecker) Write(p []byte) (int, error) {
	i := 0
	if z.pending != "" {
		k := min(len(z.pending), len(p))
		if string(p[:k]) != z.pending[:k] && z.bad == "" {
			z.bad = fmt.Sprintf("mark cut at %d continues as %q", z.off, p[:k])
		}
		z.pending, i = z.pending[k:], k
	}
	for i < len(p) {
		j := bytes.IndexFunc(p[i:], func(r rune) bool { return r != 0 })
		if j < 0 {
			break
		}
		at := z.off + int64(i+j)
		s, ok := z.marks[at]
		if rest := p[i+j:]; ok && len(rest) < len(s) && strings.HasPrefix(s, string(rest)) {
			z.pending = s[len(rest):]
			break
		}
		if !ok || !bytes.HasPrefix(p[i+j:], []byte(s)) {
			if z.bad == "" {
				z.bad = fmt.Sprintf("unexpected byte %#x at %d", p[i+j], at)
			}
			return len(p), nil
		}
		i += j + len(s)
	}
	z.off += int64(len(p))
	return len(p), nil
}
