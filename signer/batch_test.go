package signer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/imaforge/imaforge/imasig"
)

// TestSignFilesParallel signs many files, some with identical content, with
// several workers (run with -race), then verifies them all; a tampered file
// and a missing signature are reported against their own paths only.
func TestSignFilesParallel(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for i := range 40 {
		p := filepath.Join(dir, fmt.Sprintf("f%02d", i))
		if err := os.WriteFile(p, []byte(fmt.Sprintf("content %d", i%7)), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	for _, k := range []string{"rsa2048", "p256"} {
		s := loadSigner(t, k)
		var n atomic.Int32
		if err := SignFiles(context.Background(), s, imasig.SHA384, SigFile, paths, 4, func(string, []byte) { n.Add(1) }); err != nil {
			t.Fatal(err)
		}
		if n.Load() != int32(len(paths)) {
			t.Errorf("%s: done called %d times", k, n.Load())
		}
		// identical contents got identical values
		a, _ := os.ReadFile(paths[0] + SigFileSuffix)
		b, _ := os.ReadFile(paths[7] + SigFileSuffix)
		if !bytes.Equal(a, b) {
			t.Errorf("%s: identical files got different values", k)
		}
		v, _ := imasig.NewVerifier(s.Cert())
		for i, err := range VerifyFiles(context.Background(), v, SigFile, paths, 4) {
			if err != nil {
				t.Errorf("%s: %s: %v", k, paths[i], err)
			}
		}
	}
	if err := os.WriteFile(paths[3], []byte("tampered"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(paths[5] + SigFileSuffix)
	v, _ := imasig.NewVerifier(loadCert(t, "p256.pem"))
	for i, err := range VerifyFiles(context.Background(), v, SigFile, paths, 3) {
		switch i {
		case 3:
			var ise *imasig.InvalidSignatureError
			if !errors.As(err, &ise) || ise.Path != paths[3] || !errors.Is(err, imasig.ErrBadSignature) {
				t.Errorf("tampered: %v", err)
			}
		case 5:
			if !errors.Is(err, ErrNoValue) {
				t.Errorf("missing .sig: %v", err)
			}
		default:
			if err != nil {
				t.Errorf("%s: %v", paths[i], err)
			}
		}
	}
	// cancelled context: stops with the context's error
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := SignFiles(ctx, loadSigner(t, "p256"), imasig.SHA256, SigFile, paths, 2, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}
