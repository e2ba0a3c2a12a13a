package verify_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imaforge/imaforge/manifest"
	"github.com/imaforge/imaforge/pipeline"
	"github.com/imaforge/imaforge/tarimage"
	"github.com/imaforge/imaforge/verify"
)

// buildTar builds the fixture's tree as a tar archive of format, with
// portable EVM signatures by the manufacturer's (RSA) key on its files.
func (fx *fixture) buildTar(t *testing.T, format string) []byte {
	t.Helper()
	text := strings.NewReplacer("OUTPUT", "pkg."+format, "SRC", "src",
		"  compression: none\n  block_size: 4K\n", "  format: "+format+"\n",
		"  - match: /**\n    key: manufacturer\n", "  - match: /**\n    key: manufacturer\n    evm: true\n").Replace(fixtureManifest)
	m := filepath.Join(fx.dir, "tar.yaml")
	check(t, os.WriteFile(m, []byte(text), 0o644))
	man, err := manifest.Load(m)
	check(t, err)
	res, err := pipeline.Build(context.Background(), pipeline.Options{Manifest: man, ToolVersion: "test"})
	check(t, err)
	b, err := os.ReadFile(res.ImagePath)
	check(t, err)
	return b
}

// rewriteTar copies a plain tar archive, letting edit change each header.
func rewriteTar(t *testing.T, in []byte, edit func(h *tar.Header)) []byte {
	t.Helper()
	var out bytes.Buffer
	tr, tw := tar.NewReader(bytes.NewReader(in)), tar.NewWriter(&out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		check(t, err)
		data, err := io.ReadAll(tr)
		check(t, err)
		edit(h)
		check(t, tw.WriteHeader(h))
		_, err = tw.Write(data)
		check(t, err)
	}
	check(t, tw.Close())
	return out.Bytes()
}

func verifyBytes(t *testing.T, fx *fixture, b []byte) *verify.Report {
	t.Helper()
	rep, err := verify.Image(context.Background(), bytes.NewReader(b), int64(len(b)),
		verify.Options{Trust: fx.trust(t, nil), PolicyPaths: []string{"/etc/ima/policy.d/50-exec.policy"}})
	check(t, err)
	return rep
}

func fileResult(t *testing.T, rep *verify.Report, p string) *verify.FileResult {
	t.Helper()
	for _, f := range rep.Files {
		if f.Path == p {
			return f
		}
	}
	t.Fatalf("%s not in the report", p)
	return nil
}

// TestVerifyTar: verify reads tar, tar.gz and tar.zst archives (and
// SquashFS images with security.evm), checks
// every file's security.ima and security.evm, and fails exactly the file
// whose mode, owner or security.ima was changed in the archive after the
// build (ReasonEVM; a swapped security.ima from another file also fails
// its signature).
func TestVerifyTar(t *testing.T) {
	fx := newFixture(t)
	for _, format := range []string{"tar", "tar.gz", "tar.zst", "squashfs"} {
		rep := verifyBytes(t, fx, fx.buildTar(t, format))
		if rep.Summary.Failed != 0 || (format != "squashfs" && rep.Image.Compression != format) {
			t.Fatalf("%s: clean archive: %+v %+v", format, rep.Summary, rep.Image)
		}
		evm := 0
		for _, f := range rep.Files {
			if f.EVM == "ok" {
				evm++
			}
		}
		if evm != 4 { // the manufacturer's files: usr/bin/tool, other, libx.so, etc/conf (+ the policy fragment)
			if evm != 5 {
				t.Errorf("%s: %d files with a valid security.evm", format, evm)
			}
		}
	}
	clean := fx.buildTar(t, "tar")
	var otherIMA string
	rewriteTar(t, clean, func(h *tar.Header) {
		if h.Name == "./usr/bin/other" {
			otherIMA = h.PAXRecords["SCHILY.xattr.security.ima"]
		}
	})
	if otherIMA == "" {
		t.Fatal("usr/bin/other has no security.ima")
	}
	for _, tc := range []struct {
		name string
		edit func(h *tar.Header)
	}{
		{"chmod u+s", func(h *tar.Header) { h.Mode |= 0o4000 }},
		{"chown", func(h *tar.Header) { h.Uid = 1000 }},
		{"chgrp", func(h *tar.Header) { h.Gid = 6 }},
		{"swap security.ima", func(h *tar.Header) {
			// archive/tar writes the deprecated Header.Xattrs over PAXRecords.
			h.PAXRecords["SCHILY.xattr.security.ima"] = otherIMA
			//lint:ignore SA1019 archive/tar still writes the deprecated field, and the test must replace it
			h.Xattrs["security.ima"] = otherIMA
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := rewriteTar(t, clean, func(h *tar.Header) {
				if h.Name == "./usr/bin/tool" {
					tc.edit(h)
				}
			})
			rep := verifyBytes(t, fx, b)
			f := fileResult(t, rep, "/usr/bin/tool")
			evmProblem := false
			for _, p := range f.Problems {
				evmProblem = evmProblem || p.Reason == verify.ReasonEVM
			}
			if f.EVM != "failed" || !evmProblem {
				t.Errorf("tool: evm %q, problems %+v", f.EVM, f.Problems)
			}
			if rep.Summary.Failed != 1 {
				t.Errorf("%d files failed, want 1", rep.Summary.Failed)
			}
		})
	}
}

// TestVerifyTarRefusesBadArchives: broken or hostile archives are image
// errors (exit 2), not passes.
func TestVerifyTarRefusesBadArchives(t *testing.T) {
	fx := newFixture(t)
	clean := fx.buildTar(t, "tar")
	for name, b := range map[string][]byte{
		"truncated":    clean[:700],
		"dotdot":       rewriteTar(t, clean, func(h *tar.Header) { h.Name = strings.Replace(h.Name, "./etc/conf", "../etc/conf", 1) }),
		"gzip garbage": append([]byte{0x1f, 0x8b}, bytes.Repeat([]byte("x"), 4096)...),
	} {
		_, err := verify.Image(context.Background(), bytes.NewReader(b), int64(len(b)), verify.Options{Trust: fx.trust(t, nil)})
		var ie *verify.ImageError
		if !errors.As(err, &ie) || !errors.Is(err, tarimage.ErrFormat) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
