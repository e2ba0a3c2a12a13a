package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path"
	"path/filepath"
	"testing"

	"github.com/imaforge/imaforge/manifest"
)

// FuzzTarSource walks arbitrary bytes as a tarball source: no input may make
// the walk panic or put an entry outside the image, and every regular
// member of a tree that walks must read back with its size.
func FuzzTarSource(f *testing.F) {
	var buf bytes.Buffer
	writeTar(f, &buf, testMembers())
	f.Add(buf.Bytes())
	buf.Reset()
	writeTar(f, &buf, []member{reg("a/b", 0o644, "x"), {hdr: tar.Header{Typeflag: tar.TypeLink, Name: "c", Linkname: "a/b"}}})
	f.Add(buf.Bytes())
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "f.tar"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		m, err := manifest.Parse(filepath.Join(dir, "m.yaml"), []byte("version: 1\nimage: {keep_xattrs: true}\nsources: [{from: f.tar, to: /sub}]\n"))
		if err != nil {
			t.Fatal(err)
		}
		tr, err := Walk(context.Background(), m, Options{TempDir: dir})
		if err != nil {
			return
		}
		defer tr.Close()
		for i := range tr.Entries {
			e := &tr.Entries[i]
			if cp, err := manifest.CleanImagePath(e.Path); err != nil || cp != e.Path {
				t.Fatalf("bad path %q", e.Path)
			}
			if e.Path != "/" && e.Path != "/sub" && (len(e.Path) < 5 || e.Path[:5] != "/sub/") {
				t.Fatalf("%s is outside the source's directory", e.Path)
			}
			if i > 0 {
				if ComparePaths(tr.Entries[i-1].Path, e.Path) >= 0 {
					t.Fatalf("not sorted at %s", e.Path)
				}
				if p, ok := tr.Lookup(path.Dir(e.Path)); !ok || p.Type != TypeDir {
					t.Fatalf("%s has no parent directory", e.Path)
				}
			}
			if e.Type == TypeReg {
				r, err := e.Content.Open()
				if err != nil {
					t.Fatal(err)
				}
				n, err := io.Copy(io.Discard, r)
				if err != nil || n != e.Size {
					t.Fatalf("%s: read %d of %d bytes: %v", e.Path, n, e.Size, err)
				}
				r.Close()
			}
		}
	})
}
