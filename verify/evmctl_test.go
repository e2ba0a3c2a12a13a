package verify_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imaforge/imaforge/internal/testenv"
	"github.com/imaforge/imaforge/squashfs"
	"github.com/imaforge/imaforge/verify"
)

// cryptoOK reports whether verify found the file's signature valid with a
// key of the trust material: what evmctl ima_verify checks (it knows nothing
// of chains, dates, CRLs, scopes or policies).
func cryptoOK(f *verify.FileResult) bool {
	for _, p := range f.Problems {
		switch p.Reason {
		case verify.ReasonExpired, verify.ReasonNotYetValid, verify.ReasonRevoked, verify.ReasonOutOfScope,
			verify.ReasonUntrustedChain, verify.ReasonPolicyRefused, verify.ReasonPolicyLint:
		default:
			return false
		}
	}
	return f.Status != verify.StatusUnsigned && f.Type == "signature"
}

// TestVerifyAgreesWithEvmctl extracts every signed file of two images (the
// clean build, and a hand-made one with tampered content, swapped, corrupt,
// rogue and out-of-scope signatures) with our reader into FILE + FILE.sig and
// has `evmctl ima_verify --sigfile --key MFR.der,TENANT.der` judge each; its
// verdict must equal verify's on the signature.
func TestVerifyAgreesWithEvmctl(t *testing.T) {
	evmctl := testenv.NeedTool(t, "evmctl")
	fx := shared(t)
	a, b := strings.Repeat("alpha\n", 2000), strings.Repeat("beta\n", 50)
	corrupt := sign(t, fx.mfrS, a)
	corrupt[20] ^= 0x40
	mixed := writeImage(t, []entry{
		{"/usr/bin/good", 0o755, a, sign(t, fx.mfrS, a)},
		{"/usr/bin/changed", 0o755, a + "x", sign(t, fx.mfrS, a)},
		{"/usr/bin/swapped-a", 0o755, a, sign(t, fx.mfrS, b)},
		{"/usr/bin/swapped-b", 0o755, b, sign(t, fx.mfrS, a)},
		{"/usr/bin/corrupt", 0o755, a, corrupt},
		{"/usr/bin/rogue", 0o755, a, sign(t, fx.rogS, a)},
		{"/usr/bin/tenant-outside", 0o755, b, sign(t, fx.tenS, b)},
		{"/opt/acme/ecdsa-good", 0o755, b, sign(t, fx.tenS, b)},
		{"/opt/acme/ecdsa-swapped", 0o755, a, sign(t, fx.tenS, b)},
	})
	keys := filepath.Join(fx.dir, "pki", "mfr.der") + "," + filepath.Join(fx.dir, "pki", "tenant.der")
	var okCount, badCount int
	for name, img := range map[string][]byte{"clean": fx.clean, "mixed": mixed} {
		rep := run(t, img, verify.Options{Trust: fx.trust(t, nil)})
		z, err := squashfs.NewReader(bytes.NewReader(img), int64(len(img)))
		check(t, err)
		dir := t.TempDir()
		n := 0
		for i, f := range rep.Files {
			if f.Type == "" { // unsigned: nothing for evmctl to judge
				continue
			}
			n++
			data, err := z.ReadFile(strings.TrimPrefix(f.Path, "/"))
			check(t, err)
			p := filepath.Join(dir, fmt.Sprintf("f%03d", i))
			check(t, os.WriteFile(p, data, 0o644))
			check(t, os.WriteFile(p+".sig", imaValue(t, img, f.Path), 0o644))
			out, err := exec.Command(evmctl, "ima_verify", "--sigfile", "--key", keys, p).CombinedOutput()
			theirs := err == nil
			if ours := cryptoOK(f); ours != theirs {
				t.Errorf("%s %s: verify says valid=%v (%+v), evmctl says valid=%v:\n%s", name, f.Path, ours, f.Problems, theirs, out)
			}
			if theirs {
				okCount++
			} else {
				badCount++
			}
		}
		if n == 0 {
			t.Fatalf("%s: no signed file", name)
		}
	}
	// the comparison means something only if both verdicts occurred
	if okCount < 8 || badCount < 5 {
		t.Errorf("evmctl accepted %d and rejected %d files; want both verdicts exercised", okCount, badCount)
	}
}
