//go:build imaforge_cloudkms

package signer

// The cloud KMS token types of relic (AWS KMS, Azure Key Vault, Google
// Cloud KMS) link their SDKs: about 14 MB of binary and 250 packages, so
// they are an opt-in: go build -tags imaforge_cloudkms ./cmd/imaforge.
import (
	_ "github.com/sassoftware/relic/v8/token/awstoken"
	_ "github.com/sassoftware/relic/v8/token/azuretoken"
	_ "github.com/sassoftware/relic/v8/token/gcloudtoken"
)
