package testkeys

import (
	"bufio"
	"encoding/hex"
	"os"
	"strings"
	"testing"
)

// Vector is one known-answer security.ima value of testdata/signer/vectors.txt
// (made by testdata/signer/gen.sh): the value Key (a name under
// testdata/signer/keys) gives for File (under testdata/signer/files) hashed
// with Hash.
type Vector struct {
	Key, Hash, File string
	Value           []byte
}

// LoadVectors reads a vectors file ("key hash file hex-value" per line, #
// comments); any malformed line, or no vector at all, fails t.
func LoadVectors(t testing.TB, path string) []Vector {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var vs []Vector
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || s[0] == '#' {
			continue
		}
		fs := strings.Fields(s)
		if len(fs) != 4 {
			t.Fatalf("%s:%d: want 4 fields, have %d", path, line, len(fs))
		}
		v, err := hex.DecodeString(fs[3])
		if err != nil {
			t.Fatalf("%s:%d: %v", path, line, err)
		}
		vs = append(vs, Vector{fs[0], fs[1], fs[2], v})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(vs) == 0 {
		t.Fatalf("%s: no vectors", path)
	}
	return vs
}
