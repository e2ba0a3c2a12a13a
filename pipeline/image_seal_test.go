package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/manifest"
	"github.com/imaforge/imaforge/squashfs"
)

// fakeSealer seals file i with user.i = "v<i>", counting calls; its
// readyToSeal channel is given the files an Open closed (as a build's
// hashingReader does), all but those in late.
type fakeSealer struct {
	ready chan int32
	late  map[int]bool
	mu    sync.Mutex
	calls map[int]int
	fail  map[int]bool
}

func (s *fakeSealer) Seal(i int) (manifest.Xattrs, error) {
	s.mu.Lock()
	s.calls[i]++
	s.mu.Unlock()
	if s.fail[i] {
		return nil, fmt.Errorf("/f%d: refused", i)
	}
	return manifest.Xattrs{{Name: "user.i", Value: fmt.Appendf(nil, "v%d", i)}}, nil
}

func (s *fakeSealer) Path(i int) string         { return fmt.Sprintf("/f%d", i) }
func (s *fakeSealer) readyToSeal() <-chan int32 { return s.ready }

type closeHook struct {
	io.Reader
	close func()
}

func (c closeHook) Close() error { c.close(); return nil }

// addFiles returns a SquashFS image (in a file closed at the test's end)
// and its path, with n one-byte files sealed by s, each calling closed
// with its index when its reader is closed; WriteData is called.
func addFiles(t *testing.T, s Sealer, n int, closed func(i int)) (*squashfsImage, string) {
	out := filepath.Join(t.TempDir(), "img.sqsh")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	img, err := newSquashfsImage(f, squashfs.Options{Compression: squashfs.CompNone, BlockSize: 4096, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		e := ImageEntry{Path: s.Path(i), Mode: 0o644, Size: 1, Seal: s, File: i, Open: func() (io.ReadCloser, error) {
			return closeHook{strings.NewReader("x"), func() { closed(i) }}, nil
		}}
		if err := img.Add(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := img.WriteData(context.Background()); err != nil {
		t.Fatal(err)
	}
	return img, out
}

// sealImage writes n files sealed by s and returns the image's path and
// Close's error.
func sealImage(t *testing.T, s *fakeSealer, n int) (string, error) {
	img, out := addFiles(t, s, n, func(i int) {
		if !s.late[i] {
			s.ready <- int32(i)
		}
	})
	s.mu.Lock()
	for i := range n {
		if want := map[bool]int{false: 1, true: 0}[s.late[i]]; s.calls[i] != want && !s.fail[i] {
			t.Errorf("file %d sealed %d times during WriteData, want %d", i, s.calls[i], want)
		}
	}
	s.mu.Unlock()
	_, err := img.Close()
	return out, err
}

// TestSquashfsSealEarly: files the sealer names while the data is written
// are sealed then, once, and the others at Close; every file gets its
// xattrs. A file whose early Seal fails is sealed again at Close, which
// reports the failure.
func TestSquashfsSealEarly(t *testing.T) {
	const n = 40
	s := &fakeSealer{ready: make(chan int32, n), late: map[int]bool{3: true, 17: true}, calls: map[int]int{}}
	out, err := sealImage(t, s, n)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if s.calls[i] != 1 {
			t.Errorf("file %d sealed %d times", i, s.calls[i])
		}
	}
	z := openImage(t, out)
	for i := range n {
		xs, err := z.Xattrs(fmt.Sprintf("f%d", i))
		if err != nil || len(xs) != 1 || !bytes.Equal(xs[0].Value, fmt.Appendf(nil, "v%d", i)) {
			t.Errorf("f%d: xattrs %q, %v", i, xs, err)
		}
	}

	s = &fakeSealer{ready: make(chan int32, n), calls: map[int]int{}, fail: map[int]bool{5: true}}
	if _, err := sealImage(t, s, n); err == nil || !strings.Contains(err.Error(), "/f5: refused") {
		t.Errorf("a failing early seal: Close %v, want its error", err)
	}
	if s.calls[5] != 2 {
		t.Errorf("the failing file was sealed %d times, want 2 (early, then at Close)", s.calls[5])
	}

	// Close seals only what is left, and of two failures (an early one
	// sealed again, a late one) reports the first in image order.
	s = &fakeSealer{ready: make(chan int32, n), late: map[int]bool{9: true, 30: true}, calls: map[int]int{}, fail: map[int]bool{9: true, 21: true}}
	if _, err := sealImage(t, s, n); err == nil || !strings.Contains(err.Error(), "/f9: refused") {
		t.Errorf("failures at f9 (late) and f21 (early): Close %v, want f9's", err)
	}
	for i := range n {
		want := 1
		if i == 21 {
			want = 2
		}
		if s.calls[i] != want {
			t.Errorf("file %d sealed %d times, want %d", i, s.calls[i], want)
		}
	}
}

// TestSquashfsXattrs: none gives no slice (was an empty one of capacity 1,
// 48 bytes a file); given a buffer, the conversion reuses it (sealEarly's
// one a file) and allocates nothing.
func TestSquashfsXattrs(t *testing.T) {
	xs := manifest.Xattrs{{Name: "security.ima", Value: []byte{3, 2}}, {Name: "user.a", Value: []byte("b")}}
	for _, tc := range []struct {
		name string
		buf  []squashfs.Xattr
		xs   manifest.Xattrs
		want float64
	}{
		{"none", nil, nil, 0},
		{"none, empty", nil, manifest.Xattrs{}, 0},
		{"reused buffer", make([]squashfs.Xattr, 0, 2), xs, 0},
		{"new", nil, xs, 1},
	} {
		var got []squashfs.Xattr
		if a := testing.AllocsPerRun(10, func() { got = squashfsXattrs(tc.buf, tc.xs) }); a != tc.want {
			t.Errorf("%s: %v allocations, want %v", tc.name, a, tc.want)
		}
		if len(got) != len(tc.xs) {
			t.Fatalf("%s: %d xattrs, want %d", tc.name, len(got), len(tc.xs))
		}
		for i, x := range tc.xs {
			if got[i].Name != x.Name || string(got[i].Value) != string(x.Value) {
				t.Errorf("%s: xattr %d = %q=%q, want %q=%q", tc.name, i, got[i].Name, got[i].Value, x.Name, x.Value)
			}
		}
	}
}

// TestSquashfsSealEarlyEVM: with a beginSealer, files with an EVM key are
// sealed while the data is written (begun, then sealed a window at a
// time; more files than the window), none left to Close, each with its own
// signatures, and the sign pool keeps no more results than its ring
// afterwards.
func TestSquashfsSealEarlyEVM(t *testing.T) {
	const n, keep = 2 * begunWindow, 16 // 4 in 5 with EVM: more than the window
	h := imasig.SHA256
	lay := evmLayout(h, n, 700, n/2)
	p := newSignPool(context.Background(), prefixSigners("k", evmPoolKey("k")), nil, 2, queuedBatch)
	defer p.close()
	p.keep = keep
	p.digestOf = lay.digest
	s := newSealer(lay, h, imasig.EVMXattrsDebian61, p)
	s.ready = make(chan int32, n)
	img, out := addFiles(t, s, n, func(i int) {
		p.submit("k", s.Path(i), lay.digest(int32(i)))
		s.ready <- int32(i)
	})
	for i := range n {
		if img.sealed[i/64]&(1<<(i%64)) == 0 {
			t.Fatalf("file %d not sealed while the data was written", i)
		}
	}
	p.forget()
	if _, err := img.Close(); err != nil {
		t.Fatal(err)
	}
	z := openImage(t, out)
	for i := range n {
		want, _ := evmWant(t, lay, h, i)
		xs, err := z.Xattrs(s.Path(i)[1:])
		if err != nil || len(xs) != len(want) {
			t.Fatalf("%s: xattrs %q, %v; want %q", s.Path(i), xs, err, want)
		}
		for j := range want {
			if xs[j].Name != want[j].Name || !bytes.Equal(xs[j].Value, want[j].Value) {
				t.Fatalf("%s: xattr %s = %q, want %s = %q", s.Path(i), xs[j].Name, xs[j].Value, want[j].Name, want[j].Value)
			}
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.nres > keep {
		t.Errorf("%d results in the pool after every file was sealed; want at most the ring's %d", p.nres, keep)
	}
}
