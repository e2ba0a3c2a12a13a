package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imaforge/imaforge/internal/testenv"
	"github.com/imaforge/imaforge/internal/testkeys"
	"github.com/imaforge/imaforge/squashfs"
)

// TestOneBuildOneImage builds imaforge twice, with cgo and with
// CGO_ENABLED=0, and holds the reproducibility contract
// (docs/reproducibility.md) across the two: what the pure-Go build writes
// (an uncompressed SquashFS image, tar, tar.gz; RSA and ECDSA file keys) is
// byte for byte the cgo build's, image and record; a compressor whose
// pure-Go encoder would give other bytes (every SquashFS compressor, and
// tar.zst's libzstd) is refused at the manifest's line, exit 2, naming the
// compressor or format and the way out, with nothing written.
func TestOneBuildOneImage(t *testing.T) {
	gobin := testenv.NeedTool(t, "go")
	if _, err := squashfs.EncoderOf(squashfs.Zstd); err != nil {
		t.Skip("this test binary was built without cgo: there is no cgo build to compare with")
	}
	bins := t.TempDir()
	for _, cgo := range []string{"1", "0"} {
		cmd := exec.Command(gobin, "build", "-trimpath", "-ldflags", "-X main.version=v0-test -X main.commit=test",
			"-o", filepath.Join(bins, "imaforge-cgo"+cgo), ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED="+cgo)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("CGO_ENABLED=%s go build: %v\n%s", cgo, err, out)
		}
	}
	dir := buildProject(t)
	testkeys.New(t, dir, "oem", "rsa2048")
	build := func(bin, manifest string) (code int, stderr string, img, rec []byte) {
		t.Helper()
		m := filepath.Join(dir, "m.yaml")
		if err := os.WriteFile(m, []byte(manifest), 0o644); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, "out")
		os.RemoveAll(out)
		cmd := exec.Command(filepath.Join(bins, bin), "build", "--quiet", m)
		var eb bytes.Buffer
		cmd.Stderr = &eb
		if err := cmd.Run(); err != nil {
			ee, ok := err.(*exec.ExitError)
			if !ok {
				t.Fatal(err)
			}
			code = ee.ExitCode()
		}
		ents, _ := os.ReadDir(out)
		for _, e := range ents {
			b, err := os.ReadFile(filepath.Join(out, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasSuffix(e.Name(), ".record.json") {
				rec = b
			} else if strings.HasPrefix(e.Name(), "img.") {
				img = b
			}
		}
		return code, eb.String(), img, rec
	}
	manifest := func(image string) string {
		return strings.Replace(strings.Replace(buildManifest, "  output: out/img.sqsh\n  compression: zstd\n", image, 1),
			"keys:\n", "keys:\n  oem: {cert: oem.pem, key: oem.key}\n", 1) + "  - match: /sub/**\n    key: oem\n"
	}
	// Rules: the first match wins, so /sub/** must come before /**.
	withRules := func(s string) string {
		s = strings.Replace(s, "  - match: /**\n    key: mfr\n  - match: /sub/**\n    key: oem\n",
			"  - match: /sub/**\n    key: oem\n  - match: /**\n    key: mfr\n", 1)
		return s
	}

	for _, image := range []string{
		"  output: out/img.sqsh\n  compression: none\n",
		"  output: out/img.tar\n  format: tar\n",
		"  output: out/img.tar.gz\n  format: tar.gz\n",
	} {
		m := withRules(manifest(image))
		c1, e1, img1, rec1 := build("imaforge-cgo1", m)
		c0, e0, img0, rec0 := build("imaforge-cgo0", m)
		if c1 != 0 || c0 != 0 || img1 == nil || rec1 == nil {
			t.Fatalf("%q: exit %d (cgo) and %d (pure Go)\n%s\n%s", image, c1, c0, e1, e0)
		}
		if !bytes.Equal(img1, img0) || !bytes.Equal(rec1, rec0) {
			t.Errorf("%q: the pure-Go build's image or record differs from the cgo build's\n%s\n%s", image, rec1, rec0)
		}
		if !bytes.Contains(rec1, []byte(`"key": "oem"`)) || !bytes.Contains(rec1, []byte(`"key": "mfr"`)) {
			t.Errorf("%q: the record does not show both keys used:\n%s", image, rec1)
		}
		if strings.Contains(image, "gz") != bytes.Contains(rec1, []byte(`"library": "github.com/klauspost/compress"`)) {
			t.Errorf("%q: record codec:\n%s", image, rec1)
		}
	}

	// tar.zst: libzstd in the cgo build, named in the record; refused
	// without cgo at image.format.
	m := withRules(manifest("  output: out/img.tar.zst\n  format: tar.zst\n"))
	code, stderr, _, rec := build("imaforge-cgo1", m)
	if code != 0 || !bytes.Contains(rec, []byte(`"library": "libzstd"`)) {
		t.Fatalf("tar.zst, cgo build: exit %d, record codec not libzstd\n%s\n%s", code, stderr, rec)
	}
	code, stderr, img, rec := build("imaforge-cgo0", m)
	if code != 2 || img != nil || rec != nil ||
		!strings.Contains(stderr, "m.yaml:4:11") || !strings.Contains(stderr, "tar.zst needs the cgo build") ||
		!strings.Contains(stderr, "CGO_ENABLED=1") || !strings.Contains(stderr, "image.format: tar or tar.gz") {
		t.Errorf("tar.zst, pure-Go build: exit %d, %d image bytes, stderr:\n%s\nwant exit 2 at m.yaml:4:11, naming tar.zst, the cgo build and the other formats, nothing written",
			code, len(img), stderr)
	}

	for _, comp := range []string{"zstd", "gzip", "xz", "lz4"} {
		m := withRules(manifest("  output: out/img.sqsh\n  compression: " + comp + "\n"))
		code, stderr, _, rec := build("imaforge-cgo1", m)
		if code != 0 || !bytes.Contains(rec, []byte(`"codec": {`)) {
			t.Fatalf("%s, cgo build: exit %d, record has no codec\n%s\n%s", comp, code, stderr, rec)
		}
		code, stderr, img, rec := build("imaforge-cgo0", m)
		if code != 2 || img != nil || rec != nil ||
			!strings.Contains(stderr, "m.yaml:4:16") || !strings.Contains(stderr, comp+" compression needs the cgo build") ||
			!strings.Contains(stderr, "CGO_ENABLED=1") || !strings.Contains(stderr, "image.compression: none") {
			t.Errorf("%s, pure-Go build: exit %d, %d image bytes, stderr:\n%s\nwant exit 2 at m.yaml:4:16, naming %s, the cgo build and compression none, nothing written",
				comp, code, len(img), stderr, comp)
		}
	}
}
