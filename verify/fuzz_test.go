package verify_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/imaforge/imaforge/verify"
)

// FuzzImage: whatever the image bytes, Image returns an error or a
// consistent report, never panics. Seeded with the fixture's clean build
// (policy fragment, RSA and ECDSA signatures, an unsigned file) and a small
// hand-made image; crashers found are kept in testdata/fuzz/FuzzImage.
func FuzzImage(f *testing.F) {
	fx := shared(f)
	text := "appraise func=BPRM_CHECK fsmagic=0x73717368 appraise_type=imasig\n"
	small := writeImage(f, []entry{
		{"/etc/ima/ima-policy", 0o444, text, sign(f, fx.mfrS, text)},
		{"/usr/bin/a", 0o755, "alpha", sign(f, fx.mfrS, "alpha")},
		{"/opt/acme/b", 0o755, "beta", sign(f, fx.tenS, "beta")},
		{"/c", 0o755, "gamma", nil},
	})
	f.Add(small)
	f.Add(fx.clean)
	ts := fx.trust(f, nil)
	f.Fuzz(func(t *testing.T, img []byte) {
		// a hostile image can describe huge sparse files: bound the time
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		start := time.Now()
		rep, err := verify.Image(ctx, bytes.NewReader(img), int64(len(img)), verify.Options{Trust: ts, Workers: 2})
		if d := time.Since(start); d > 30*time.Second {
			t.Fatalf("Image took %v, ignoring its context's 5 s deadline (err %v)", d, err)
		}
		if err != nil {
			var ie *verify.ImageError
			if !errors.As(err, &ie) && !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("error %v (%T) is not an *ImageError", err, err)
			}
			return
		}
		if rep.Summary.Files != len(rep.Files) {
			t.Fatalf("summary counts %d files, report lists %d", rep.Summary.Files, len(rep.Files))
		}
		for _, fr := range rep.Files {
			if (fr.Status == verify.StatusFailed) != fr.Failed() {
				t.Fatalf("%s: status %s with problems %v", fr.Path, fr.Status, fr.Problems)
			}
		}
	})
}
