package verify_test

import (
	"context"
	"fmt"

	"github.com/imaforge/imaforge/pki"
	"github.com/imaforge/imaforge/verify"
)

// Verify an image against a manufacturer root, an owner CA and the IMA
// certificates a device loads, without checking dates, and list what fails.
func ExampleFile() {
	ts, err := pki.LoadTrustStore(pki.TrustConfig{
		Roots:         []string{"root.pem"},
		Intermediates: []string{"owner.pem", "mfr.pem", "tenant.pem"},
		Revocation:    pki.RevocationBestEffort, // the fixtures come without CRLs
	}, "../testdata/verify")
	if err != nil {
		panic(err)
	}
	rep, err := verify.File(context.Background(), "../testdata/verify/tampered.sqsh", verify.Options{Trust: ts})
	if err != nil {
		panic(err) // an unreadable or malformed image
	}
	for _, f := range rep.Failures() {
		for _, p := range f.Problems {
			fmt.Println(f.Path, p.Reason)
		}
	}
	fmt.Println("ok:", rep.OK, "refused by the kernel:", rep.Summary.Refused)
	// Output:
	// /usr/bin/other digest-mismatch
	// /usr/bin/other policy-refused
	// /usr/bin/tool digest-mismatch
	// /usr/bin/tool policy-refused
	// ok: false refused by the kernel: 2
}
