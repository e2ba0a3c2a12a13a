package pipeline

import (
	"crypto"
	"crypto/rsa"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/imaforge/imaforge/manifest"
	"github.com/imaforge/imaforge/pki"
)

// checkKeys refuses, before any file is read, to sign with a key the device
// would reject or that may not sign what the rules give it:
//
//   - with a trust store in the manifest, every key's certificate must chain
//     to one of its roots, be valid now (the kernel ignores certificate dates,
//     so this is the only place expiry is enforced), not be revoked, have the
//     key usage of an IMA key, and have a 32-bit key id no other certificate
//     in the store has;
//   - every file must lie inside the scope of its key's certificate and of
//     the CAs above it (pki's scope extension), so a tenant key cannot sign
//     the base system even with a hand-edited manifest.
//
// lay may be nil (no tree): then only the keys are checked.
func (opts *Options) checkKeys(m *manifest.Manifest, keys map[string]Key, lay *layout) error {
	now := time.Now()
	if opts.Now != nil {
		now = opts.Now()
	}
	names := make([]string, 0, len(keys))
	for name := range keys {
		names = append(names, name)
	}
	sort.Strings(names)

	// allows reports whether a key may sign an image path.
	allows := make(map[string]func(string) error, len(keys))
	if m.Trust != nil {
		ts, err := pki.LoadTrustStore(pki.TrustConfig{
			Roots:         m.Trust.Roots,
			Intermediates: m.Trust.Intermediates,
			CRLs:          m.Trust.CRLs,
			Revocation:    m.Trust.Revocation,
		}, m.Dir)
		if err != nil {
			return m.Errorf(m.Trust.Pos, err, "trust")
		}
		for _, name := range names {
			if err := ts.Add(keys[name].Cert()); err != nil {
				return keyError(m, name, err)
			}
		}
		var errs []error
		for _, name := range names {
			k := keys[name]
			var pub crypto.PublicKey
			if p, ok := k.(interface{ Public() crypto.PublicKey }); ok {
				pub = p.Public()
			}
			chain, err := ts.CheckSigner(k.Cert(), pub, now)
			if err != nil {
				errs = append(errs, keyError(m, name, err))
				continue
			}
			for _, w := range chain.Warnings { // trust.revocation: best-effort
				opts.logf("warning: key %q: %s", name, w)
			}
			allows[name] = chain.CheckPath
		}
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
	} else {
		for _, name := range names {
			scope, err := pki.ParseScope(keys[name].Cert())
			if err != nil {
				return keyError(m, name, err)
			}
			allows[name] = func(p string) error {
				if scope.Allows(p) {
					return nil
				}
				return fmt.Errorf("%s is outside the key's scope %s: %w", p, scope, pki.ErrOutOfScope)
			}
		}
	}

	if err := checkTenantSigners(m, keys); err != nil {
		return err
	}
	if lay == nil {
		return nil
	}
	signed := make([]*fileState, 0, len(lay.files))
	for i := range lay.files {
		if lay.rule(&lay.files[i]).key != "" {
			signed = append(signed, &lay.files[i])
		}
	}
	// errors in byte order of the paths
	slices.SortFunc(signed, func(a, b *fileState) int { return strings.Compare(lay.entry(a).Path, lay.entry(b).Path) })
	evmChecked := map[string]bool{}
	var errs []error // every refused path, not the first one only
	for _, fs := range signed {
		p, f := lay.entry(fs).Path, lay.rule(fs)
		if err := allows[f.key](p); err != nil {
			errs = append(errs, m.Errorf(*f.pos, err, "key %q may not sign %s", f.key, p))
		}
		if f.evmKey == "" {
			continue
		}
		if err := allows[f.evmKey](p); err != nil {
			errs = append(errs, m.Errorf(*f.pos, err, "EVM key %q may not sign %s", f.evmKey, p))
		}
		if !evmChecked[f.evmKey] {
			evmChecked[f.evmKey] = true
			if err := checkEVMKey(m, keys[f.evmKey]); err != nil {
				errs = append(errs, m.Errorf(*f.pos, err, "EVM key %q", f.evmKey))
			}
		}
	}
	return errors.Join(errs...)
}

// ErrKernelCannotVerify: the target kernel cannot check a signature made
// with this key or hash, so every file would be refused.
var ErrKernelCannotVerify = errors.New("the target kernel cannot verify it")

// checkEVMKey refuses an EVM key the target kernel cannot verify: on
// Debian's 6.1 (image.evm_xattrs debian-6.1) only RSA, as it has no
// CONFIG_CRYPTO_ECDSA; the hash must be one imasig can sign with (sha1 is
// refused by the signer already).
func checkEVMKey(m *manifest.Manifest, k Key) error {
	if m.Image.EVMXattrs.Profile != "debian-6.1" {
		return nil
	}
	if _, ok := k.Cert().PublicKey.(*rsa.PublicKey); !ok {
		return fmt.Errorf("%w: a %s key, and Debian's 6.1 kernel (image.evm_xattrs: debian-6.1) verifies only RSA signatures (no CONFIG_CRYPTO_ECDSA)",
			ErrKernelCannotVerify, k.Cert().PublicKeyAlgorithm)
	}
	return nil
}

func keyError(m *manifest.Manifest, name string, err error) error {
	return m.Errorf(m.Keys[name].Pos, err, "key %q", name)
}
