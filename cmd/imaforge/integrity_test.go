package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestVerifyImageSignature: `imaforge verify` checks the whole-image
// signatures before the files: the signed verity descriptor by default, the
// image's CMS with --signature; a changed byte is reported as TAMPERED with
// the changed range, exit 1; an image without signatures gets a note, or
// fails with --require-image-signature.
func TestVerifyImageSignature(t *testing.T) {
	dir := raucProject(t)
	m := filepath.Join(dir, "m.yaml")
	if code, _, errOut := run(t, "build", "--quiet", m); code != 0 {
		t.Fatalf("build: exit %d: %s", code, errOut)
	}
	img := filepath.Join(dir, "out", "img.sqsh")

	code, out, errOut := run(t, "verify", "--trust-manifest", m, img)
	if code != 0 || !strings.Contains(out, "image signature: ok: dm-verity root hash") {
		t.Fatalf("verify: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = run(t, "verify", "--trust-manifest", m, "--signature", img+".cms", img)
	if code != 0 || !strings.Contains(out, "image signature: ok: image (") {
		t.Fatalf("verify --signature: exit %d\n%s%s", code, out, errOut)
	}
	code, out, errOut = run(t, "verify", "--json", "--trust-manifest", m, img)
	if code != 0 || !strings.HasPrefix(strings.TrimSpace(out), "{") || !strings.Contains(errOut, "image signature: ok") {
		t.Fatalf("verify --json: exit %d\n%s%s", code, out, errOut)
	}

	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	// The SquashFS part is one 4 KiB block, then the verity superblock.
	for _, tc := range []struct {
		off  int
		want string
	}{{2000, "changed bytes 0..4095"}, {4096 + 100, "dm-verity superblock"}} {
		data[tc.off] ^= 0x10
		if err := os.WriteFile(img, data, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, extra := range [][]string{nil, {"--signature", img + ".cms"}} {
			args := append(append([]string{"verify", "--trust-manifest", m}, extra...), img)
			code, out, errOut = run(t, args...)
			if code != 1 || !strings.Contains(errOut, "TAMPERED") || (extra == nil && !strings.Contains(errOut, tc.want)) {
				t.Errorf("verify %v of an image changed at %d: exit %d\n%s%s", extra, tc.off, code, out, errOut)
			}
		}
		data[tc.off] ^= 0x10
	}

	for _, f := range []string{".cms", ".verity", ".verity.cms", ".roothash.p7s"} {
		os.Remove(img + f)
	}
	os.WriteFile(img, data, 0o644)
	code, out, _ = run(t, "verify", "--trust-manifest", m, img)
	if code != 0 || !strings.Contains(out, "image signature: none") {
		t.Errorf("verify without signatures: exit %d\n%s", code, out)
	}
	if code, _, errOut := run(t, "verify", "--trust-manifest", m, "--require-image-signature", img); code != 1 || !strings.Contains(errOut, "no whole-image signature") {
		t.Errorf("--require-image-signature: exit %d %s", code, errOut)
	}
}
