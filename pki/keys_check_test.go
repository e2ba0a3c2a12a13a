package pki

import (
	"crypto/x509"
	"errors"
	"strings"
	"testing"
)

func TestCheckKeys(t *testing.T) {
	h := newHierarchy(t, P256)
	oi, ri := h.ownerIssuer(), h.rootIssuer()
	mfr := mustIssue(t, Request{Role: RoleIMA, Name: "Base", KeyType: P256}, &ri, at(t0))
	expired := mustIssue(t, Request{Role: RoleIMA, Name: "Old tenant", KeyType: P256, Lifetime: 10 * Day}, &oi, at(t0.Add(-30*Day)))
	renewal := mustIssue(t, Request{Role: RoleIMA, Name: "Tenant ACME renewed", PublicKey: h.ima.Key.Public()}, &oi, at(t0))
	ts, err := NewTrustStore([]*x509.Certificate{h.root.Cert}, []*x509.Certificate{h.owner.Cert}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts.SetRevocation(RevocationBestEffort) // not about revocation (TestRevocationUnknown)
	now := t0.Add(checkDelay)
	good := []SigningKey{
		{Name: "manufacturer", Cert: mfr.Cert, Public: mfr.Key.Public()},
		{Name: "tenant-acme", Cert: h.ima.Cert, Public: h.ima.Key.Public()},
	}
	chains, err := ts.CheckKeys(good, now)
	if err != nil || len(chains) != 2 || chains["tenant-acme"].Allows("/usr/bin/x") || !chains["manufacturer"].Allows("/usr/bin/x") {
		t.Fatalf("good keys: %v %v", chains, err)
	}
	bad := append(good,
		SigningKey{Name: "old", Cert: expired.Cert, Public: expired.Key.Public()},
		SigningKey{Name: "swapped", Cert: mfr.Cert, Public: h.ima.Key.Public()},
	)
	_, err = ts.CheckKeys(bad, now)
	for _, want := range []struct {
		name string
		err  error
	}{{"old", ErrExpired}, {"swapped", ErrKeyMismatch}} {
		found := false
		for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
			var ke *KeyError
			if errors.As(e, &ke) && ke.Name == want.name {
				found = errors.Is(e, want.err) && strings.Contains(e.Error(), `key "`+want.name+`"`)
			}
		}
		if !found {
			t.Errorf("no %v for key %q in:\n%v", want.err, want.name, err)
		}
	}
	if strings.Contains(err.Error(), `key "manufacturer"`) {
		t.Errorf("a good key reported:\n%v", err)
	}
	// A renewal of one key beside its old certificate (a rotation
	// overlap) is one key, not two keys with one id.
	if _, err := ts.CheckKeys(append(good, SigningKey{Name: "renewed", Cert: renewal.Cert}), now); err != nil {
		t.Errorf("renewal beside the old certificate: %v", err)
	}
}
