package policy

import (
	"bytes"
	"fmt"

	"github.com/imaforge/imaforge/imasig"
)

// Sign returns the security.ima value for a policy file's bytes: the kernel
// loads a policy file named in a write to /sys/kernel/security/ima/policy
// only if this value, in the file's security.ima, verifies (with
// "appraise func=POLICY_CHECK appraise_type=imasig" in force). The same
// bytes, written to FILE.sig, are the detached signature evmctl --sigfile
// reads. The crypto is s's (a *signer.Signer); this only hashes data with h.
func Sign(s imasig.DigestSigner, h imasig.Hash, data []byte) ([]byte, error) {
	digest, err := imasig.DigestReader(h, bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("policy signature: %w", err)
	}
	v, err := s.SignDigest(h, digest)
	if err != nil {
		return nil, fmt.Errorf("policy signature: %w", err)
	}
	return v, nil
}

// Verify checks a security.ima value over a policy file's bytes, with the
// hash algorithm the value names. Failures wrap imasig's errors
// (*imasig.InvalidSignatureError).
func Verify(v *imasig.Verifier, data, value []byte) error {
	return v.VerifyReader(value, bytes.NewReader(data))
}
