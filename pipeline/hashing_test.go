package pipeline

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"sync"
	"testing"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/rootfs"
	"github.com/imaforge/imaforge/squashfs"
)

// oneFile is a sealer over a layout of one regular file, /f of size bytes,
// whose digest goes to a store for h: what a hashingReader needs.
func oneFile(h imasig.Hash, size int) *sealer {
	lay := &layout{
		tree:    []rootfs.Entry{{Path: "/f", Size: int64(size), Type: rootfs.TypeReg}},
		entries: []entryRef{0},
		rules:   []fileRule{{}},
		files:   fileStates{{}},
	}
	lay.newDigests(h)
	return &sealer{lay: lay, h: h}
}

// TestHashingReaderSHA256: with SHA-256 a file's reader gives the SquashFS
// writer the digest it made (the same as hashing the content), and the file's
// digest at Close is that one; bytes read after SumSHA256 are not left out;
// with another hash the reader says it has no SHA-256.
func TestHashingReaderSHA256(t *testing.T) {
	data := bytes.Repeat([]byte("content "), 1000)
	open := func(h imasig.Hash, n int) (*hashingReader, *layout) {
		s := oneFile(h, len(data))
		hh, err := h.New()
		if err != nil {
			t.Fatal(err)
		}
		return &hashingReader{rc: io.NopCloser(bytes.NewReader(data[:n])), h: hh, sha256: h == imasig.SHA256, s: s}, s.lay
	}
	want := sha256.Sum256(data)

	r, fs := open(imasig.SHA256, len(data))
	var cs squashfs.ContentSHA256 = r
	if _, err := io.ReadAll(r); err != nil {
		t.Fatal(err)
	}
	if !cs.HashesSHA256() || cs.SumSHA256() != want {
		t.Fatalf("SumSHA256 %x, want %x", cs.SumSHA256(), want)
	}
	if err := r.Close(); err != nil || fs.digest(0) != string(want[:]) {
		t.Fatalf("digest %x (%v), want %x", fs.digest(0), err, want)
	}

	// asked half way: Close still hashes every byte
	r, fs = open(imasig.SHA256, len(data))
	io.CopyN(io.Discard, r, 100)
	r.SumSHA256()
	if _, err := io.ReadAll(r); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil || fs.digest(0) != string(want[:]) {
		t.Fatalf("digest after an early SumSHA256 %x (%v), want %x", fs.digest(0), err, want)
	}

	if r, _ := open(imasig.SHA512, len(data)); r.HashesSHA256() {
		t.Error("a SHA-512 reader says it hashes with SHA-256")
	}
}

// TestHashingReaderTakeSHA256: a SHA-256 reader leaves the hash to the
// image writer when asked before its first Read (and only then); its Read
// then hashes nothing, and Close takes the writer's digest as the file's,
// refusing none, or one of fewer bytes than were read (fail closed). A
// SHA-512 reader keeps its hash.
func TestHashingReaderTakeSHA256(t *testing.T) {
	data := bytes.Repeat([]byte("content "), 1000)
	open := func(h imasig.Hash) (*hashingReader, *layout) {
		s := oneFile(h, len(data))
		hh, err := h.New()
		if err != nil {
			t.Fatal(err)
		}
		return &hashingReader{rc: io.NopCloser(bytes.NewReader(data)), h: hh, sha256: h == imasig.SHA256, s: s}, s.lay
	}
	given := sha256.Sum256([]byte("what the writer says"))

	r, fs := open(imasig.SHA256)
	var taker squashfs.SHA256Taker = r
	if !taker.TakeSHA256() || taker.TakeSHA256() {
		t.Fatal("TakeSHA256: want true once")
	}
	if _, err := io.ReadAll(r); err != nil {
		t.Fatal(err)
	}
	if r.h.Size() != sha256.Size || !bytes.Equal(r.h.Sum(nil), sha256.New().Sum(nil)) {
		t.Error("Read hashed the content after TakeSHA256")
	}
	taker.SetSHA256(given, int64(len(data)))
	if err := r.Close(); err != nil || fs.digest(0) != string(given[:]) {
		t.Fatalf("digest %x (%v), want the writer's %x", fs.digest(0), err, given)
	}

	for _, tc := range []struct {
		name string
		set  func(*hashingReader)
	}{
		{"no digest", func(*hashingReader) {}},
		{"a digest of fewer bytes", func(r *hashingReader) { r.SetSHA256(given, int64(len(data))-1) }},
	} {
		r, fs := open(imasig.SHA256)
		r.TakeSHA256()
		io.ReadAll(r)
		tc.set(r)
		if err := r.Close(); err == nil || fs.digest(0) != "" {
			t.Errorf("%s: Close %v, digest %x: want an error and no digest", tc.name, err, fs.digest(0))
		}
	}

	r, _ = open(imasig.SHA256)
	io.CopyN(io.Discard, r, 1)
	if r.TakeSHA256() {
		t.Error("TakeSHA256 after a Read: want false")
	}
	if r, _ := open(imasig.SHA512); r.TakeSHA256() {
		t.Error("a SHA-512 reader gave its hash away")
	}
}

// TestHashingReaderPooled: readers that share a pool of hashes (a build's
// sealer.hashes) give every file its own content's digest, whatever hash
// they were given back reset, opened and closed interleaved and on several
// goroutines; a reader whose hash went back is closed to Read, and its
// SumSHA256 is still the file's digest.
func TestHashingReaderPooled(t *testing.T) {
	for _, h := range []imasig.Hash{imasig.SHA256, imasig.SHA512} {
		var pool sync.Pool
		open := func(data []byte) (*hashingReader, *layout) {
			s := oneFile(h, len(data))
			hh, _ := pool.Get().(hash.Hash)
			if hh == nil {
				var err error
				if hh, err = h.New(); err != nil {
					t.Fatal(err)
				}
			}
			return &hashingReader{rc: io.NopCloser(bytes.NewReader(data)), h: hh, hashes: &pool, sha256: h == imasig.SHA256, s: s}, s.lay
		}
		want := func(data []byte) string {
			d := h.CryptoHash().New()
			d.Write(data)
			return string(d.Sum(nil))
		}
		content := func(i int) []byte { return bytes.Repeat([]byte{byte(i), byte(i >> 8)}, 100+i) }

		// interleaved: b's hash goes back while a is half read, and c
		// takes it
		a, fa := open(content(1))
		io.CopyN(io.Discard, a, 50)
		b, fb := open(content(2))
		io.ReadAll(b)
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if n, err := b.Read(make([]byte, 8)); n != 0 || !errors.Is(err, os.ErrClosed) {
			t.Errorf("%v: Read after Close: %d, %v, want os.ErrClosed", h, n, err)
		}
		if h == imasig.SHA256 {
			if s := b.SumSHA256(); string(s[:]) != want(content(2)) {
				t.Errorf("SumSHA256 after Close %x, want the file's digest", s)
			}
		}
		c, fc := open(content(3))
		io.ReadAll(c)
		io.ReadAll(a)
		for _, r := range []*hashingReader{a, c} {
			if err := r.Close(); err != nil {
				t.Fatal(err)
			}
		}
		for i, fs := range []*layout{fa, fb, fc} {
			if fs.digest(0) != want(content(i+1)) {
				t.Errorf("%v: file %d digest %x, want %x", h, i+1, fs.digest(0), want(content(i+1)))
			}
		}

		// several goroutines, one pool, one layout: each file's digest
		// goes into its own place of one digest store
		const files = 200
		s := oneFile(h, 0)
		lay := s.lay
		lay.tree = make([]rootfs.Entry, files)
		lay.entries, lay.files = make([]entryRef, files), make(fileStates, files)
		for i := range files {
			lay.tree[i] = rootfs.Entry{Path: fmt.Sprintf("/f%03d", i), Size: int64(len(content(i))), Type: rootfs.TypeReg}
			lay.entries[i], lay.files[i] = entryRef(i), fileState{entry: entryRef(i)}
		}
		lay.newDigests(h)
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				for i := g; i < files; i += 4 {
					hh, _ := pool.Get().(hash.Hash)
					if hh == nil {
						hh, _ = h.New()
					}
					r := &hashingReader{rc: io.NopCloser(bytes.NewReader(content(i))), h: hh, hashes: &pool, sha256: h == imasig.SHA256, s: s, fi: int32(i)}
					if _, err := io.ReadAll(r); err != nil {
						t.Error(err)
						return
					}
					if h == imasig.SHA256 {
						r.SumSHA256() // the SquashFS writer's ask, at the end
					}
					if err := r.Close(); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		for i := range files {
			if lay.digest(int32(i)) != want(content(i)) {
				t.Errorf("%v: file %d: digest %x, want %x", h, i, lay.digest(int32(i)), want(content(i)))
			}
		}
	}
}
