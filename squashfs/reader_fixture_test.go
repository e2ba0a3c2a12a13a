package squashfs

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
)

// The fixtures in testdata/squashfs were made by mksquashfs 4.5.1 with
// scripts/mkfixtures-squashfs.sh from one source tree; the goldens next to
// them come from the peers (unsquashfs -lln, sha256sum and getfattr over the
// source tree), never from this package.
var fixtures = []struct {
	name   string
	comp   Compression
	xattrs bool
}{
	{"tree-gzip", Gzip, true},
	{"tree-zstd", Zstd, true},
	{"tree-xz", XZ, true},
	{"tree-lz4", LZ4, true},
	{"tree-lzo", LZO, true},
	{"tree-lzma", LZMA, true},
	{"tree-gzip-opts", Gzip, true},
	{"tree-plain", Gzip, false},
	{"tree-xz-bcj", XZ, true},
}

const fixtureDir = "../testdata/squashfs"

func openFixture(t testing.TB, name string) *Reader {
	t.Helper()
	rc, err := OpenReader(filepath.Join(fixtureDir, name+".sqsh"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rc.Close() })
	return &rc.Reader
}

// unsquashfsLine renders an entry exactly as unsquashfs -lln -UTC -d ""
// does, including its device quirk (rdev>>8, rdev&0xff).
func unsquashfsLine(name string, fi fs.FileInfo) string {
	s := *fi.Sys().(*InodeInfo)
	if fi.Mode()&fs.ModeDevice != 0 {
		s.Major, s.Minor = s.Rdev>>8, s.Rdev&0xff
	}
	return LongLine(name, sysOverride{fi, &s})
}

type sysOverride struct {
	fs.FileInfo
	sys *InodeInfo
}

func (o sysOverride) Sys() any { return o.sys }

// ourUnsquashfsListing walks r and renders every entry as unsquashfs -lln
// -UTC -d "" does (the root as an empty name).
func ourUnsquashfsListing(t testing.TB, r *Reader) []string {
	t.Helper()
	var lines []string
	err := r.Walk(".", func(p string, fi fs.FileInfo, err error) error {
		if err != nil {
			return err
		}
		name := ""
		if p != "." {
			name = "/" + p
		}
		lines = append(lines, unsquashfsLine(name, fi))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

func readLines(t testing.TB, file string) []string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

func TestFixtureListing(t *testing.T) {
	for _, fx := range fixtures {
		t.Run(fx.name, func(t *testing.T) {
			golden := "tree.lln"
			if fx.name == "tree-plain" {
				golden = "tree-plain.lln"
			}
			want := readLines(t, filepath.Join(fixtureDir, golden))
			r := openFixture(t, fx.name)
			if got := r.Superblock().Compression; got != fx.comp {
				t.Errorf("compression %v, want %v", got, fx.comp)
			}
			got := ourUnsquashfsListing(t, r)
			if !slices.Equal(got, want) {
				for i := range max(len(got), len(want)) {
					g, w := "", ""
					if i < len(got) {
						g = got[i]
					}
					if i < len(want) {
						w = want[i]
					}
					if g != w {
						t.Fatalf("listing line %d:\n got %q\nwant %q", i+1, g, w)
					}
				}
			}
		})
	}
}

// sha256 golden: "HEX  ./path" per regular file of the source tree.
func TestFixtureContent(t *testing.T) {
	want := map[string]string{}
	for _, l := range readLines(t, filepath.Join(fixtureDir, "tree.sha256")) {
		sum, p, ok := strings.Cut(l, "  ./")
		if !ok {
			t.Fatalf("bad golden line %q", l)
		}
		want[p] = sum
	}
	for _, fx := range fixtures {
		t.Run(fx.name, func(t *testing.T) {
			r := openFixture(t, fx.name)
			got := map[string]string{}
			err := r.Walk(".", func(p string, fi fs.FileInfo, err error) error {
				if err != nil || !fi.Mode().IsRegular() {
					return err
				}
				// Three ways to read: WriteTo (parallel), Read in small
				// pieces, ReadFile; all must agree.
				f, err := r.Open(p)
				if err != nil {
					return err
				}
				defer f.Close()
				h := sha256.New()
				if _, err := io.Copy(h, f); err != nil {
					return err
				}
				got[p] = hex.EncodeToString(h.Sum(nil))
				f2, _ := r.Open(p)
				small, err := io.ReadAll(struct{ io.Reader }{iotestReader{f2, 777}})
				if err != nil {
					return err
				}
				all, err := r.ReadFile(p)
				if err != nil {
					return err
				}
				if !bytes.Equal(small, all) || int64(len(all)) != fi.Size() {
					t.Errorf("%s: Read and ReadFile differ (%d, %d bytes, size %d)", p, len(small), len(all), fi.Size())
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Errorf("%d regular files, want %d", len(got), len(want))
			}
			for p, w := range want {
				if got[p] != w {
					t.Errorf("%s: sha256 %s, want %s", p, got[p], w)
				}
			}
		})
	}
}

// iotestReader reads at most n bytes per call.
type iotestReader struct {
	r io.Reader
	n int
}

func (r iotestReader) Read(p []byte) (int, error) { return r.r.Read(p[:min(len(p), r.n)]) }

// parseGetfattr reads getfattr -R -h -d -m - -e hex output: "# file: PATH"
// (octal escapes for unusual bytes), then NAME=0xHEX lines.
func parseGetfattr(t testing.TB, file string) map[string][]Xattr {
	t.Helper()
	out := map[string][]Xattr{}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cur := ""
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case l == "":
		case strings.HasPrefix(l, "# file: "):
			cur = unescapeOctal(strings.TrimPrefix(strings.TrimPrefix(l, "# file: "), "./"))
			out[cur] = nil
		default:
			name, val, ok := strings.Cut(l, "=")
			v := []byte{}
			if ok {
				var err error
				if v, err = hex.DecodeString(strings.TrimPrefix(val, "0x")); err != nil {
					t.Fatalf("bad getfattr line %q", l)
				}
			}
			out[cur] = append(out[cur], Xattr{Name: name, Value: v})
		}
	}
	return out
}

func unescapeOctal(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func sortedXattrs(x []Xattr) []Xattr {
	x = slices.Clone(x)
	slices.SortFunc(x, func(a, b Xattr) int { return strings.Compare(a.Name, b.Name) })
	return x
}

func TestFixtureXattrs(t *testing.T) {
	want := parseGetfattr(t, filepath.Join(fixtureDir, "tree.xattrs"))
	if len(want) < 5 {
		t.Fatalf("golden has only %d files with xattrs", len(want))
	}
	for _, fx := range fixtures {
		t.Run(fx.name, func(t *testing.T) {
			r := openFixture(t, fx.name)
			n := 0
			err := r.Walk(".", func(p string, fi fs.FileInfo, err error) error {
				if err != nil {
					return err
				}
				got := fi.Sys().(*InodeInfo).Xattrs
				x, err := r.Xattrs(p)
				if err != nil {
					return err
				}
				if !xattrsEqual(x, got) {
					t.Errorf("%s: Xattrs %v, Sys().Xattrs %v", p, x, got)
				}
				w := want[p]
				if !fx.xattrs {
					w = nil
				}
				if len(got) > 0 {
					n++
				}
				if !xattrsEqual(sortedXattrs(got), sortedXattrs(w)) {
					t.Errorf("%s: xattrs %v, want %v", p, got, w)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if fx.xattrs && n != len(want) {
				t.Errorf("%d entries with xattrs, want %d", n, len(want))
			}
		})
	}
}

func xattrsEqual(a, b []Xattr) bool {
	return slices.EqualFunc(a, b, func(x, y Xattr) bool { return x.Name == y.Name && bytes.Equal(x.Value, y.Value) })
}

// TestFixtureExportTable finds every walked entry again by inode number
// through the export table (absent from tree-gzip-opts: -no-exports).
func TestFixtureExportTable(t *testing.T) {
	for _, fx := range fixtures {
		t.Run(fx.name, func(t *testing.T) {
			r := openFixture(t, fx.name)
			seen := map[uint32]bool{}
			err := r.Walk(".", func(p string, fi fs.FileInfo, err error) error {
				if err != nil {
					return err
				}
				s := fi.Sys().(*InodeInfo)
				byNum, err := r.StatInode(s.InodeNumber)
				if fx.name == "tree-gzip-opts" {
					if !errors.Is(err, ErrNoExportTable) {
						t.Fatalf("StatInode without an export table: %v", err)
					}
					return fs.SkipAll
				}
				if err != nil {
					return err
				}
				if byNum.Mode() != fi.Mode() || byNum.Size() != fi.Size() || byNum.Sys().(*InodeInfo).InodeNumber != s.InodeNumber {
					t.Errorf("%s: StatInode(%d) = %v, walk gave %v", p, s.InodeNumber, byNum, fi)
				}
				seen[s.InodeNumber] = true
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if fx.name != "tree-gzip-opts" && len(seen) != int(r.Superblock().Inodes) {
				t.Errorf("walk reached %d inodes, superblock has %d", len(seen), r.Superblock().Inodes)
			}
			if _, err := r.StatInode(r.Superblock().Inodes + 1); err == nil {
				t.Error("StatInode past the inode count succeeded")
			}
		})
	}
}

func TestFixtureLinksAndLookups(t *testing.T) {
	r := openFixture(t, "tree-gzip")
	// Hard links share the inode.
	var first *InodeInfo
	for _, p := range []string{"hello.txt", "dir/hardlink-to-hello", "dir/sub/hardlink-2"} {
		fi, err := r.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		s := fi.Sys().(*InodeInfo)
		if s.Nlink != 3 {
			t.Errorf("%s: nlink %d, want 3", p, s.Nlink)
		}
		if first == nil {
			first = s
		} else if s.InodeNumber != first.InodeNumber {
			t.Errorf("%s: inode %d, want %d (hard link)", p, s.InodeNumber, first.InodeNumber)
		}
	}
	// Symbolic links: followed by Open/Stat/ReadFile inside the image.
	for _, tc := range []struct {
		path, target, content string
		err                   error
	}{
		{"rel-link", "hello.txt", "hello, squashfs\n", nil},
		{"dir/up-link", "../hello.txt", "hello, squashfs\n", nil},
		{"dangling-link", "does/not/exist", "", fs.ErrNotExist},
		{"abs-link", "/etc/hostname", "", fs.ErrNotExist},
	} {
		tgt, err := r.ReadLink(tc.path)
		if err != nil || tgt != tc.target {
			t.Errorf("ReadLink(%s) = %q, %v; want %q", tc.path, tgt, err, tc.target)
		}
		b, err := r.ReadFile(tc.path)
		if !errors.Is(err, tc.err) || string(b) != tc.content {
			t.Errorf("ReadFile(%s) = %q, %v; want %q, %v", tc.path, b, err, tc.content, tc.err)
		}
		fi, err := r.Lstat(tc.path)
		if err != nil || fi.Mode().Type() != fs.ModeSymlink || fi.Sys().(*InodeInfo).Target != tc.target {
			t.Errorf("Lstat(%s) = %v, %v", tc.path, fi, err)
		}
	}
	if _, err := r.ReadLink("hello.txt"); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("ReadLink of a file: %v, want ErrInvalid", err)
	}
	if _, err := r.Stat("hello.txt/x"); !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("Stat below a file: %v, want ENOTDIR", err)
	}
	for _, bad := range []string{"/hello.txt", "dir/../hello.txt", "dir/", ""} {
		if _, err := r.Open(bad); !errors.Is(err, fs.ErrInvalid) {
			t.Errorf("Open(%q): %v, want ErrInvalid", bad, err)
		}
	}
	// Devices.
	for _, tc := range []struct {
		path         string
		major, minor uint32
	}{{"char-dev", 1, 3}, {"block-dev", 7, 0}, {"big-minor-dev", 4, 300}} {
		fi, err := r.Lstat(tc.path)
		if err != nil {
			t.Fatal(err)
		}
		s := fi.Sys().(*InodeInfo)
		if s.Major != tc.major || s.Minor != tc.minor || fi.Mode()&fs.ModeDevice == 0 {
			t.Errorf("%s: %v %d,%d; want device %d,%d", tc.path, fi.Mode(), s.Major, s.Minor, tc.major, tc.minor)
		}
	}
}

// TestFixtureDirIndex looks up every entry of a directory whose listing spans
// several metadata blocks: the lookup starts from the directory index, which
// must name the entries it points at.
func TestFixtureDirIndex(t *testing.T) {
	for _, fx := range fixtures {
		t.Run(fx.name, func(t *testing.T) {
			r := openFixture(t, fx.name)
			in, err := r.resolve("test", "bigdir", false)
			if err != nil {
				t.Fatal(err)
			}
			if in.typ != TypeExtDir || len(in.index) == 0 {
				t.Fatalf("bigdir: type %d with %d index entries; want an indexed extended directory", in.typ, len(in.index))
			}
			ents, err := r.ReadDir("bigdir")
			if err != nil {
				t.Fatal(err)
			}
			if len(ents) != 400 {
				t.Fatalf("bigdir has %d entries, want 400", len(ents))
			}
			for i, e := range ents {
				b, err := r.ReadFile("bigdir/" + e.Name())
				if err != nil || string(b) != fmt.Sprintf("%03d\n", i+1) {
					t.Fatalf("ReadFile(bigdir/%s) = %q, %v", e.Name(), b, err)
				}
				// A name sorting just before and just after is absent.
				for _, miss := range []string{e.Name()[:len(e.Name())-1], e.Name() + "x"} {
					if _, err := r.Lstat("bigdir/" + miss); !errors.Is(err, fs.ErrNotExist) {
						t.Fatalf("Lstat(bigdir/%s) = %v, want ErrNotExist", miss, err)
					}
				}
			}
		})
	}
}

func TestFixtureFSTest(t *testing.T) {
	for _, fx := range fixtures {
		t.Run(fx.name, func(t *testing.T) {
			r := openFixture(t, fx.name)
			// The whole image has dangling and absolute links, which
			// fstest (like os.DirFS) cannot open; these subtrees have only
			// links that resolve.
			for _, dir := range []string{"dir", "bigdir", "empty-dir"} {
				sub, err := fs.Sub(r, dir)
				if err != nil {
					t.Fatal(err)
				}
				var expect []string
				switch dir {
				case "dir":
					expect = []string{"sub/setuid", "up-link", "compressible", "three-blocks-tail"}
				case "bigdir":
					expect = []string{"entry-with-a-longish-name-001", "entry-with-a-longish-name-400"}
				}
				if err := fstest.TestFS(sub, expect...); err != nil {
					t.Errorf("%s: %v", dir, err)
				}
			}
		})
	}
}

// TestConcurrentReads reads every file of a fixture from several goroutines
// at once, through shared Files (ReadAt) and separate ones (WriteTo), and
// compares with a sequential read. Run with -race.
func TestConcurrentReads(t *testing.T) {
	r := openFixture(t, "tree-zstd")
	want := map[string][]byte{}
	var paths []string
	err := r.Walk(".", func(p string, fi fs.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() && fi.Size() > 0 {
			b, err := r.ReadFile(p)
			if err != nil {
				return err
			}
			want[p] = b
			paths = append(paths, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	shared := map[string]*File{}
	for _, p := range paths {
		f, err := r.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		shared[p] = f.(*File)
	}
	errs := make(chan error, 8)
	for g := range 8 {
		go func() {
			errs <- func() error {
				for i, p := range paths {
					w := want[p]
					if (i+g)%2 == 0 {
						// small reads at scattered offsets of a shared File
						buf := make([]byte, 1+(i*31+g*7)%200)
						off := int64((i*977 + g*131) % len(w))
						n, err := shared[p].ReadAt(buf, off)
						if err != nil && err != io.EOF {
							return err
						}
						if !bytes.Equal(buf[:n], w[off:off+int64(n)]) {
							return fmt.Errorf("%s: ReadAt(%d) differs", p, off)
						}
						continue
					}
					f, err := r.Open(p)
					if err != nil {
						return err
					}
					var got bytes.Buffer
					_, err = f.(*File).WriteTo(&got)
					f.Close()
					if err != nil {
						return err
					}
					if !bytes.Equal(got.Bytes(), w) {
						return fmt.Errorf("%s: WriteTo differs", p)
					}
				}
				return nil
			}()
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
