package verify_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/pki"
	"github.com/imaforge/imaforge/squashfs"
	"github.com/imaforge/imaforge/verify"
)

// TestVerifyUnreadableBlock: a data block that does not decompress fails
// that file as unreadable; the other files are still checked (was: the
// whole verification stopped with an *ImageError, exit 2, no report).
func TestVerifyUnreadableBlock(t *testing.T) {
	fx := shared(t)
	a := strings.Repeat("A", 8192)
	b := "B-MARKER " + strings.Repeat("b", 100)
	f, err := os.CreateTemp(t.TempDir(), "img")
	check(t, err)
	defer f.Close()
	w, err := squashfs.NewWriter(f, squashfs.Options{Compression: squashfs.Gzip, BlockSize: 4096, ModTime: 1700000000})
	check(t, err)
	for _, e := range []struct{ path, content string }{{"/a", a}, {"/b", b}} {
		content := e.content
		check(t, w.Add(squashfs.Entry{Path: e.path, Mode: 0o644, Size: int64(len(content)),
			Open:   func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(content)), nil },
			Xattrs: []squashfs.Xattr{{Name: imasig.XattrName, Value: sign(t, fx.mfrS, content)}}}))
	}
	check(t, w.Close())
	img, err := os.ReadFile(f.Name())
	check(t, err)
	// /a's first block is the first thing after the 96-byte superblock: a
	// zlib stream, whose header no longer checks after this.
	img[squashfs.SuperblockSize] ^= 0xff
	img[squashfs.SuperblockSize+1] ^= 0xff
	rep, err := verify.Image(context.Background(), bytes.NewReader(img), int64(len(img)), verify.Options{Trust: fx.trust(t, nil)})
	if err != nil {
		t.Fatalf("verify stopped at a damaged block: %v", err)
	}
	want(t, rep, map[string][]verify.Reason{"/a": {verify.ReasonUnreadable}})
	if rep.File("/b").Status != verify.StatusOK {
		t.Errorf("/b: %+v", rep.File("/b"))
	}
	if rep.ImageSignature == nil || rep.ImageSignature.Status != verify.ImageSigNone {
		t.Errorf("image signature %+v, want none", rep.ImageSignature)
	}
	js, err := json.Marshal(rep)
	check(t, err)
	if !bytes.Contains(js, []byte(`"image_signature":{"status":"none"`)) || !bytes.Contains(js, []byte(`"unreadable"`)) {
		t.Errorf("JSON report: %s", js)
	}
}

// TestVerifyRequireImageSignature: with RequireImageSignature (a manifest
// with image.signature_key) an image without a signature fails, the files
// are checked all the same; RequireVerityTree fails an image without an
// appended hash tree.
func TestVerifyRequireImageSignature(t *testing.T) {
	fx := shared(t)
	rep := run(t, fx.clean, verify.Options{Trust: fx.trust(t, nil), RequireImageSignature: true})
	if rep.OK || rep.ImageSignature.Status != verify.ImageSigFailed || rep.ImageSignature.Reason != verify.ReasonMissing {
		t.Errorf("required, none given: OK %v, %+v", rep.OK, rep.ImageSignature)
	}
	if rep.Summary.Files == 0 || rep.Summary.Failed != 0 {
		t.Errorf("files were not checked: %+v", rep.Summary)
	}
	rep = run(t, fx.clean, verify.Options{Trust: fx.trust(t, nil), RequireVerityTree: true})
	if rep.OK || rep.ImageSignature.Reason != verify.ReasonMissing || !strings.Contains(rep.ImageSignature.Message, "dm-verity") {
		t.Errorf("verity required, no tree: %+v", rep.ImageSignature)
	}
	rep = run(t, fx.clean, verify.Options{Trust: fx.trust(t, nil)})
	if !rep.OK || rep.ImageSignature.Status != verify.ImageSigNone {
		t.Errorf("nothing required: OK %v %+v", rep.OK, rep.ImageSignature)
	}
}

// TestVerifyRevocationUnknown: trust material with the root's CRL but not
// the owner CA's fails the tenant's files as revocation-unknown (the
// kernel would not refuse them: it knows no CRLs) and leaves the
// manufacturer's good; best-effort makes it a warning of the signer.
// (Was: the tenant's files passed as if a CRL said "not revoked".)
func TestVerifyRevocationUnknown(t *testing.T) {
	fx := shared(t)
	ts, err := pki.NewTrustStore([]*x509.Certificate{fx.root.Cert}, []*x509.Certificate{fx.owner.Cert, fx.mfr.Cert, fx.tenant.Cert}, fx.crls[:1])
	check(t, err)
	rep := run(t, fx.clean, verify.Options{Trust: ts})
	want(t, rep, map[string][]verify.Reason{"/opt/acme/bin/app": {verify.ReasonRevocationUnknown}, "/opt/acme/bin/helper": {verify.ReasonRevocationUnknown}})
	if f := rep.File("/opt/acme/bin/app"); f.Appraisal != nil && f.Appraisal.Refused {
		t.Errorf("the kernel would not refuse for unknown revocation: %+v", f.Appraisal)
	}
	check(t, ts.SetRevocation(pki.RevocationBestEffort))
	rep = run(t, fx.clean, verify.Options{Trust: ts})
	want(t, rep, nil)
	var warned bool
	for _, s := range rep.Signers {
		for _, w := range s.Warnings {
			warned = warned || strings.Contains(w, "no CRL of its issuer")
		}
	}
	if !warned {
		t.Errorf("best-effort: no warning in %+v", rep.Signers)
	}
}
