package service

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/imaforge/imaforge/imasig"
)

func streamOf(t testing.TB, n int) []byte {
	t.Helper()
	es := make([]Entry, n)
	for i := range es {
		d := make([]byte, 32)
		d[0], d[1] = byte(i), byte(i>>8)
		es[i] = NewEntry("/usr/bin/f"+strings.Repeat("x", i%7), imasig.SHA256, d)
	}
	b, err := EncodeStream(es)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReadStream(t *testing.T) {
	good := streamOf(t, 3)
	lines := strings.SplitAfter(string(good), "\n")
	bad := lines[0] + lines[1] + `{"path":"/usr/bin/x","hash":"sha256","digest":"00"}` + "\n" + lines[2]
	tests := []struct {
		name, body string
		n          int
		err        string // in the error; "" for none
	}{
		{"three entries", string(good), 3, ""},
		{"bad digest on line 3", bad, 0, "line 3"},
		{"unknown field", `{"path":"/a","hash":"sha256","digest":"` + strings.Repeat("00", 32) + `","scope":"/**"}` + "\n", 0, "unknown field"},
		{"two objects on a line", strings.TrimSuffix(lines[0], "\n") + lines[1], 0, "data after the entry"},
		{"empty line", lines[0] + "\n" + lines[1], 0, "line 2: empty line"},
		{"no final newline", strings.TrimSuffix(string(good), "\n"), 0, "line 3: last line does not end"},
		{"no entries", "", 0, "no entries"},
		{"line too long", `{"path":"/` + strings.Repeat("a", MaxLine) + "\"}\n", 0, "line 1: line longer"},
		{"relative path", `{"path":"a","hash":"sha256","digest":"` + strings.Repeat("00", 32) + `"}` + "\n", 0, "absolute"},
		{"too many entries", string(streamOf(t, MaxStream+1)), 0, "more than 65536 entries"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			items, digest, err := ReadStream(strings.NewReader(tt.body))
			if digest != RequestDigest([]byte(tt.body)) {
				t.Errorf("digest %s is not the body's", digest)
			}
			if tt.err == "" {
				if err != nil || len(items) != tt.n {
					t.Fatalf("%d items, %v", len(items), err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), tt.err) || items != nil {
				t.Fatalf("got %d items, %v; want an error with %q", len(items), err, tt.err)
			}
		})
	}
	t.Run("body too large", func(t *testing.T) {
		line := lines[0]
		body := strings.Repeat(line, MaxStreamBody/len(line)+1)
		_, _, err := ReadStream(strings.NewReader(body))
		if err == nil || !strings.Contains(err.Error(), "more than") {
			t.Fatalf("got %v", err)
		}
	})
}

func TestReadStreamResponse(t *testing.T) {
	want := strings.Repeat("ab", 32)
	line := func(l StreamLine) string { b, _ := json.Marshal(l); return string(b) + "\n" }
	v1, v2 := line(StreamLine{Value: []byte{3, 2, 1}}), line(StreamLine{Value: []byte{3, 2, 2}})
	end := line(StreamLine{RequestDigest: want, Key: "k", Count: 2})
	tests := []struct {
		name, body string
		err        string
	}{
		{"good", v1 + v2 + end, ""},
		{"cut before the end", v1 + v2, "ends after 2 of 2 values"},
		{"cut mid-way", v1, "ends after 1 of 2"},
		{"one value short", v1 + line(StreamLine{RequestDigest: want, Count: 1}), "1 values"},
		{"a value too many", v1 + v2 + v1 + end, "not one of the 2 values"},
		{"another request", v1 + v2 + line(StreamLine{RequestDigest: strings.Repeat("cd", 32), Count: 2}), "names request"},
		{"data after the end", v1 + v2 + end + v1, "data after"},
		{"not JSON", v1 + "{\n", "answer line 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vals, err := ReadStreamResponse(strings.NewReader(tt.body), 2, want)
			if tt.err == "" {
				if err != nil || len(vals) != 2 || !bytes.Equal(vals[1], []byte{3, 2, 2}) {
					t.Fatalf("%v %v", vals, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) || vals != nil {
				t.Fatalf("got %v, %v; want %q", vals, err, tt.err)
			}
		})
	}
}
