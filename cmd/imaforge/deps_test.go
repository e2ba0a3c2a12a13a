package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/imaforge/imaforge/internal/testenv"
)

// TestCloudKMSOptIn: the imaforge binary (no build tags) links no cloud KMS
// SDK. relic's token/open blank-imports them all, and relic's server imports
// token/open, so the service lives in the imaforge_serve build
// (bin/imaforge-serve) and the cloud tokens behind imaforge_cloudkms. Either
// leaking into the default build doubles the binary (16.5 -> 33.6 MB when
// the server was linked).
func TestCloudKMSOptIn(t *testing.T) {
	goTool := testenv.NeedTool(t, "go")
	out, err := exec.Command(goTool, "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	for _, p := range deps {
		for _, banned := range []string{
			"github.com/aws/aws-sdk-go-v2/",
			"github.com/Azure/azure-sdk-for-go/",
			"cloud.google.com/go/kms/",
			"github.com/sassoftware/relic/v8/token/open",
			"github.com/sassoftware/relic/v8/server",
		} {
			if p == strings.TrimSuffix(banned, "/") || strings.HasPrefix(p, banned) {
				t.Errorf("imaforge links %s (cloud KMS SDKs and relic's server are opt-in builds)", p)
			}
		}
	}
	if len(deps) > 450 {
		t.Errorf("imaforge links %d packages; it linked 348 when this test was written", len(deps))
	}
}
