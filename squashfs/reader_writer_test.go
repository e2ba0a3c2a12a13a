package squashfs

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/imaforge/imaforge/internal/testenv"
)

// TestWriterImageListing packs the tricky tree with this package's writer
// and checks our `squashfs ls -l` listing against unsquashfs -lln on the
// same image (round trips of content are the writer's tests; this one ties
// the reader's view to the peer's).
func TestWriterImageListing(t *testing.T) {
	testenv.NeedTool(t, "unsquashfs")
	src := filepath.Join(t.TempDir(), "src")
	buildTrickyTree(t, src)
	for _, comp := range []Compression{Zstd, Gzip, XZ, LZ4, CompNone} {
		t.Run(comp.String(), func(t *testing.T) {
			if testing.Short() && comp == XZ {
				t.Skip("slow in -short mode")
			}
			img := filepath.Join(t.TempDir(), "img.sqsh")
			f, err := os.Create(img)
			if err != nil {
				t.Fatal(err)
			}
			w, err := NewWriter(f, Options{Compression: comp, BlockSize: 64 << 10, ModTime: 1700000000})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := AddTree(w, src, TreeOptions{}); err != nil {
				t.Fatal(err)
			}
			if err := w.WriteData(context.Background()); err != nil {
				t.Fatal(err)
			}
			if _, err := w.Finish(); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			rc, err := OpenReader(img)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			crossCheckUnsquashfs(t, &rc.Reader, img)
		})
	}
}
