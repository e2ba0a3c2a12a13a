package pipeline

import (
	"crypto"
	"errors"
	"fmt"
	"sort"
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
func (opts *Options) checkKeys(m *manifest.Manifest, keys map[string]Key, files map[string]*fileState) error {
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

	paths := make([]string, 0, len(files))
	for p, f := range files {
		if f.key != "" {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	for _, p := range paths {
		f := files[p]
		if err := allows[f.key](p); err != nil {
			return m.Errorf(f.pos, err, "key %q may not sign %s", f.key, p)
		}
	}
	return nil
}

func keyError(m *manifest.Manifest, name string, err error) error {
	return m.Errorf(m.Keys[name].Pos, err, "key %q", name)
}
