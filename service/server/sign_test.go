package server

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/internal/testkeys"
	"github.com/imaforge/imaforge/service"
	"github.com/imaforge/imaforge/signer"
)

func TestSameHashRuns(t *testing.T) {
	const a, b = imasig.SHA256, imasig.SHA512
	for _, tc := range []struct {
		hashes []imasig.Hash
		size   int
		want   [][2]int
	}{
		{nil, 4, nil},
		{[]imasig.Hash{a}, 4, [][2]int{{0, 1}}},
		{[]imasig.Hash{a, a, a, a, a}, 2, [][2]int{{0, 2}, {2, 4}, {4, 5}}},
		{[]imasig.Hash{a, a, b, b, b, a}, 8, [][2]int{{0, 2}, {2, 5}, {5, 6}}},
		{[]imasig.Hash{a, b, a}, 0, [][2]int{{0, 1}, {1, 2}, {2, 3}}},
	} {
		items := make([]service.Item, len(tc.hashes))
		for i, h := range tc.hashes {
			items[i].Hash = h
		}
		if got := sameHashRuns(items, tc.size); !slices.Equal(got, tc.want) {
			t.Errorf("sameHashRuns(%v, %d) = %v, want %v", tc.hashes, tc.size, got, tc.want)
		}
	}
}

// failingKey refuses to sign one digest.
type failingKey struct {
	crypto.Signer
	bad []byte
}

func (k failingKey) Sign(r io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if bytes.Equal(digest, k.bad) {
		return nil, errors.New("token refused")
	}
	return k.Signer.Sign(r, digest, opts)
}

// TestSignItems: a batch mixing hash algorithms, longer than a signing run,
// gets each value for its own entry, in order, for an RSA key (signed in
// runs through libcrypto) and an ECDSA key; one failing signature fails the
// batch whole, naming the entries.
func TestSignItems(t *testing.T) {
	items := make([]service.Item, 3*signer.BatchSize+5)
	for i := range items {
		if i%50 < 40 {
			d := sha256.Sum256(fmt.Append(nil, i))
			items[i] = service.Item{Path: fmt.Sprint("/f", i), Hash: imasig.SHA256, Digest: d[:]}
		} else {
			d := sha512.Sum512(fmt.Append(nil, i))
			items[i] = service.Item{Path: fmt.Sprint("/f", i), Hash: imasig.SHA512, Digest: d[:]}
		}
	}
	for _, typ := range []string{"rsa2048", "p256"} {
		t.Run(typ, func(t *testing.T) {
			k := testkeys.New(t, t.TempDir(), "k", typ)
			s, err := signer.New(k.Signer, k.Cert)
			if err != nil {
				t.Fatal(err)
			}
			vals, err := signItems(s, items)
			if err != nil {
				t.Fatal(err)
			}
			if len(vals) != len(items) {
				t.Fatalf("%d values for %d entries", len(vals), len(items))
			}
			for i, v := range vals {
				if err := imasig.Verify(v, items[i].Digest, k.Cert); err != nil {
					t.Fatalf("entry %d: %v", i, err)
				}
			}

			bad := 2*signer.BatchSize + 1
			fs, err := signer.New(failingKey{k.Signer, items[bad].Digest}, k.Cert)
			if err != nil {
				t.Fatal(err)
			}
			vals, err = signItems(fs, items)
			if err == nil || vals != nil {
				t.Fatalf("a failing signature: %d values, error %v; want none and an error", len(vals), err)
			}
			if !bytes.Contains([]byte(err.Error()), []byte("token refused")) {
				t.Errorf("error %q does not carry the cause", err)
			}
		})
	}
}
