package verify_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/imaforge/imaforge/pki"
	"github.com/imaforge/imaforge/verify"
)

var update = flag.Bool("update", false, "rewrite the golden reports in testdata/verify")

const goldenDir = "../testdata/verify"

// TestVerifyGolden verifies the committed fixture images (made by
// testdata/verify/mkfixtures.sh with `imaforge build`, dates not checked:
// the certificates are short-lived) and compares the JSON and text reports
// byte for byte with the golden files: the report format is an interface.
func TestVerifyGolden(t *testing.T) {
	ts, err := pki.LoadTrustStore(pki.TrustConfig{
		Roots:         []string{"root.pem"},
		Intermediates: []string{"owner.pem", "mfr.pem", "tenant.pem"},
		Revocation:    pki.RevocationBestEffort, // the fixtures come without CRLs
	}, goldenDir)
	check(t, err)
	devicePolicy, err := os.ReadFile(filepath.Join(goldenDir, "device.policy"))
	check(t, err)
	for _, tt := range []struct {
		name, image string
		policies    []verify.PolicyFile
		ok          bool
	}{
		{"clean", "clean.sqsh", nil, true},
		{"clean-device-policy", "clean.sqsh", []verify.PolicyFile{{Name: "device.policy", Data: devicePolicy}}, false},
		{"tampered", "tampered.sqsh", nil, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			img, err := os.ReadFile(filepath.Join(goldenDir, tt.image))
			check(t, err)
			rep := run(t, img, verify.Options{Trust: ts, Policies: tt.policies, ImagePath: tt.image})
			if rep.OK != tt.ok {
				t.Errorf("OK = %v, want %v", rep.OK, tt.ok)
			}
			js, err := json.MarshalIndent(rep, "", "  ")
			check(t, err)
			js = append(js, '\n')
			var text bytes.Buffer
			check(t, rep.WriteText(&text, true))
			for ext, got := range map[string][]byte{".golden.json": js, ".golden.txt": text.Bytes()} {
				path := filepath.Join(goldenDir, tt.name+ext)
				if *update {
					check(t, os.WriteFile(path, got, 0o644))
					continue
				}
				want, err := os.ReadFile(path)
				check(t, err)
				if !bytes.Equal(got, want) {
					t.Errorf("%s differs from the report (go test ./verify -run Golden -update rewrites it):\n%s", path, got)
				}
			}
		})
	}
}
