package pki

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// SigningKey is one key a build signs with, as the manifest's keys: section
// names it.
type SigningKey struct {
	Name   string            // the manifest's key name, used in messages
	Cert   *x509.Certificate // its certificate
	Public crypto.PublicKey  // the public half of its private key (nil: not compared)
}

// KeyError is a failed check of a named signing key; it wraps the
// *CertError, so errors.Is finds the sentinel (ErrExpired, ...).
type KeyError struct {
	Name string
	Err  error
}

func (e *KeyError) Error() string { return fmt.Sprintf("key %q: %v", e.Name, e.Err) }
func (e *KeyError) Unwrap() error { return e.Err }

// CheckKeys checks every signing key of a build against ts at now (the
// real clock): CheckSigner for each, and no two keys or store certificates
// sharing an IMA key id. ts is not modified. It returns each key's chain by
// name (use Chain.CheckPath for every file a key signs), or all failures
// joined (errors.Join of *KeyError).
func (ts *TrustStore) CheckKeys(keys []SigningKey, now time.Time) (map[string]*Chain, error) {
	work := ts.clone()
	var errs []error
	for _, k := range keys {
		if err := work.Add(k.Cert); err != nil {
			errs = append(errs, &KeyError{Name: k.Name, Err: err})
		}
	}
	chains := map[string]*Chain{}
	for _, k := range keys {
		ch, err := work.CheckSigner(k.Cert, k.Public, now)
		if err != nil {
			if !slices.ContainsFunc(errs, func(e error) bool { return e.(*KeyError).Name == k.Name }) {
				errs = append(errs, &KeyError{Name: k.Name, Err: err})
			}
			continue
		}
		chains[k.Name] = ch
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return chains, nil
}

// clone copies the store's indexes (certificates and CRLs are shared).
func (ts *TrustStore) clone() *TrustStore {
	c := &TrustStore{
		roots:         slices.Clone(ts.roots),
		intermediates: slices.Clone(ts.intermediates),
		crls:          maps.Clone(ts.crls),
		byKeyID:       maps.Clone(ts.byKeyID),
		bestEffort:    ts.bestEffort,
		inventories:   slices.Clone(ts.inventories),
	}
	return c
}
