package countio

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

type shortWriter struct{ max int }

func (s shortWriter) Write(p []byte) (int, error) {
	if len(p) > s.max {
		return s.max, io.ErrShortWrite
	}
	return len(p), nil
}

func TestWriterCountsAccepted(t *testing.T) {
	var buf bytes.Buffer
	w := &Writer{W: &buf}
	io.WriteString(w, "hello, ")
	io.WriteString(w, "world")
	if w.N != 12 || buf.String() != "hello, world" {
		t.Fatalf("N=%d buf=%q", w.N, buf.String())
	}
	sw := &Writer{W: shortWriter{max: 3}}
	if _, err := sw.Write([]byte("abcdef")); !errors.Is(err, io.ErrShortWrite) || sw.N != 3 {
		t.Fatalf("short write: N=%d err=%v", sw.N, err)
	}
}

func TestReaderCounts(t *testing.T) {
	r := &Reader{R: strings.NewReader("0123456789")}
	b := make([]byte, 4)
	io.ReadFull(r, b)
	if r.N != 4 {
		t.Fatalf("N=%d after 4", r.N)
	}
	io.Copy(io.Discard, r)
	if r.N != 10 {
		t.Fatalf("N=%d after all", r.N)
	}
}
