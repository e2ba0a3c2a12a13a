package signer

import (
	"bufio"
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// td is the shared test data directory (keys, files, vectors made by
// testdata/signer/gen.sh).
var td = filepath.Join("..", "testdata", "signer")

func keyPath(name string) string  { return filepath.Join(td, "keys", name) }
func filePath(name string) string { return filepath.Join(td, "files", name) }

// allKeys are the supported key types, named as in testdata/signer/keys.
var allKeys = []string{"rsa2048", "rsa3072", "rsa4096", "p256", "p384"}

var signHashes = []Hash{SHA256, SHA384, SHA512}

func loadKey(t testing.TB, name string) crypto.Signer {
	t.Helper()
	k, err := LoadPrivateKey(keyPath(name), &KeyOptions{Passphrase: func() ([]byte, error) { return []byte("imaforge-test"), nil }})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func loadCert(t testing.TB, name string) *x509.Certificate {
	t.Helper()
	c, err := LoadCertificate(keyPath(name))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func loadSigner(t testing.TB, name string) *Signer {
	t.Helper()
	s, err := LoadSigner(keyPath(name+".key"), keyPath(name+".pem"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type vector struct {
	key, hash, file string
	value           []byte
}

func loadVectors(t testing.TB) []vector {
	t.Helper()
	f, err := os.Open(filepath.Join(td, "vectors.txt"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var vs []vector
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || s[0] == '#' {
			continue
		}
		fs := strings.Fields(s)
		if len(fs) != 4 {
			t.Fatalf("vectors.txt:%d: want 4 fields, have %d", line, len(fs))
		}
		v, err := hex.DecodeString(fs[3])
		if err != nil {
			t.Fatalf("vectors.txt:%d: %v", line, err)
		}
		vs = append(vs, vector{fs[0], fs[1], fs[2], v})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(vs) == 0 {
		t.Fatal("vectors.txt: no vectors")
	}
	return vs
}

func mustDigest(t testing.TB, h Hash, path string) []byte {
	t.Helper()
	d, err := DigestFile(h, path)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
