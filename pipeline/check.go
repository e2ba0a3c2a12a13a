package pipeline

import (
	"context"
	"errors"
	"time"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/manifest"
	"github.com/imaforge/imaforge/signer"
)

// CheckOptions configure Check.
type CheckOptions struct {
	// Strict turns warnings (walk warnings, intentWarnings) into errors,
	// as for Build.
	Strict bool
	// Logf receives the warnings (nil: dropped).
	Logf func(format string, args ...any)
	// Now is the time certificates must be valid at (nil: time.Now).
	Now func() time.Time
	// OpenKeys also opens every key's private key as the build would (its
	// passphrase or PIN from KeyOptions) and checks that it matches the
	// key's certificate, then closes it again.
	OpenKeys bool
	// KeyOptions gives a key's passphrase and warning sink when OpenKeys
	// is set (nil: DefaultKeyOptions with Logf).
	KeyOptions func(*manifest.Key) *signer.KeyOptions
}

// Check runs every check of a build of m that reads no file content: the
// walk of the sources, entries and overrides; the rendering and lint of
// the policy fragments; the keys' certificates (and, with OpenKeys, their
// private keys; without it no passphrase or PIN is needed); the trust store, chains, dates,
// revocation and scopes of the keys that sign; and the warnings Build and
// MakePlan print (intentWarnings). It returns every error found, joined,
// each at its manifest position, not the first one only.
func Check(ctx context.Context, m *manifest.Manifest, opts CheckOptions) error {
	logf := opts.Logf
	if logf == nil {
		logf = func(string, ...any) {}
	}
	h, err := imasig.ParseHash(string(m.Hash))
	if err != nil {
		return m.Errorf(m.Pos, err, "hash %q", m.Hash)
	}
	var errs []error
	certs := map[string]Key{}
	for _, name := range m.KeyNames() {
		cert, err := keyCert(m, m.Keys[name])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		certs[name] = &precomputed{name: name, cert: cert, hash: h}
		if opts.OpenKeys {
			errs = append(errs, opts.openKey(m, m.Keys[name])...)
		}
	}
	ko := &Options{Now: opts.Now, Logf: logf}
	_, tree, err := walkManifest(ctx, m, opts.Strict, 0)
	if err != nil {
		// Without the tree, the keys' chains are still checked.
		errs = append(errs, err)
		if err := ko.checkKeys(m, certs, nil); err != nil {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	}
	defer tree.Close()
	for _, w := range tree.Warnings {
		logf("warning: %v", w)
	}
	lay, err := layOut(m, tree, logf)
	if err != nil {
		errs = append(errs, err)
		if err := ko.checkKeys(m, certs, nil); err != nil {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	}
	if err := checkIntent(m, lay, opts.Strict, logf); err != nil {
		errs = append(errs, err)
	}
	used := map[string]Key{}
	for name := range lay.used {
		if k, ok := certs[name]; ok {
			used[name] = k
		}
	}
	if k, ok := certs[m.Image.SignatureKey]; ok {
		used[m.Image.SignatureKey] = k
	}
	if err := ko.checkKeys(m, used, lay); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// openKey opens k's private key as Build does (checked against its
// certificate by signer.OpenSigner) and closes it; its error, if any.
func (opts CheckOptions) openKey(m *manifest.Manifest, k *manifest.Key) []error {
	var ko *signer.KeyOptions
	if opts.KeyOptions != nil {
		ko = opts.KeyOptions(k)
	} else {
		ko = DefaultKeyOptions(k, opts.Logf)
	}
	s, err := openKey(m, k, ko, opts.Strict)
	if err != nil {
		return []error{err}
	}
	closeKey(s)
	return nil
}
