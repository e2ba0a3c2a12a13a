package rootfs

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/imaforge/imaforge/internal/testenv"
	"github.com/imaforge/imaforge/manifest"
)

// largeMembers is an archive larger than every buffer on the way (the
// decompressors' windows, bufio's 64 KiB, the spool's chunk): two members of
// several MiB of incompressible bytes, one long run of zeros, and many small
// members, so the compressed stream is read long after the walk started.
func largeMembers() []member {
	rnd := rand.New(rand.NewSource(16))
	blob := func(n int) string {
		b := make([]byte, n)
		rnd.Read(b)
		return string(b)
	}
	ms := []member{
		reg("big/a", 0o644, blob(3<<20+17)),
		reg("big/zeros-then-data", 0o644, string(make([]byte, 2<<20))+blob(100_000)),
		reg("big/b", 0o644, blob(1<<20+5)),
	}
	for i := range 600 {
		ms = append(ms, reg(fmt.Sprintf("many/%03d", i), 0o644, blob(i*7)))
	}
	return ms
}

// compressCmd compresses a file with a peer tool (bzip2 has no Go writer;
// xz's CLI is much faster than a Go writer on MiB of random data).
func compressCmd(t *testing.T, tool string, args ...string) func(string, []byte) {
	return func(path string, tarData []byte) {
		bin := testenv.NeedTool(t, tool)
		cmd := exec.Command(bin, args...)
		cmd.Stdin = bytes.NewReader(tarData)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: %v", tool, err)
		}
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestTarLargeCompressed walks big compressed tarballs in all four
// compressions and reads every member back. Before the fix the file under
// the decompressor was closed after the first 64 KiB were buffered: "read
// ...: file already closed".
func TestTarLargeCompressed(t *testing.T) {
	members := largeMembers()
	var buf bytes.Buffer
	writeTar(t, &buf, members)
	tarData := buf.Bytes()
	goCompress := func(mk func(io.Writer) (io.WriteCloser, error)) func(string, []byte) {
		return func(path string, data []byte) {
			var out bytes.Buffer
			w, err := mk(&out)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(data); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, c := range []struct {
		name  string
		write func(string, []byte)
	}{
		{"root.tar.gz", goCompress(func(w io.Writer) (io.WriteCloser, error) { return gzip.NewWriter(w), nil })},
		{"root.tar.zst", goCompress(func(w io.Writer) (io.WriteCloser, error) { return zstd.NewWriter(w) })},
		{"root.tar.xz", compressCmd(t, "xz", "-0", "-T1", "-c")},
		{"root.tar.bz2", compressCmd(t, "bzip2", "-1", "-c")},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := newProject(t)
			c.write(p.path(c.name), tarData)
			tr, err := p.walk("sources:\n  - from: "+c.name+"\n", Options{TempDir: p.dir})
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range members {
				e, ok := tr.Lookup("/" + m.hdr.Name)
				if !ok {
					t.Fatalf("%s missing", m.hdr.Name)
				}
				if got := content(t, e); sha256.Sum256([]byte(got)) != sha256.Sum256([]byte(m.data)) {
					t.Fatalf("%s: content differs (%d bytes, want %d)", m.hdr.Name, len(got), len(m.data))
				}
			}
			// The 2 MiB run of zeros is a hole, not spooled data.
			var data int64
			for _, m := range members {
				data += int64(len(m.data))
			}
			if tr.Spooled > data-2<<20 {
				t.Errorf("spooled %d bytes of %d: the zeros were written", tr.Spooled, data)
			}
		})
	}
}

// TestTarSparseMember: a GNU sparse member of 1 GiB (an archive of a few
// KiB) is spooled as a hole: the spool's file system gets no zeros. Before,
// every zero was written to $TMPDIR.
func TestTarSparseMember(t *testing.T) {
	tarBin := testenv.NeedTool(t, "tar")
	p := newProject(t)
	src := filepath.Join(p.dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	const size = 1 << 30
	f, err := os.Create(filepath.Join(src, "disk.img"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("middle"), size/2); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, name := range []string{"sparse.tar", "sparse.tar.gz"} {
		t.Run(name, func(t *testing.T) {
			args := []string{"-cSf", p.path(name), "-C", src, "disk.img"}
			if filepath.Ext(name) == ".gz" {
				args[0] = "-czSf"
			}
			if out, err := exec.Command(tarBin, args...).CombinedOutput(); err != nil {
				t.Fatalf("tar: %v\n%s", err, out)
			}
			if st, _ := os.Stat(p.path(name)); st.Size() > 1<<20 {
				t.Fatalf("%s is %d bytes: not a sparse archive", name, st.Size())
			}
			spoolDir := t.TempDir()
			tr, err := p.walk("sources:\n  - from: "+name+"\n", Options{TempDir: spoolDir, MaxSpool: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			if tr.Spooled > 64<<10 {
				t.Errorf("spooled %d bytes for a member with 6 bytes of data", tr.Spooled)
			}
			e, _ := tr.Lookup("/disk.img")
			if e.Size != size {
				t.Fatalf("size %d", e.Size)
			}
			tm := e.Content.(*TarMember)
			var st syscall.Stat_t
			if err := syscall.Fstat(int(tm.s.f.Fd()), &st); err != nil {
				t.Fatal(err)
			}
			if st.Blocks*512 > 1<<20 {
				t.Errorf("the spool file takes %d bytes on disk", st.Blocks*512)
			}
			r, err := e.Content.Open()
			if err != nil {
				t.Fatal(err)
			}
			got := make([]byte, 8)
			if _, err := r.(io.ReaderAt).ReadAt(got, size/2-1); err != nil {
				t.Fatal(err)
			}
			if string(got) != "\x00middle\x00" {
				t.Errorf("bytes at the data: %q", got)
			}
			if _, err := r.(io.ReaderAt).ReadAt(got, size-8); err != nil || !bytes.Equal(got, make([]byte, 8)) {
				t.Errorf("tail: %q, %v", got, err)
			}
			r.Close()
		})
	}
}

// TestTarSpoolLimit: member data beyond Options.MaxSpool fails the walk with
// ErrSpoolLimit, and the error is a build failure (exit 1), not a manifest
// error (exit 2), naming the tarball and the member.
func TestTarSpoolLimit(t *testing.T) {
	p := newProject(t)
	p.tarball("rootfs.tgz", []member{reg("small", 0o644, "x"), reg("big", 0o644, string(bytes.Repeat([]byte("data"), 100_000)))})
	_, err := p.walk("sources:\n  - from: rootfs.tgz\n", Options{TempDir: p.dir, MaxSpool: 200_000})
	if !errors.Is(err, ErrSpoolLimit) {
		t.Fatalf("err %v, want ErrSpoolLimit", err)
	}
	var me *manifest.Error
	if errors.As(err, &me) {
		t.Errorf("a full spool is reported as a manifest error (exit 2): %v", err)
	}
	if want := p.path("rootfs.tgz") + `: member "big"`; !bytes.Contains([]byte(err.Error()), []byte(want)) {
		t.Errorf("error %q does not name %s", err, want)
	}
}
