package signer

import (
	"crypto"
	"crypto/x509"
	"path/filepath"
	"testing"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/internal/testkeys"
)

// td is the shared test data directory (keys, files, vectors made by
// testdata/signer/gen.sh).
var td = filepath.Join("..", "testdata", "signer")

func keyPath(name string) string  { return filepath.Join(td, "keys", name) }
func filePath(name string) string { return filepath.Join(td, "files", name) }

// allKeys are the supported key types, named as in testdata/signer/keys.
var allKeys = []string{"rsa2048", "rsa3072", "rsa4096", "p256", "p384"}

var signHashes = []imasig.Hash{imasig.SHA256, imasig.SHA384, imasig.SHA512}

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

func loadVectors(t testing.TB) []testkeys.Vector {
	return testkeys.LoadVectors(t, filepath.Join(td, "vectors.txt"))
}

func mustDigest(t testing.TB, h imasig.Hash, path string) []byte {
	t.Helper()
	d, err := DigestFile(h, path)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
