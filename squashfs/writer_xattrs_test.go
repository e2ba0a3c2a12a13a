package squashfs

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// spillEntries are files whose xattrs exercise the xattr store: a value of
// their own each (a signature), a long value shared by many (out of line),
// sets shared by many, a set larger than the store's window, hard links
// with their xattrs on the link, and sets that SetXattrs replaces.
func spillEntries() (es []Entry, later map[string][]Xattr) {
	later = map[string][]Xattr{}
	labels := [][]byte{bytes.Repeat([]byte("l"), 40), bytes.Repeat([]byte("m"), 41), []byte("short")}
	for i := range 4000 {
		p := fmt.Sprintf("/d%02d/f%04d", i%13, i)
		xs := []Xattr{
			{"security.ima", fmt.Appendf(nil, "%090d", i)},
			{"user.label", labels[i%len(labels)]},
		}
		if i%7 == 0 {
			xs = []Xattr{{"user.label", labels[0]}} // one set many share
		}
		e := Entry{Path: p, Mode: 0o644, Xattrs: xs}
		if i%11 == 0 {
			// Added with other xattrs, replaced by SetXattrs.
			e.Xattrs = []Xattr{{"user.old", fmt.Appendf(nil, "old %d", i)}}
			later[p] = xs
		}
		es = append(es, e)
		if i%500 == 0 {
			es = append(es, Entry{Path: p + ".link", LinkTo: p})
		}
	}
	es = append(es, Entry{Path: "/big", Mode: 0o600, Xattrs: []Xattr{
		{"user.a", bytes.Repeat([]byte{1}, 65536)}, {"user.b", bytes.Repeat([]byte{2}, 65536)},
		{"user.c", bytes.Repeat([]byte{3}, 65536)}, {"user.d", bytes.Repeat([]byte{4}, 65536)},
		{"user.e", bytes.Repeat([]byte{5}, 65536)},
	}})
	es = append(es, Entry{Path: "/linked", Mode: 0o644}, Entry{Path: "/linked2", LinkTo: "/linked",
		Xattrs: []Xattr{{"security.ima", []byte("on the link")}}})
	return es, later
}

// addSpillEntries adds spillEntries to a new Writer; with xattrsLater,
// those whose sets SetXattrs gives later (paths) have XattrsLater.
func addSpillEntries(t *testing.T, opts Options, xattrsLater bool) (w *Writer, m *memFile, paths []string, later map[string][]Xattr) {
	t.Helper()
	es, later := spillEntries()
	m = &memFile{}
	w, err := NewWriter(m, opts)
	must(t, err)
	for _, e := range es {
		if _, ok := later[e.Path]; ok && xattrsLater {
			e.XattrsLater = true
			paths = append(paths, e.Path)
		}
		must(t, w.Add(e))
	}
	return w, m, paths, later
}

// buildSpill builds spillEntries' image with the xattr store spilling
// after spillAt bytes, and reports whether it used its file.
func buildSpill(t *testing.T, spillAt int, opts Options) ([]byte, bool) {
	t.Helper()
	defer func(v int) { xattrSpillAt = v }(xattrSpillAt)
	xattrSpillAt = spillAt
	w, m, _, later := addSpillEntries(t, opts, false)
	must(t, w.WriteData(context.Background()))
	for p, xs := range later {
		must(t, w.SetXattrs(p, xs))
	}
	spilled := w.xattrs.f != nil
	must(t, w.Close())
	return m.b, spilled
}

// TestXattrSpill: the image is the same whether the xattr sets stay in
// memory or go to the temporary file (also with every hash colliding), and
// every file reads back its own xattrs.
func TestXattrSpill(t *testing.T) {
	opts := Options{Compression: CompNone, BlockSize: 4096, TempDir: t.TempDir()}
	want, spilled := buildSpill(t, 1<<40, opts)
	if spilled {
		t.Fatal("the store spilled with a limit of 1 TiB")
	}
	for _, at := range []int{0, 100_000} {
		got, spilled := buildSpill(t, at, opts)
		if !spilled {
			t.Errorf("spill at %d: the store did not spill", at)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("spill at %d: image %s, in memory %s", at, sum(got), sum(want))
		}
	}
	collideHashes = true
	got, _ := buildSpill(t, 0, opts)
	collideHashes = false
	if !bytes.Equal(got, want) {
		t.Errorf("spilled with colliding hashes: image %s, in memory %s", sum(got), sum(want))
	}

	z, err := NewReader(bytes.NewReader(want), int64(len(want)))
	must(t, err)
	es, later := spillEntries()
	for i, e := range es {
		if i%97 != 0 && e.Path != "/big" && !strings.HasPrefix(e.Path, "/linked") {
			continue
		}
		wantXs := e.Xattrs
		if xs, ok := later[e.Path]; ok {
			wantXs = xs
		}
		if e.LinkTo != "" {
			continue
		}
		if e.Path == "/linked" {
			wantXs = []Xattr{{"security.ima", []byte("on the link")}}
		}
		xs, err := z.Xattrs(e.Path[1:])
		must(t, err)
		if !slices.EqualFunc(xs, sortXattrs(wantXs), func(a, b Xattr) bool { return a.Name == b.Name && bytes.Equal(a.Value, b.Value) }) {
			t.Errorf("%s: %d xattrs, want %d", e.Path, len(xs), len(wantXs))
		}
	}
}

// TestXattrSpillFailsClosed: a temporary directory that cannot be written
// fails the entry that needed it, and a spilled set that cannot be read
// back fails Close: never an image with xattrs missing.
func TestXattrSpillFailsClosed(t *testing.T) {
	defer func(v int) { xattrSpillAt = v }(xattrSpillAt)
	xattrSpillAt = 0
	missing := filepath.Join(t.TempDir(), "missing")
	w, err := NewWriter(&memFile{}, Options{Compression: CompNone, TempDir: missing})
	must(t, err)
	err = w.Add(Entry{Path: "/f", Mode: 0o644, Xattrs: []Xattr{{"user.a", []byte("v")}}})
	if err == nil || !strings.Contains(err.Error(), "/f") || !strings.Contains(err.Error(), missing) {
		t.Errorf("Add with an unwritable TempDir: %v, want an error naming the entry and the directory", err)
	}

	w, err = NewWriter(&memFile{}, Options{Compression: CompNone, TempDir: t.TempDir()})
	must(t, err)
	for i := range 3 {
		must(t, w.Add(Entry{Path: fmt.Sprintf("/f%d", i), Mode: 0o644, Xattrs: []Xattr{{"user.a", fmt.Appendf(nil, "v%d", i)}}}))
	}
	must(t, w.xattrs.f.Close()) // the spilled sets cannot be read back
	if err := w.Close(); err == nil || !strings.Contains(err.Error(), "reading xattrs back") {
		t.Errorf("Close with unreadable spilled xattrs: %v, want a read error", err)
	}
}

// TestXattrTableParallel: the xattr table's blocks, compressed on several
// goroutines (mdParallel), make the image the one compressor makes, values
// out of line included, and read back.
func TestXattrTableParallel(t *testing.T) {
	for _, comp := range []Compression{Gzip, Zstd} {
		opts := Options{Compression: comp, BlockSize: 4096, TempDir: t.TempDir(), Workers: 1, Compressors: 1}
		want, _ := buildSpill(t, 1<<40, opts)
		for _, n := range []int{2, 3, 8} {
			opts.Workers, opts.Compressors = n, n
			got, _ := buildSpill(t, 1<<40, opts)
			if !bytes.Equal(got, want) {
				t.Fatalf("%v, %d compressors: image %s, with one %s", comp, n, sum(got), sum(want))
			}
		}
		z, err := NewReader(bytes.NewReader(want), int64(len(want)))
		must(t, err)
		xs, err := z.Xattrs("d01/f3004")
		must(t, err)
		if len(xs) != 2 || !slices.ContainsFunc(xs, func(x Xattr) bool { return string(x.Value) == fmt.Sprintf("%090d", 3004) }) {
			t.Fatalf("%v: xattrs %q", comp, xs)
		}
	}
}

// The store's buffer grows to the spill by doubling (about a dozen copies
// of at most 4 MiB), not by append's quarter for large slices (about
// forty), and never far beyond the spill; what it keeps is unchanged.
func TestXattrStoreGrowth(t *testing.T) {
	s := &xattrStore{dir: t.TempDir()}
	defer s.close()
	set := encodeXattrs(nil, []Xattr{{Name: "security.ima", Value: bytes.Repeat([]byte{3}, 264)}})
	grown, last, copied := 0, cap(s.mem), 0
	for i := 0; s.f == nil; i++ {
		before := len(s.mem)
		if _, err := s.keep(0, set); err != nil {
			t.Fatal(err)
		}
		if s.f == nil && cap(s.mem) != last {
			grown++
			copied += before
			last = cap(s.mem)
		}
		if cap(s.mem) > xattrSpillAt+xattrStoreBuf {
			t.Fatalf("set %d: buffer of %d bytes, the spill is at %d", i, cap(s.mem), xattrSpillAt)
		}
	}
	t.Logf("the buffer grew %d times to the spill, copying %d bytes", grown, copied)
	if grown > 20 || copied > 2*xattrSpillAt {
		t.Errorf("the buffer grew %d times to the spill, copying %d bytes", grown, copied)
	}
	for i := range s.at {
		got, _, err := s.setOf(uint32(i + 1))
		if err != nil || len(got)+uvarintLen(len(got)) != len(set) || !bytes.HasSuffix(set, got) {
			t.Fatalf("set %d: %x, %v", i, got, err)
		}
	}
}

// TestValueRefsTable: the values' table by hash finds the first value of
// every hash across its growth (sized for 1, given 1,000), whatever the
// probe start shares; a second value with a hash goes to the exact map.
func TestValueRefsTable(t *testing.T) {
	vr := newValueRefs(nil, 1)
	const n = 1000
	hash := func(i int) uint64 { return uint64(i%7)<<60 | uint64(i)*16 } // neighbouring probe starts
	for i := range n {
		vr.add(hash(i), []byte{byte(i)}, uint64(i), uint64(10*i))
	}
	vr.add(hash(3), []byte("other"), 77, 770)
	if len(vr.vals) != n || len(vr.slots) < 2*n || vr.exact["other"] != 770 {
		t.Fatalf("%d entries in %d slots, exact %v", len(vr.vals), len(vr.slots), vr.exact)
	}
	for i := range n {
		j, _ := vr.lookup(hash(i))
		if j < 0 || vr.vals[j].at != uint64(i) || vr.vals[j].ref != uint64(10*i) || vr.vals[j].n != 1 {
			t.Fatalf("hash of value %d: entry %d", i, j)
		}
	}
	if j, _ := vr.lookup(1<<59 + 1); j >= 0 {
		t.Errorf("a hash never added found entry %d", j)
	}
}

// buildAhead builds spillEntries' image with the entries whose xattrs
// SetXattrs replaces added with XattrsLater, their sets given after
// WriteData from several goroutines in a shuffled order, and reports how
// many nodes had their set in the table before Close.
func buildAhead(t *testing.T, spillAt int, opts Options, seed uint64) ([]byte, int) {
	t.Helper()
	defer func(v int) { xattrSpillAt = v }(xattrSpillAt)
	xattrSpillAt = spillAt
	w, m, paths, later := addSpillEntries(t, opts, true)
	must(t, w.WriteData(context.Background()))
	if len(paths) > aheadMaxLater {
		if w.ahead != nil {
			t.Fatalf("%d entries with XattrsLater, more than %d, and the xattr table built ahead", len(paths), aheadMaxLater)
		}
		for _, p := range paths {
			must(t, w.SetXattrs(p, later[p]))
		}
		must(t, w.Close())
		return m.b, 0
	}
	if w.ahead == nil {
		t.Fatal("entries with XattrsLater, and no xattr table built ahead")
	}
	if w.ahead.next == 0 {
		t.Error("no node's set in the table before the first SetXattrs")
	}
	rand.New(rand.NewPCG(seed, 1)).Shuffle(len(paths), func(i, j int) { paths[i], paths[j] = paths[j], paths[i] })
	var wg sync.WaitGroup
	for g := range 3 {
		wg.Go(func() {
			for i := g; i < len(paths); i += 3 {
				if err := w.SetXattrs(paths[i], later[paths[i]]); err != nil {
					t.Error(err)
				}
			}
		})
	}
	wg.Wait()
	done := w.ahead.next
	if done != len(w.ahead.order) {
		t.Errorf("%d of %d nodes' sets in the table before Close, with every set final", done, len(w.ahead.order))
	}
	must(t, w.Close())
	return m.b, done
}

// TestXattrTableAhead: the xattr table built while the data is written
// (Entry.XattrsLater, sets given in any order from several goroutines)
// makes the image Close makes with every set given before it: in memory
// or spilled (the sets and the table's blocks), with one compressor or
// several, with every hash colliding, with zstd and xz.
func TestXattrTableAhead(t *testing.T) {
	for _, comp := range []Compression{Zstd, XZ} {
		opts := Options{Compression: comp, BlockSize: 4096, TempDir: t.TempDir(), Workers: 1, Compressors: 1}
		want, _ := buildSpill(t, 1<<40, opts)
		cases := []struct{ n, spillAt int }{{3, 0}}
		if comp == Zstd {
			cases = append(cases, struct{ n, spillAt int }{1, 1 << 40}, struct{ n, spillAt int }{3, 1 << 40})
		}
		for _, c := range cases {
			opts.Workers, opts.Compressors = c.n, c.n
			got, _ := buildAhead(t, c.spillAt, opts, uint64(c.n+c.spillAt))
			if !bytes.Equal(got, want) {
				t.Errorf("%v, %d compressors, spill at %d: image %s built ahead, %s at Close", comp, c.n, c.spillAt, sum(got), sum(want))
			}
		}
		if comp == Zstd {
			collideHashes = true
			got, _ := buildAhead(t, 0, opts, 7)
			collideHashes = false
			if !bytes.Equal(got, want) {
				t.Errorf("with colliding hashes: image %s built ahead, %s at Close", sum(got), sum(want))
			}
			defer func(v int) { aheadMaxLater = v }(aheadMaxLater)
			aheadMaxLater = 10 // more entries: the table is built at Close
			if got, _ := buildAhead(t, 0, opts, 8); !bytes.Equal(got, want) {
				t.Errorf("more than aheadMaxLater: image %s, %s at Close", sum(got), sum(want))
			}
			aheadMaxLater = 1 << 18
		}
	}
}

// TestXattrsLaterRules: XattrsLater is for regular files; once the table
// is built ahead, SetXattrs takes only an entry added with it, once; an
// error in the table built ahead fails SetXattrs and Close; a failed
// WriteData stops it (SetXattrs then fails instead of waiting).
func TestXattrsLaterRules(t *testing.T) {
	w, err := NewWriter(&memFile{}, Options{Compression: Zstd, TempDir: t.TempDir()})
	must(t, err)
	if err := w.Add(Entry{Path: "/d", Mode: fs.ModeDir | 0o755, XattrsLater: true}); err == nil || !strings.Contains(err.Error(), "/d") {
		t.Errorf("XattrsLater on a directory: %v, want an error naming it", err)
	}
	defer func(v int) { aheadMaxLater = v }(aheadMaxLater)
	for _, max := range []int{aheadMaxLater, 0} { // built ahead, or not: the same rules
		aheadMaxLater = max
		w, err := NewWriter(&memFile{}, Options{Compression: Zstd, TempDir: t.TempDir()})
		must(t, err)
		must(t, w.Add(Entry{Path: "/a", Mode: 0o644, XattrsLater: true}))
		must(t, w.Add(Entry{Path: "/b", Mode: 0o644, Xattrs: []Xattr{{"user.b", []byte("b")}}}))
		must(t, w.SetXattrs("/b", []Xattr{{"user.b", []byte("before WriteData")}}))
		must(t, w.WriteData(context.Background()))
		if err := w.SetXattrs("/b", []Xattr{{"user.b", []byte("c")}}); err == nil || !strings.Contains(err.Error(), "/b") {
			t.Errorf("ahead up to %d: SetXattrs on an entry without XattrsLater after WriteData: %v, want an error naming it", max, err)
		}
		must(t, w.SetXattrs("/a", []Xattr{{"security.ima", []byte("sig")}}))
		if err := w.SetXattrs("/a", []Xattr{{"security.ima", []byte("again")}}); err == nil || !strings.Contains(err.Error(), "/a") {
			t.Errorf("ahead up to %d: SetXattrs twice on an entry with XattrsLater: %v, want an error naming it", max, err)
		}
		must(t, w.Close())
	}
	aheadMaxLater = 1 << 18
	var m memFile
	w, err = NewWriter(&m, Options{Compression: Zstd, TempDir: t.TempDir()})
	must(t, err)
	must(t, w.Add(Entry{Path: "/a", Mode: 0o644, XattrsLater: true}))
	must(t, w.Close())
	z, err := NewReader(bytes.NewReader(m.b), int64(len(m.b)))
	must(t, err)
	if xs, err := z.Xattrs("a"); err != nil || len(xs) != 0 {
		t.Errorf("a file never given its xattrs: %q, %v; want none", xs, err)
	}

	// The table's blocks spill to a file that cannot be written.
	defer func(v int) { xattrSpillAt = v }(xattrSpillAt)
	xattrSpillAt = 0
	w, err = NewWriter(&memFile{}, Options{Compression: CompNone, TempDir: t.TempDir()})
	must(t, err)
	for i := range 40 {
		must(t, w.Add(Entry{Path: fmt.Sprintf("/f%02d", i), Mode: 0o644, XattrsLater: true}))
	}
	must(t, w.WriteData(context.Background()))
	var failed error
	for i := range 40 {
		if i == 1 {
			_, err := w.ahead.kvOut.add([]byte{1}) // the file exists
			must(t, err)
			must(t, w.ahead.kvOut.f.Close())
		}
		if err := w.SetXattrs(fmt.Sprintf("/f%02d", i), []Xattr{{"security.ima", bytes.Repeat([]byte{byte(i)}, 20000)}}); err != nil && failed == nil {
			failed = err
		}
	}
	if failed == nil || !strings.Contains(failed.Error(), "keeping xattrs") {
		t.Errorf("the table's file closed: SetXattrs %v, want a write error", failed)
	}
	if err := w.Close(); err == nil {
		t.Error("Close succeeded after the table built ahead failed")
	}

	w, err = NewWriter(&memFile{}, Options{Compression: Zstd, TempDir: t.TempDir(), Workers: 2})
	must(t, err)
	must(t, w.Add(Entry{Path: "/a", Mode: 0o644, XattrsLater: true}))
	must(t, w.Add(Entry{Path: "/b", Mode: 0o644, Size: 1, Open: func() (io.ReadCloser, error) { return nil, fs.ErrPermission }}))
	if err := w.WriteData(context.Background()); err == nil {
		t.Fatal("WriteData with an unreadable file succeeded")
	}
	if err := w.SetXattrs("/a", []Xattr{{"security.ima", []byte("sig")}}); err == nil {
		t.Error("SetXattrs after a failed WriteData succeeded")
	}
	if err := w.Close(); err == nil {
		t.Error("Close after a failed WriteData succeeded")
	}
}

// TestSetXattrsAllocs: SetXattrs encodes a set into the writer's buffer,
// which the store copies, not into a new one a call (a build sets a
// signature on every file).
func TestSetXattrsAllocs(t *testing.T) {
	w, err := NewWriter(&memFile{}, Options{Compression: CompNone, TempDir: t.TempDir()})
	must(t, err)
	defer w.Close()
	must(t, w.Add(Entry{Path: "/f", Mode: 0o644}))
	xs := []Xattr{{"security.ima", bytes.Repeat([]byte{3}, 264)}, {"user.a", []byte("v")}}
	// the store's growth is amortized: AllocsPerRun's integer mean is 0
	if n := testing.AllocsPerRun(200, func() { must(t, w.SetXattrs("/f", xs)) }); n != 0 {
		t.Errorf("SetXattrs: %v allocations a call, want 0", n)
	}
}
