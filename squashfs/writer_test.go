package squashfs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// memFile is an in-memory io.WriteSeeker with Truncate, like *os.File.
type memFile struct {
	b   []byte
	off int64
}

func (m *memFile) Write(p []byte) (int, error) {
	if need := m.off + int64(len(p)); need > int64(len(m.b)) {
		m.b = append(m.b, make([]byte, need-int64(len(m.b)))...)
	}
	copy(m.b[m.off:], p)
	m.off += int64(len(p))
	return len(p), nil
}

func (m *memFile) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
		m.off = off
	case io.SeekCurrent:
		m.off += off
	case io.SeekEnd:
		m.off = int64(len(m.b)) + off
	}
	return m.off, nil
}

func (m *memFile) Truncate(n int64) error { m.b = m.b[:n]; return nil }

// sampleEntries is a tree of every entry type, built in memory.
func sampleEntries() []Entry {
	rnd := rand.New(rand.NewSource(7))
	blob := func(n int) []byte { b := make([]byte, n); rnd.Read(b); return b }
	file := func(p string, data []byte, x ...Xattr) Entry {
		return Entry{Path: p, Mode: 0o644, UID: 1000, GID: 100, ModTime: 1700000000, Size: int64(len(data)), Open: opener(data), Xattrs: x}
	}
	sparse := make([]byte, 5*4096+100)
	copy(sparse[3*4096:], "data in the middle")
	dup := blob(20000)
	ima := append([]byte{3, 2, 4, 1, 2, 3, 4, 1, 0}, blob(256)...)
	es := []Entry{
		{Path: "/", Mode: fs.ModeDir | 0o755, ModTime: 1700000000},
		{Path: "/etc", Mode: fs.ModeDir | 0o750, UID: 0, GID: 4, ModTime: 1600000000, Xattrs: []Xattr{{"user.dir", []byte("d")}}},
		file("/etc/passwd", []byte("root:x:0:0::/root:/bin/sh\n"), Xattr{"security.ima", ima}),
		file("/etc/empty", nil),
		file("/bin/big", blob(3*4096+1), Xattr{"security.ima", ima}, Xattr{"user.a", []byte("1")}),
		file("/bin/exact", blob(4096)),
		file("/bin/sparse", sparse),
		file("/bin/zeros", make([]byte, 3*4096)),
		file("/dup/a", dup),
		file("/dup/b", dup),
		file("/dup/c", append([]byte(nil), dup[:19999]...)),
		{Path: "/bin/sh", Mode: fs.ModeSymlink | 0o777, Target: "busybox", ModTime: 1},
		{Path: "/bin/ls", LinkTo: "/bin/big"},
		{Path: "/dev/null", Mode: fs.ModeDevice | fs.ModeCharDevice | 0o666, Rdev: 1<<8 | 3},
		{Path: "/dev/loop0", Mode: fs.ModeDevice | 0o660, Rdev: 7 << 8, Xattrs: []Xattr{{"trusted.x", []byte("y")}}},
		{Path: "/run/fifo", Mode: fs.ModeNamedPipe | 0o600},
		{Path: "/run/sock", Mode: fs.ModeSocket | 0o755},
		{Path: "/tmp", Mode: fs.ModeDir | fs.ModeSticky | 0o777},
		{Path: "/bin/su", Mode: fs.ModeSetuid | 0o755, Size: 3, Open: opener([]byte("su\n"))},
	}
	for i := range 600 { // a directory with an index (more than 8 KiB of entries)
		es = append(es, file(fmt.Sprintf("/many/%s-%04d", strings.Repeat("x", 40), i), blob(i%50)))
	}
	return es
}

// build packs entries (in the given order) and returns the image.
func build(t testing.TB, es []Entry, opts Options) []byte {
	t.Helper()
	img, _ := buildStats(t, es, opts)
	return img
}

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:8]) }

// TestReproducible: the image depends on the entries only, not on the order
// of Add, Workers, GOMAXPROCS or concurrent SetXattrs timing.
func TestReproducible(t *testing.T) {
	for _, comp := range []Compression{Gzip, Zstd, LZ4, CompNone} {
		opts := Options{Compression: comp, BlockSize: 4096, ModTime: 1234}
		es := sampleEntries()
		want := sum(build(t, es, opts))
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
		for i, procs := range []int{1, 2, 1, 2} {
			runtime.GOMAXPROCS(procs)
			shuffled := append([]Entry(nil), es...)
			rand.New(rand.NewSource(int64(i))).Shuffle(len(shuffled), func(a, b int) { shuffled[a], shuffled[b] = shuffled[b], shuffled[a] })
			o := opts
			o.Workers = []int{1, 3, 8, 0}[i]
			if got := sum(build(t, shuffled, o)); got != want {
				t.Errorf("%v: order %d, GOMAXPROCS %d, workers %d: image %s, want %s", comp, i, procs, o.Workers, got, want)
			}
		}
	}
}

// TestSetXattrsConcurrent: xattrs set from many goroutines during WriteData
// give the same image as xattrs given to Add.
func TestSetXattrsConcurrent(t *testing.T) {
	es := sampleEntries()
	opts := Options{Compression: Zstd, BlockSize: 4096}
	want := sum(build(t, es, opts))
	var m memFile
	w, err := NewWriter(&m, opts)
	must(t, err)
	var later []Entry
	for _, e := range es {
		if len(e.Xattrs) > 0 && e.LinkTo == "" {
			later = append(later, e)
			e.Xattrs = nil
		}
		must(t, w.Add(e))
	}
	var wg sync.WaitGroup
	for _, e := range later {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.SetXattrs(e.Path, e.Xattrs); err != nil {
				t.Error(err)
			}
		}()
	}
	must(t, w.WriteData(context.Background()))
	wg.Wait()
	must(t, w.Close())
	if got := sum(m.b); got != want {
		t.Errorf("image with SetXattrs %s, with Add %s", got, want)
	}
}

// TestGolden compares a small image byte for byte with a checked-in one
// (go test -run TestGolden -update rewrites it after an intended change; the
// peer tests judge the new bytes).
func TestGolden(t *testing.T) {
	for _, comp := range []Compression{Gzip, CompNone} {
		if comp != CompNone && !cgoCompressors {
			continue // the golden gzip image is zlib's (cgo) output
		}
		img := build(t, sampleEntries(), Options{Compression: comp, BlockSize: 4096, ModTime: 1700000000})
		golden := filepath.Join("..", "testdata", "squashfs", "writer", "sample-"+comp.String()+".sqsh")
		if *update {
			must(t, os.MkdirAll(filepath.Dir(golden), 0o755))
			must(t, os.WriteFile(golden, img, 0o644))
		}
		want, err := os.ReadFile(golden)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(img, want) {
			t.Errorf("%v: image differs from %s (%d vs %d bytes)", comp, golden, len(img), len(want))
		}
	}
}

func TestDuplicatesStoredOnce(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 40000) // 640000 bytes, 5 blocks
	rand.New(rand.NewSource(1)).Read(data[:300000])
	one := build(t, []Entry{{Path: "/a", Mode: 0o644, Size: int64(len(data)), Open: opener(data)}}, Options{Compression: Zstd})
	var m memFile
	w, err := NewWriter(&m, Options{Compression: Zstd})
	must(t, err)
	for _, p := range []string{"/a", "/b", "/c/d"} {
		must(t, w.Add(Entry{Path: p, Mode: 0o644, Size: int64(len(data)), Open: opener(data)}))
	}
	st, err := w.Finish()
	must(t, err)
	if st.Duplicates != 2 {
		t.Errorf("Duplicates = %d, want 2", st.Duplicates)
	}
	if len(m.b) > len(one)+4096 {
		t.Errorf("three copies take %d bytes, one takes %d", len(m.b), len(one))
	}
}

// shaReader is a reader that says it hashed its content with SHA-256 and
// gives a digest of its own choosing.
type shaReader struct {
	io.Reader
	uses bool
	sum  [sha256.Size]byte
}

func (r *shaReader) Close() error                 { return nil }
func (r *shaReader) HashesSHA256() bool           { return r.uses }
func (r *shaReader) SumSHA256() [sha256.Size]byte { return r.sum }

// TestContentSHA256: the writer finds duplicates by the digest a
// ContentSHA256 reader gives (two different contents it says are the same
// are stored once: the writer did not hash them itself), and hashes the
// content itself when the reader does not use SHA-256.
func TestContentSHA256(t *testing.T) {
	a, b := bytes.Repeat([]byte("a"), 5000), bytes.Repeat([]byte("b"), 5000)
	for _, uses := range []bool{true, false} {
		var m memFile
		w, err := NewWriter(&m, Options{Compression: Zstd})
		must(t, err)
		for _, f := range []struct {
			path string
			data []byte
		}{{"/a", a}, {"/b", b}} {
			must(t, w.Add(Entry{Path: f.path, Mode: 0o644, Size: int64(len(f.data)), Open: func() (io.ReadCloser, error) {
				return &shaReader{Reader: bytes.NewReader(f.data), uses: uses, sum: sha256.Sum256([]byte("same"))}, nil
			}}))
		}
		st, err := w.Finish()
		must(t, err)
		if want := map[bool]int{true: 1, false: 0}[uses]; st.Duplicates != want {
			t.Errorf("HashesSHA256 %v: Duplicates = %d, want %d", uses, st.Duplicates, want)
		}
	}
}

type countingReader struct {
	r      io.Reader
	closed *bool
}

func (c countingReader) Read(p []byte) (int, error) { return c.r.Read(p) }
func (c countingReader) Close() error               { *c.closed = true; return nil }

func TestSizeMismatch(t *testing.T) {
	for _, tc := range []struct {
		name     string
		declared int64
		actual   int
	}{{"short", 10000, 9999}, {"long", 10000, 10001}, {"empty-declared", 0, 1}, {"block-long", 8192, 8193}} {
		t.Run(tc.name, func(t *testing.T) {
			var m memFile
			w, err := NewWriter(&m, Options{BlockSize: 4096})
			must(t, err)
			closed := false
			must(t, w.Add(Entry{Path: "/dir/file", Mode: 0o644, Size: tc.declared, Open: func() (io.ReadCloser, error) {
				return countingReader{bytes.NewReader(make([]byte, tc.actual)), &closed}, nil
			}}))
			err = w.WriteData(context.Background())
			if !errors.Is(err, ErrSizeMismatch) || !strings.Contains(err.Error(), "/dir/file") {
				t.Errorf("WriteData: %v, want ErrSizeMismatch naming /dir/file", err)
			}
			if !closed {
				t.Error("the reader was not closed")
			}
			if err := w.Close(); !errors.Is(err, ErrSizeMismatch) {
				t.Errorf("Close after a failed WriteData: %v, want the data error", err)
			}
		})
	}
}

func TestOpenErrorNamesPath(t *testing.T) {
	var m memFile
	w, err := NewWriter(&m, Options{})
	must(t, err)
	must(t, w.Add(Entry{Path: "/x/y", Size: 1, Open: func() (io.ReadCloser, error) { return nil, fs.ErrPermission }}))
	err = w.WriteData(context.Background())
	var pe *PathError
	if !errors.Is(err, fs.ErrPermission) || !errors.As(err, &pe) || pe.Path != "/x/y" {
		t.Errorf("WriteData: %v, want a PathError for /x/y wrapping ErrPermission", err)
	}
}

func TestAddErrors(t *testing.T) {
	ok := Entry{Path: "/a", Mode: 0o644}
	for _, tc := range []struct {
		name string
		es   []Entry
	}{
		{"relative", []Entry{{Path: "a", Mode: 0o644}}},
		{"unclean", []Entry{{Path: "/a/../b", Mode: 0o644}}},
		{"twice", []Entry{ok, ok}},
		{"long name", []Entry{{Path: "/" + strings.Repeat("n", 257), Mode: 0o644}}},
		{"parent is a file", []Entry{ok, {Path: "/a/b", Mode: 0o644}}},
		{"file over implied dir", []Entry{{Path: "/a/b", Mode: 0o644}, ok}},
		{"root not a dir", []Entry{{Path: "/", Mode: 0o644}}},
		{"size without content", []Entry{{Path: "/a", Mode: 0o644, Size: 3}}},
		{"empty symlink", []Entry{{Path: "/a", Mode: fs.ModeSymlink}}},
		{"xattr namespace", []Entry{{Path: "/a", Mode: 0o644, Xattrs: []Xattr{{"system.posix_acl_access", nil}}}}},
		{"xattr twice", []Entry{{Path: "/a", Mode: 0o644, Xattrs: []Xattr{{"user.a", nil}, {"user.a", nil}}}}},
		{"time", []Entry{{Path: "/a", Mode: 0o644, ModTime: -1}}},
		{"device number", []Entry{{Path: "/a", Mode: fs.ModeDevice, Rdev: 1 << 40}}},
	} {
		var m memFile
		w, err := NewWriter(&m, Options{})
		must(t, err)
		var last error
		for _, e := range tc.es {
			if err := w.Add(e); err != nil {
				last = err
			}
		}
		var pe *PathError
		if !errors.As(last, &pe) {
			t.Errorf("%s: Add: %v, want a *PathError", tc.name, last)
		}
	}
	// hard link problems, and a path added twice but not in a row,
	// surface at WriteData, and the image cannot be finished
	f := Entry{Path: "/b", Mode: 0o644}
	for _, es := range [][]Entry{
		{ok, f, ok},
		{ok, f, {Path: "/a/c", Mode: 0o644}},
		{{Path: "/l", LinkTo: "/missing"}},
		{{Path: "/d", Mode: fs.ModeDir}, {Path: "/l", LinkTo: "/d"}},
		{{Path: "/l1", LinkTo: "/l2"}, {Path: "/l2", LinkTo: "/l1"}},
	} {
		var m memFile
		w, _ := NewWriter(&m, Options{})
		for _, e := range es {
			must(t, w.Add(e))
		}
		if err := w.WriteData(context.Background()); err == nil {
			t.Errorf("%v: WriteData succeeded", es)
		}
		if err := w.Close(); err == nil {
			t.Errorf("%v: Close after a failed WriteData succeeded", es)
		}
	}
	for _, o := range []Options{{BlockSize: 1000}, {BlockSize: 2 << 20}, {Compression: Gzip, Level: 12}, {ModTime: -5}} {
		if _, err := NewWriter(&memFile{}, o); err == nil {
			t.Errorf("NewWriter(%+v) succeeded", o)
		}
	}
}

// TestTreeReproducible: AddTree of a copy made in another creation order,
// with other mtimes and owners, packs identically with a fixed epoch and
// all-root; so does a dense copy of a sparse file.
func TestTreeReproducible(t *testing.T) {
	tmp := t.TempDir()
	rnd := rand.New(rand.NewSource(9))
	type file struct {
		rel  string
		data []byte
	}
	var files []file
	for i := range 200 {
		b := make([]byte, rnd.Intn(3*131072))
		rnd.Read(b[:len(b)/2])
		files = append(files, file{fmt.Sprintf("d%d/e%d/f%03d", i%5, i%3, i), b})
	}
	mk := func(dir string, order []int, mtime int64, sparse bool) {
		for _, i := range order {
			p := filepath.Join(dir, files[i].rel)
			must(t, os.MkdirAll(filepath.Dir(p), 0o755))
			must(t, os.WriteFile(p, files[i].data, 0o644))
			must(t, os.Chtimes(p, timeOf(mtime+int64(i)), timeOf(mtime+int64(i))))
			if os.Geteuid() == 0 {
				must(t, os.Lchown(p, i, i))
			}
		}
		f, err := os.Create(filepath.Join(dir, "holes"))
		must(t, err)
		if sparse {
			_, err = f.WriteAt([]byte("end"), 5<<20)
		} else {
			_, err = f.Write(append(make([]byte, 5<<20), "end"...))
		}
		must(t, err)
		must(t, f.Close())
	}
	order := rnd.Perm(len(files))
	a, b := filepath.Join(tmp, "a"), filepath.Join(tmp, "b")
	mk(a, order, 1000, true)
	rev := append([]int(nil), order...)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	mk(b, rev, 5000000, false)
	packTree := func(dir string) string {
		var m memFile
		w, err := NewWriter(&m, Options{Compression: Zstd, ModTime: 42})
		must(t, err)
		epoch := int64(42)
		_, err = AddTree(w, dir, TreeOptions{AllRoot: true, ModTime: &epoch})
		must(t, err)
		must(t, w.Close())
		return sum(m.b)
	}
	if x, y := packTree(a), packTree(b); x != y {
		t.Errorf("copies pack differently: %s vs %s", x, y)
	}
}

// TestLargeSparseFile: a file over 4 GiB (extended inode, 64-bit size),
// streamed from a generator so it costs no disk, with data after 4 GiB.
func TestLargeSparseFile(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 4 GiB of zeros; covered in full runs")
	}
	const size = 4<<30 + 3*131072 + 77
	tail := []byte("the end, past 4 GiB")
	open := func() (io.ReadCloser, error) {
		return io.NopCloser(io.MultiReader(io.LimitReader(zeroReader{}, size-int64(len(tail))), bytes.NewReader(tail))), nil
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "big.sqsh"))
	must(t, err)
	defer f.Close()
	w, err := NewWriter(f, Options{Compression: Zstd})
	must(t, err)
	must(t, w.Add(Entry{Path: "/big", Mode: 0o644, Size: size, Open: open}))
	must(t, w.Add(Entry{Path: "/small", Mode: 0o644, Size: 5, Open: opener([]byte("small"))}))
	must(t, w.Close())
	fi, _ := f.Stat()
	if fi.Size() > 1<<20 {
		t.Errorf("image of a sparse 4 GiB file is %d bytes", fi.Size())
	}
	z, err := NewReader(f, fi.Size())
	must(t, err)
	st, err := z.Stat("big")
	must(t, err)
	if st.Size() != size {
		t.Errorf("size %d, want %d", st.Size(), size)
	}
	r, err := z.Open("big")
	must(t, err)
	defer r.Close()
	got := make([]byte, len(tail))
	if _, err := r.(io.ReaderAt).ReadAt(got, size-int64(len(tail))); err != nil || !bytes.Equal(got, tail) {
		t.Errorf("tail %q (%v), want %q", got, err, tail)
	}
	if unsq, err := exec.LookPath("unsquashfs"); err == nil {
		out := run(t, unsq, "-lln", f.Name())
		if !strings.Contains(string(out), fmt.Sprint(size)) {
			t.Errorf("unsquashfs does not list the size %d:\n%s", size, out)
		}
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func timeOf(sec int64) time.Time { return time.Unix(sec, 0) }

// TestXattrHashCollisions: xattr sets and values are found again by a
// 64-bit hash with the bytes compared; with every hash the same, the image
// is byte for byte the one made without collisions, and every file reads
// back its own xattrs (sets shared, long values shared out of line, and
// values that differ kept apart).
func TestXattrHashCollisions(t *testing.T) {
	long := func(c byte) []byte { return bytes.Repeat([]byte{c}, 40) }
	sets := [][]Xattr{
		{{"security.ima", long('a')}},
		{{"security.ima", long('b')}},
		{{"security.ima", long('a')}},                                // a set again
		{{"security.ima", long('b')}, {"user.x", long('a')}},         // a long value again, another name
		{{"security.ima", []byte("short")}, {"user.x", []byte("s")}}, // short values stay inline
		{{"security.ima", []byte("short")}},
		{{"user.x", long('c')}},
	}
	var es []Entry
	for i, xs := range sets {
		es = append(es, Entry{Path: fmt.Sprintf("/f%d", i), Mode: 0o644, Xattrs: xs})
	}
	opts := Options{Compression: CompNone, BlockSize: 4096}
	want := build(t, es, opts)
	collideHashes = true
	defer func() { collideHashes = false }()
	got := build(t, es, opts)
	if !bytes.Equal(got, want) {
		t.Errorf("with colliding hashes the image is %s, without %s", sum(got), sum(want))
	}
	z, err := NewReader(bytes.NewReader(got), int64(len(got)))
	must(t, err)
	for _, e := range es {
		xs, err := z.Xattrs(e.Path[1:])
		must(t, err)
		if !slices.EqualFunc(xs, sortXattrs(e.Xattrs), func(a, b Xattr) bool { return a.Name == b.Name && bytes.Equal(a.Value, b.Value) }) {
			t.Errorf("%s: xattrs %q, want %q", e.Path, xs, e.Xattrs)
		}
	}
}

// TestNodeSize: a Writer holds one node per entry until Close (a million
// files, a million nodes), so the node must not grow back (issue 22: 232
// bytes, then 120, 88, 80, 64 now, on 64-bit: owner and mode in
// Writer.owners, the name in Writer.names).
func TestNodeSize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("sizes are for 64-bit")
	}
	if got := unsafe.Sizeof(node{}); got > 64 {
		t.Errorf("node is %d bytes, want at most 64", got)
	}
}

// TestNodeNoPointers: what the Writer keeps per file until Close holds no
// pointer, so the garbage collector marks its slabs and arrays without
// scanning them (issue 22: at a million files a pointer per file was
// followed about 90 times in a build). A pointer put back into the node,
// or a slice of *node instead of node ids, fails here.
func TestNodeNoPointers(t *testing.T) {
	var w Writer
	var dt dupTable
	var ts tableState
	for _, tc := range []struct {
		what string
		typ  reflect.Type
	}{
		{"node", reflect.TypeFor[node]()},
		{"a slab's element (Writer.slabs)", reflect.TypeOf(w.slabs).Elem().Elem()},
		{"a name chunk's element (Writer.names)", reflect.TypeOf(w.names.chunks).Elem().Elem()},
		{"Writer.files' element", reflect.TypeOf(w.files).Elem()},
		{"a directory's entry (nodeExt.children)", reflect.TypeOf(nodeExt{}.children).Elem()},
		{"tableState.order's element", reflect.TypeOf(ts.order).Elem()},
		{"Writer.blockWords' element", reflect.TypeOf(w.blockWords).Elem()},
		{"Writer.sources' element", reflect.TypeOf(w.sources).Elem()},
	} {
		if p := pointerIn(tc.typ); p != "" {
			t.Errorf("%s (%v) holds a pointer: %s", tc.what, tc.typ, p)
		}
	}
	// The duplicate index's per-file slices (every field but the Writer).
	dtt := reflect.TypeOf(dt)
	for i := range dtt.NumField() {
		f := dtt.Field(i)
		if f.Name == "w" {
			continue
		}
		if f.Type.Kind() != reflect.Slice {
			t.Errorf("dupTable.%s is a %v, not a slice by file or slot", f.Name, f.Type)
		} else if p := pointerIn(f.Type.Elem()); p != "" {
			t.Errorf("dupTable.%s's element (%v) holds a pointer: %s", f.Name, f.Type.Elem(), p)
		}
	}
}

// pointerIn names a part of type t that holds a pointer, or returns "".
func pointerIn(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return ""
	case reflect.Array:
		if t.Len() == 0 {
			return ""
		}
		return pointerIn(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			if p := pointerIn(f.Type); p != "" {
				return f.Name + " " + p
			}
		}
		return ""
	}
	return t.Kind().String()
}

// TestPlanDataItemLimit: a file's first stream item is 32 bits in the
// node, so planData refuses a tree whose items pass 2^32 instead of
// wrapping (16 TiB at the smallest block size: only the sizes are read).
func TestPlanDataItemLimit(t *testing.T) {
	var m memFile
	w, err := NewWriter(&m, Options{Compression: Zstd, BlockSize: MinBlockSize})
	must(t, err)
	for range 20 { // 20 files of 2^40 bytes: 20 * 2^28 items
		id, n, err := w.newNode()
		must(t, err)
		*n = node{kind: kindReg, size: 1 << 40}
		w.files = append(w.files, id)
	}
	if _, _, err := w.planData(); err == nil || !strings.Contains(err.Error(), "2^32") {
		t.Fatalf("planData of %d files of 1 TiB: %v, want the 2^32 limit", len(w.files), err)
	}
	w.files = w.files[:15] // 15 * 2^28 items, the last file's first below 2^32
	total, _, err := w.planData()
	if last := w.node(w.files[14]); err != nil || total != 15<<28 || last.firstSeq != 14<<28 {
		t.Fatalf("planData of 15 files: %d items, last first %d, %v", total, last.firstSeq, err)
	}
}

// TestDupTable: the duplicate index matches a file only on its whole
// digest and its size, whatever the probe start shares.
func TestDupTable(t *testing.T) {
	var m memFile
	w, err := NewWriter(&m, Options{Compression: Zstd})
	must(t, err)
	for _, size := range []int64{10, 10, 11, 10, 10} {
		id, n, err := w.newNode()
		must(t, err)
		n.size = size
		w.files = append(w.files, id)
	}
	dt := newDupTable(w, len(w.files))
	var a, b, c [sha256.Size]byte
	a[31], b[31], c[31] = 1, 2, 3 // same first 8 bytes, other digests
	if j, slot := dt.find(&a, 10); j != -1 {
		t.Fatalf("empty table found %d", j)
	} else {
		dt.add(0, &a, slot)
	}
	if j, slot := dt.find(&b, 10); j != -1 {
		t.Errorf("another digest with the same prefix found file %d", j)
	} else {
		dt.add(1, &b, slot)
	}
	if j, slot := dt.find(&c, 10); j != -1 {
		t.Errorf("a third digest found file %d", j)
	} else {
		dt.add(3, &c, slot)
	}
	if j, _ := dt.find(&a, 11); j != -1 {
		t.Errorf("the same digest with another size found file %d", j)
	}
	for _, tc := range []struct {
		sum  *[sha256.Size]byte
		want int
	}{{&a, 0}, {&b, 1}, {&c, 3}} {
		if j, _ := dt.find(tc.sum, 10); j != tc.want {
			t.Errorf("find %x: %d, want file %d", tc.sum[31], j, tc.want)
		}
	}
}

// TestOwnersShared: nodes keep their permission bits and owner as an index
// into the Writer's distinct ones (the implicit directories' first); every
// inode reads back with its own, whichever index it shares.
func TestOwnersShared(t *testing.T) {
	var m memFile
	w, err := NewWriter(&m, Options{Compression: Zstd})
	must(t, err)
	type own struct {
		uid, gid uint32
		mode     fs.FileMode
	}
	owns := []own{{0, 0, 0o644}, {1000, 100, 0o600}, {1000, 100, fs.ModeSetuid | 0o755}, {7, 8, 0o644}}
	want := map[string]own{"/d": {0, 0, fs.ModeDir | 0o755}}
	for i := range 400 {
		o := owns[i%len(owns)]
		p := fmt.Sprintf("/d/f%03d", i)
		must(t, w.Add(Entry{Path: p, Mode: o.mode, UID: o.uid, GID: o.gid, Size: 1, Open: opener([]byte{byte(i)})}))
		want[p] = o
	}
	must(t, w.Add(Entry{Path: "/e", Mode: fs.ModeDir | 0o700, UID: 5, GID: 6}))
	want["/e"] = own{5, 6, fs.ModeDir | 0o700}
	if len(w.owners) != len(owns)+2 || w.owners[0] != dirOwner {
		t.Errorf("owners %v: want the implicit directories' and %d more", w.owners, len(owns)+1)
	}
	_, err = w.Finish()
	must(t, err)
	r, err := NewReader(bytes.NewReader(m.b), int64(len(m.b)))
	must(t, err)
	for p, o := range want {
		fi, err := r.Stat(p[1:])
		must(t, err)
		s := fi.Sys().(*InodeInfo)
		if s.UID != o.uid || s.GID != o.gid || fi.Mode() != o.mode {
			t.Errorf("%s: uid %d gid %d mode %v, want %d %d %v", p, s.UID, s.GID, fi.Mode(), o.uid, o.gid, o.mode)
		}
	}
}

// indexOpener opens files by index from a slice (Entry.Opener).
type indexOpener struct{ data [][]byte }

func (o *indexOpener) OpenFile(i int32) (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(o.data[i])), nil
}

// sliceOpener is an Opener that cannot be compared.
type sliceOpener [][]byte

func (o sliceOpener) OpenFile(i int32) (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(o[i])), nil
}

// TestOpener: entries whose content is an Opener and an index give the
// image Open functions give, mixed with them or not, with one worker or
// two; an entry with both, a second Opener or a negative index is refused.
func TestOpener(t *testing.T) {
	data := &indexOpener{[][]byte{[]byte("zero"), bytes.Repeat([]byte("one "), 40000), []byte("two"), bytes.Repeat([]byte("one "), 40000)}}
	var plain, byIndex, mixed []Entry
	for i, d := range data.data {
		e := Entry{Path: fmt.Sprintf("/f%d", i), Mode: 0o644, Size: int64(len(d)), Open: opener(d)}
		plain = append(plain, e)
		e.Open, e.Opener, e.File = nil, data, int32(i)
		byIndex = append(byIndex, e)
		if i%2 == 0 {
			e = plain[i]
		}
		mixed = append(mixed, e)
	}
	plain = append(plain, Entry{Path: "/empty", Mode: 0o644})
	byIndex = append(byIndex, Entry{Path: "/empty", Mode: 0o644})
	mixed = append(mixed, Entry{Path: "/empty", Mode: 0o644})
	for _, workers := range []int{1, 2} {
		opts := Options{Compression: Zstd, BlockSize: 4096, Workers: workers}
		want := sum(build(t, plain, opts))
		if got := sum(build(t, byIndex, opts)); got != want {
			t.Errorf("%d workers: image from an Opener %s, from Open %s", workers, got, want)
		}
		if got := sum(build(t, mixed, opts)); got != want {
			t.Errorf("%d workers: image from both %s, from Open %s", workers, got, want)
		}
	}
	for _, tc := range []struct {
		name string
		e    Entry
	}{
		{"both", Entry{Path: "/x", Mode: 0o644, Size: 4, Open: opener(data.data[0]), Opener: data, File: 0}},
		{"second Opener", Entry{Path: "/x", Mode: 0o644, Size: 4, Opener: &indexOpener{data.data}, File: 0}},
		{"uncomparable Opener", Entry{Path: "/x", Mode: 0o644, Size: 4, Opener: sliceOpener(data.data), File: 0}},
		{"file index", Entry{Path: "/x", Mode: 0o644, Size: 4, Opener: data, File: -1}},
	} {
		var m memFile
		w, err := NewWriter(&m, Options{Compression: Zstd})
		must(t, err)
		must(t, w.Add(byIndex[0]))
		if err := w.Add(tc.e); err == nil || !strings.Contains(err.Error(), "/x") {
			t.Errorf("%s: Add = %v, want an error naming /x", tc.name, err)
		}
	}
}

// TestAddTreeWorkers: AddTree reads entries (lstat, xattrs, symlink
// targets) on the writer's workers, treeChunk at a time, and adds them in
// walk order: the image and the stats do not depend on the number of
// workers, with hard links whose first name is chunks earlier, symlinks,
// xattrs and an excluded directory.
func TestAddTreeWorkers(t *testing.T) {
	src := t.TempDir()
	first := filepath.Join(src, "a", "first")
	must(t, os.MkdirAll(filepath.Dir(first), 0o755))
	must(t, os.WriteFile(first, []byte("linked"), 0o644))
	xattrs := unix.Lsetxattr(first, "user.k", []byte("v"), 0) == nil
	n := 3*treeChunk + 17
	for i := range n {
		p := filepath.Join(src, fmt.Sprintf("d%d", i%7), fmt.Sprintf("e%d", i%3), fmt.Sprintf("f%04d", i))
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		switch i % 50 {
		case 7:
			must(t, os.Link(first, p))
		case 9:
			must(t, os.Symlink(fmt.Sprintf("../target-%d", i), p))
		default:
			must(t, os.WriteFile(p, []byte(strings.Repeat("x", i)), 0o644))
			if xattrs && i%11 == 0 {
				must(t, unix.Lsetxattr(p, "user.i", []byte(fmt.Sprint(i)), 0))
			}
		}
	}
	must(t, os.MkdirAll(filepath.Join(src, "skip", "deep"), 0o755))
	must(t, os.WriteFile(filepath.Join(src, "skip", "deep", "x"), nil, 0o644))
	epoch := int64(7)
	pack := func(workers int) (string, TreeStats) {
		var m memFile
		w, err := NewWriter(&m, Options{Compression: Gzip, Workers: workers, ModTime: epoch})
		must(t, err)
		st, err := AddTree(w, src, TreeOptions{AllRoot: true, ModTime: &epoch,
			Exclude: func(p string) bool { return filepath.Base(p) == "skip" }})
		must(t, err)
		must(t, w.Close())
		return sum(m.b), st
	}
	want, wantSt := pack(1)
	// the root, a, a/first, 7 d*, 21 d*/e* and the n entries
	if wantSt.Entries != 3+7+7*3+n {
		t.Fatalf("one worker: %d entries, want %d", wantSt.Entries, 3+7+7*3+n)
	}
	for _, workers := range []int{2, 3, 8} {
		if got, st := pack(workers); got != want || st != wantSt {
			t.Errorf("%d workers: image %s, %+v; one worker: %s, %+v", workers, got, st, want, wantSt)
		}
	}
}
