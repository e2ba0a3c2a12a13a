package pipeline

import (
	"testing"
	"time"

	"github.com/imaforge/imaforge/squashfs"
)

func mustTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// openImage opens the SquashFS image at path for reading, failing the test
// if it does not open; it is closed when the test ends.
func openImage(t testing.TB, path string) *squashfs.ReadCloser {
	t.Helper()
	img, err := squashfs.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { img.Close() })
	return img
}
