package tarimage

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzOpen: Open never panics and fails only with ErrFormat (or an I/O
// error of the temporary file); every member it indexes opens and reads
// within the archive.
func FuzzOpen(f *testing.F) {
	for _, c := range []Compression{None, Gzip, Zstd} {
		es, _ := sample(&testing.T{})
		var buf bytes.Buffer
		w, _ := NewWriter(&buf, Options{Compression: c})
		for _, e := range es {
			w.Add(e)
		}
		w.Close()
		f.Add(buf.Bytes())
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := Open(bytes.NewReader(b), int64(len(b)), t.TempDir())
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error without ErrFormat: %v", err)
			}
			return
		}
		defer a.Close()
		for _, m := range a.Members {
			if r, err := a.Open(m.Path[1:]); err == nil {
				io.Copy(io.Discard, r.(io.Reader))
			}
		}
	})
}
