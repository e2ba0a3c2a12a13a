package tarimage

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/imaforge/imaforge/internal/testenv"
	"github.com/imaforge/imaforge/squashfs"
)

// content is a reader that counts opens and closes and checks that it is
// read once to the end before Close.
type content struct {
	data          []byte
	opens, closes *atomic.Int32
	readAll       *atomic.Bool
}

func (c content) open() (io.ReadCloser, error) {
	c.opens.Add(1)
	return &contentReader{r: bytes.NewReader(c.data), c: c}, nil
}

type contentReader struct {
	r *bytes.Reader
	c content
}

func (r *contentReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err == io.EOF {
		r.c.readAll.Store(true)
	}
	return n, err
}

func (r *contentReader) Close() error { r.c.closes.Add(1); return nil }

type file struct {
	content
	sealed atomic.Int32
}

// sample returns entries with every member type, signed files of sizes
// around MemFile, an unsigned large file and a hard link.
func sample(t *testing.T) ([]Entry, map[string]*file) {
	t.Helper()
	files := map[string]*file{}
	mk := func(p string, size int, signed bool) Entry {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i*7 + len(p))
		}
		f := &file{content: content{data: data, opens: new(atomic.Int32), closes: new(atomic.Int32), readAll: new(atomic.Bool)}}
		files[p] = f
		e := Entry{Path: p, Mode: 0o755, UID: 1000, GID: 1000, ModTime: 1700000000, Size: int64(size), Open: f.open,
			Xattrs: []Xattr{{Name: "user.plain", Value: []byte("v")}}}
		if signed {
			e.Seal = func() ([]Xattr, error) {
				if f.closes.Load() != 1 || !f.readAll.Load() {
					return nil, fmt.Errorf("%s sealed before its content was read and closed", p)
				}
				f.sealed.Add(1)
				sum := sha256.Sum256(data)
				return []Xattr{{Name: "security.ima", Value: append([]byte{4, 4}, sum[:]...)}, {Name: "security.evm", Value: []byte{5, 0, 1}}}, nil
			}
		}
		return e
	}
	es := []Entry{
		{Path: "/", Mode: fs.ModeDir | 0o755, ModTime: 1700000000},
		{Path: "/bin", Mode: fs.ModeDir | 0o755, ModTime: 1700000000},
		mk("/bin/big", 300<<10, true),
		mk("/bin/empty", 0, true),
		{Path: "/bin/link", LinkTo: "/bin/small", ModTime: 1700000000},
		mk("/bin/small", 100, true),
		mk("/bin/suid", 5000, true),
		{Path: "/dev", Mode: fs.ModeDir | 0o755, ModTime: 1700000000},
		{Path: "/dev/null", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o666, Major: 1, Minor: 3, ModTime: 1700000000},
		{Path: "/dev/sda", Mode: fs.ModeDevice | 0o660, Major: 8, GID: 6, ModTime: 1700000000},
		{Path: "/fifo", Mode: fs.ModeNamedPipe | 0o600, ModTime: 1700000000},
		{Path: "/sh", Mode: fs.ModeSymlink | 0o777, Target: "bin/small", ModTime: 1700000000},
		mk("/unsigned-large", 200<<10, false),
		mk("/ünïcode name with a very long tail "+strings.Repeat("x", 120), 10, true),
	}
	es[6].Mode |= fs.ModeSetuid | fs.ModeSetgid
	return es, files
}

func build(t *testing.T, opts Options) ([]byte, map[string]*file, Stats) {
	t.Helper()
	es, files := sample(t)
	var buf bytes.Buffer
	w, err := NewWriter(&buf, opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		if err := w.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.WriteData(context.Background()); err != nil {
		t.Fatal(err)
	}
	st, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), files, st
}

// TestWriterReadBack: every member comes back with its type, mode, owner,
// device numbers, link target and xattrs (the signed files' from Seal,
// before their data), each file opened, read to the end and closed once,
// and sealed once after that.
func TestWriterReadBack(t *testing.T) {
	spool := t.TempDir()
	b, files, st := build(t, Options{Workers: 3, MemFile: 64 << 10, Window: 128 << 10, SpoolDir: spool})
	if st.Spooled != 300<<10 {
		t.Errorf("spooled %d bytes, want the one large signed file (%d)", st.Spooled, 300<<10)
	}
	if left, _ := os.ReadDir(spool); len(left) != 0 {
		t.Errorf("spool files left: %v", left)
	}
	for p, f := range files {
		if f.opens.Load() != 1 || f.closes.Load() != 1 {
			t.Errorf("%s opened %d, closed %d times", p, f.opens.Load(), f.closes.Load())
		}
	}
	tr := tar.NewReader(bytes.NewReader(b))
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Uname != "" || h.Gname != "" || !h.AccessTime.IsZero() || !h.ChangeTime.IsZero() || h.ModTime.Unix() != 1700000000 {
			t.Errorf("%s: names %q/%q, times %v %v %v", h.Name, h.Uname, h.Gname, h.ModTime, h.AccessTime, h.ChangeTime)
		}
		data, _ := io.ReadAll(tr)
		switch h.Name {
		case "./bin/suid":
			if h.Mode != 0o6755 || h.Uid != 1000 {
				t.Errorf("suid: mode %o uid %d", h.Mode, h.Uid)
			}
			fallthrough
		case "./bin/big", "./bin/small", "./bin/empty":
			f := files[strings.TrimPrefix(h.Name, ".")]
			if !bytes.Equal(data, f.data) {
				t.Errorf("%s: content differs", h.Name)
			}
			sum := sha256.Sum256(f.data)
			if h.PAXRecords["SCHILY.xattr.security.ima"] != string(append([]byte{4, 4}, sum[:]...)) ||
				h.PAXRecords["SCHILY.xattr.security.evm"] != "\x05\x00\x01" {
				t.Errorf("%s: pax records %q", h.Name, h.PAXRecords)
			}
			if f.sealed.Load() != 1 {
				t.Errorf("%s sealed %d times", h.Name, f.sealed.Load())
			}
		case "./unsigned-large":
			if h.PAXRecords["SCHILY.xattr.user.plain"] != "v" || len(data) != 200<<10 {
				t.Errorf("unsigned: %q, %d bytes", h.PAXRecords, len(data))
			}
		case "./bin/link":
			if h.Typeflag != tar.TypeLink || h.Linkname != "./bin/small" {
				t.Errorf("link: %c %q", h.Typeflag, h.Linkname)
			}
		case "./dev/null":
			if h.Typeflag != tar.TypeChar || h.Devmajor != 1 || h.Devminor != 3 || h.Mode != 0o666 {
				t.Errorf("null: %+v", h)
			}
		case "./dev/sda":
			if h.Typeflag != tar.TypeBlock || h.Devmajor != 8 || h.Gid != 6 {
				t.Errorf("sda: %+v", h)
			}
		case "./fifo":
			if h.Typeflag != tar.TypeFifo {
				t.Errorf("fifo: %c", h.Typeflag)
			}
		case "./sh":
			if h.Typeflag != tar.TypeSymlink || h.Linkname != "bin/small" {
				t.Errorf("symlink: %c %q", h.Typeflag, h.Linkname)
			}
		}
	}
	want := "./ ./bin/ ./bin/big ./bin/empty ./bin/link ./bin/small ./bin/suid ./dev/ ./dev/null ./dev/sda ./fifo ./sh ./unsigned-large ./ünïcode"
	if got := strings.Join(names, " "); !strings.HasPrefix(got, want) {
		t.Errorf("members:\n%s\nwant\n%s...", got, want)
	}
}

// TestWriterDeterministic: the bytes depend on the entries only, not on
// workers, memory limits (spooling) or libzstd's threads; gzip and zstd
// output decompresses to the plain archive.
func TestWriterDeterministic(t *testing.T) {
	for _, c := range []Compression{None, Gzip, Zstd} {
		t.Run(fmt.Sprint(c), func(t *testing.T) {
			if c == Zstd && !cgoZstd() {
				t.Skip("no tar.zst without cgo (TestZstdNeedsCgo)")
			}
			a, _, _ := build(t, Options{Compression: c, Workers: 1})
			threads := ZstdThreads
			ZstdThreads = 3
			b, _, _ := build(t, Options{Compression: c, Workers: 4, MemFile: 1 << 10, Window: 4 << 10, SpoolDir: t.TempDir()})
			ZstdThreads = threads
			if !bytes.Equal(a, b) {
				t.Fatal("archives differ with workers, spooling and libzstd's threads")
			}
			plain, _, _ := build(t, Options{})
			var r io.Reader = bytes.NewReader(a)
			switch c {
			case Gzip:
				zr, err := gzip.NewReader(r)
				if err != nil {
					t.Fatal(err)
				}
				if zr.Header.ModTime.Unix() > 0 || zr.Header.Name != "" {
					t.Errorf("gzip header %+v", zr.Header)
				}
				r = zr
			case Zstd:
				zr, err := zstd.NewReader(r)
				if err != nil {
					t.Fatal(err)
				}
				defer zr.Close()
				r = zr
			}
			got, err := io.ReadAll(r)
			if err != nil || !bytes.Equal(got, plain) {
				t.Fatalf("decompressed archive differs from the plain one (%v)", err)
			}
		})
	}
}

// TestWriterRefuses: what tar cannot store fails at Add.
func TestWriterRefuses(t *testing.T) {
	for _, tc := range []struct {
		e    Entry
		want error
	}{
		{Entry{Path: "/bad\xffname", Mode: 0o644}, ErrName},
		{Entry{Path: "/l", Mode: fs.ModeSymlink, Target: "x\xfe"}, ErrName},
		{Entry{Path: "/nobody", Mode: 0o644, UID: 1<<32 - 1}, ErrOwner},
		{Entry{Path: "/nogroup", Mode: fs.ModeDir, GID: 1<<32 - 1}, ErrOwner},
		{Entry{Path: "/sock", Mode: fs.ModeSocket}, ErrType},
		{Entry{Path: "relative", Mode: 0o644}, ErrName},
		{Entry{Path: "/f", Mode: 0o644, Size: 3}, ErrSizeMismatch},
	} {
		w, _ := NewWriter(io.Discard, Options{})
		if err := w.Add(tc.e); !errors.Is(err, tc.want) || !strings.Contains(err.Error(), strings.TrimSuffix(tc.e.Path, "\xffname")) {
			t.Errorf("%q: %v, want %v", tc.e.Path, err, tc.want)
		}
	}
}

// TestWriterSizeAndSealErrors: content shorter or longer than declared
// fails WriteData naming the path, a failing Seal fails it with Seal's
// error, and no spool file is left.
func TestWriterSizeAndSealErrors(t *testing.T) {
	open := func(s string) func() (io.ReadCloser, error) {
		return func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(s)), nil }
	}
	sealErr := errors.New("key refused")
	for _, tc := range []struct {
		name string
		e    Entry
		want error
	}{
		{"short", Entry{Path: "/short", Size: 5, Open: open("abc")}, ErrSizeMismatch},
		{"long", Entry{Path: "/long", Size: 2, Open: open("abc")}, ErrSizeMismatch},
		{"long-unsigned-direct", Entry{Path: "/long", Size: 2, Open: open("abc")}, ErrSizeMismatch},
		{"seal", Entry{Path: "/sealed", Size: 3, Open: open("abc"), Seal: func() ([]Xattr, error) { return nil, sealErr }}, sealErr},
	} {
		t.Run(tc.name, func(t *testing.T) {
			spool := t.TempDir()
			opts := Options{SpoolDir: spool, MemFile: 1}
			if tc.name == "long-unsigned-direct" {
				opts.MemFile = 1 // unsigned and over MemFile: read by the committer
			} else if tc.e.Seal == nil {
				opts.MemFile = 0
			}
			w, _ := NewWriter(io.Discard, opts)
			if err := w.Add(tc.e); err != nil {
				t.Fatal(err)
			}
			err := w.WriteData(context.Background())
			// Seal's own error is passed on as it is (the caller names the path).
			if !errors.Is(err, tc.want) || (tc.e.Seal == nil && !strings.Contains(err.Error(), tc.e.Path)) {
				t.Errorf("%v, want %v naming %s", err, tc.want, tc.e.Path)
			}
			if left, _ := os.ReadDir(spool); len(left) != 0 {
				t.Errorf("spool files left: %v", left)
			}
		})
	}
}

// cgoZstd reports whether this build writes tar.zst (libzstd, cgo).
func cgoZstd() bool {
	_, err := squashfs.EncoderOf(squashfs.Zstd)
	return err == nil
}

// TestZstdNeedsCgo: without cgo, tar.zst is refused with
// squashfs.ErrNoEncoder (klauspost/compress would give other bytes than
// libzstd), naming tar.zst and the ways out, as compressed SquashFS is.
func TestZstdNeedsCgo(t *testing.T) {
	_, err := NewWriter(io.Discard, Options{Compression: Zstd})
	if cgoZstd() {
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	if !errors.Is(err, squashfs.ErrNoEncoder) || !strings.Contains(err.Error(), "tar.zst needs the cgo build") ||
		!strings.Contains(err.Error(), "image.format: tar or tar.gz") {
		t.Fatalf("without cgo: %v, want ErrNoEncoder naming tar.zst and the other formats", err)
	}
}

// TestZstdPeer: the zstd tool tests the archive (frame checksum included),
// lists it as one frame with an XXH64 check, and decompresses it to the
// plain archive; GNU tar and bsdtar list its members.
func TestZstdPeer(t *testing.T) {
	if !cgoZstd() {
		t.Skip("no tar.zst without cgo (TestZstdNeedsCgo)")
	}
	zstdTool := testenv.NeedTool(t, "zstd")
	gnutar := testenv.NeedTool(t, "tar")
	bsdtar := testenv.NeedTool(t, "bsdtar")
	a, _, _ := build(t, Options{Compression: Zstd, Workers: 2})
	plain, _, _ := build(t, Options{})
	f := filepath.Join(t.TempDir(), "a.tar.zst")
	if err := os.WriteFile(f, a, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(zstdTool, "-t", f).CombinedOutput(); err != nil {
		t.Fatalf("zstd -t: %v\n%s", err, out)
	}
	out, err := exec.Command(zstdTool, "-lv", f).CombinedOutput()
	if err != nil || !regexp.MustCompile(`# Zstandard Frames: 1\b`).Match(out) || !regexp.MustCompile(`Check: XXH64`).Match(out) {
		t.Errorf("zstd -lv: %v\n%s\nwant one frame with an XXH64 check", err, out)
	}
	got, err := exec.Command(zstdTool, "-dc", f).Output()
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("zstd -dc: %v; %d bytes, want the plain archive's %d", err, len(got), len(plain))
	}
	// A flipped byte in the last block is caught (by the block or the
	// frame checksum).
	bad := bytes.Clone(a)
	bad[len(bad)-6] ^= 0x40
	if err := os.WriteFile(f+".bad", bad, 0o644); err != nil {
		t.Fatal(err)
	}
	if exec.Command(zstdTool, "-t", f+".bad").Run() == nil {
		t.Error("zstd -t accepts a corrupted archive")
	}
	for _, tool := range [][]string{{gnutar, "--zstd", "-tf", f}, {bsdtar, "-tf", f}} {
		out, err := exec.Command(tool[0], tool[1:]...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "./bin/suid\n") || !strings.Contains(string(out), "./unsigned-large\n") {
			t.Errorf("%v: %v\n%s", tool, err, out)
		}
	}
}
