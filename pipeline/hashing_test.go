package pipeline

import (
	"bytes"
	"crypto/sha256"
	"io"
	"testing"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/rootfs"
	"github.com/imaforge/imaforge/squashfs"
)

// TestHashingReaderSHA256: with SHA-256 a file's reader gives the SquashFS
// writer the digest it made (the same as hashing the content), and the file's
// digest at Close is that one; bytes read after SumSHA256 are not left out;
// with another hash the reader says it has no SHA-256.
func TestHashingReaderSHA256(t *testing.T) {
	data := bytes.Repeat([]byte("content "), 1000)
	open := func(h imasig.Hash, n int) (*hashingReader, *fileState) {
		fs := &fileState{fileRule: &fileRule{}, entry: &rootfs.Entry{Path: "/f", Size: int64(len(data))}}
		hh, err := h.New()
		if err != nil {
			t.Fatal(err)
		}
		return &hashingReader{rc: io.NopCloser(bytes.NewReader(data[:n])), h: hh, sha256: h == imasig.SHA256, fs: fs}, fs
	}
	want := sha256.Sum256(data)

	r, fs := open(imasig.SHA256, len(data))
	var cs squashfs.ContentSHA256 = r
	if _, err := io.ReadAll(r); err != nil {
		t.Fatal(err)
	}
	if !cs.HashesSHA256() || cs.SumSHA256() != want {
		t.Fatalf("SumSHA256 %x, want %x", cs.SumSHA256(), want)
	}
	if err := r.Close(); err != nil || !bytes.Equal(fs.digest, want[:]) {
		t.Fatalf("digest %x (%v), want %x", fs.digest, err, want)
	}

	// asked half way: Close still hashes every byte
	r, fs = open(imasig.SHA256, len(data))
	io.CopyN(io.Discard, r, 100)
	r.SumSHA256()
	if _, err := io.ReadAll(r); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil || !bytes.Equal(fs.digest, want[:]) {
		t.Fatalf("digest after an early SumSHA256 %x (%v), want %x", fs.digest, err, want)
	}

	if r, _ := open(imasig.SHA512, len(data)); r.HashesSHA256() {
		t.Error("a SHA-512 reader says it hashes with SHA-256")
	}
}
