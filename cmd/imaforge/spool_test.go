package main

import (
	"archive/tar"
	"compress/gzip"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBuildSpoolLimit: a compressed tarball whose members would spool more
// than --max-spool fails the build with exit code 1 (a build failure, not
// a manifest error), naming the tarball and the member; a sparse-friendly
// member of zeros costs nothing against the limit.
func TestBuildSpoolLimit(t *testing.T) {
	dir := buildProject(t)
	f, err := os.Create(filepath.Join(dir, "root.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	data := make([]byte, 300<<10)
	rand.New(rand.NewSource(16)).Read(data)
	for _, m := range []struct {
		name string
		data []byte
	}{{"zeros", make([]byte, 4<<20)}, {"random", data}} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: m.name, Mode: 0o644, Size: int64(len(m.data))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(m.data); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []interface{ Close() error }{tw, zw, f} {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
	m := filepath.Join(dir, "m.yaml")
	text := strings.Replace(buildManifest, "  - from: src/\n", "  - from: root.tar.gz\n", 1)
	if err := os.WriteFile(m, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := run(t, "build", "--quiet", "--max-spool", "200K", m)
	if code != 1 || !strings.Contains(errOut, "spool limit reached") || !strings.Contains(errOut, `root.tar.gz: member "random"`) {
		t.Errorf("exit %d, stderr %q; want 1 naming the member", code, errOut)
	}
	if code, _, errOut := run(t, "build", "--quiet", "--max-spool", "1M", m); code != 0 {
		t.Errorf("with 1M (the 4 MiB of zeros are holes): exit %d: %s", code, errOut)
	}
}
