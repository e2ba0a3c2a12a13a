package imasig

import (
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"github.com/imaforge/imaforge/internal/testkeys"
)

// td is the shared test data directory (keys, files, vectors made by
// testdata/signer/gen.sh).
var td = filepath.Join("..", "testdata", "signer")

func loadVectors(t testing.TB) []testkeys.Vector {
	return testkeys.LoadVectors(t, filepath.Join(td, "vectors.txt"))
}

// loadCert reads a PEM certificate of testdata/signer/keys.
func loadCert(t testing.TB, name string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(td, "keys", name))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM block", name)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return c
}
