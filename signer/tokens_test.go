//go:build !imaforge_cloudkms

package signer

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestCloudKMSOptIn: the default build links the file, scdtoken (scdaemon) and (with
// cgo) PKCS#11 token types and not the cloud KMS ones; a relic key on an
// aws token fails naming the build tag that links it.
func TestCloudKMSOptIn(t *testing.T) {
	types := tokenTypes()
	for _, want := range []string{"file", "scdtoken", "pkcs11"} {
		if want == "pkcs11" && !withCgo {
			if slices.Contains(types, want) {
				t.Errorf("token type pkcs11 linked without cgo (have %v)", types)
			}
			continue
		}
		if !slices.Contains(types, want) {
			t.Errorf("token type %s not linked (have %v)", want, types)
		}
	}
	for _, kms := range []string{"aws", "azure", "gcloud"} {
		if slices.Contains(types, kms) {
			t.Errorf("token type %s linked without the imaforge_cloudkms tag", kms)
		}
	}
	cfg := filepath.Join(t.TempDir(), "relic.yaml")
	if err := os.WriteFile(cfg, []byte("tokens:\n  kms:\n    type: aws\nkeys:\n  ima:\n    token: kms\n    id: arn:aws:kms:eu-west-1:1:key/x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := OpenKey("relic:ima", cfg, nil)
	if err == nil || !strings.Contains(err.Error(), "-tags imaforge_cloudkms") {
		t.Fatalf("aws token without the tag: %v", err)
	}
}
