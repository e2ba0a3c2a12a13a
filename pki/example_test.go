package pki_test

import (
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/imaforge/imaforge/pki"
)

func ExampleScope_Allows() {
	s, _ := pki.NewScope([]string{"/opt/acme/**", "/etc/acme/*.conf"})
	for _, p := range []string{"/opt/acme/bin/app", "/etc/acme/app.conf", "/usr/bin/ls", "/opt/acme/../../usr/bin/ls"} {
		fmt.Println(p, s.Allows(p))
	}
	// Output:
	// /opt/acme/bin/app true
	// /etc/acme/app.conf true
	// /usr/bin/ls false
	// /opt/acme/../../usr/bin/ls false
}

func ExampleTrustStore_CheckSigner() {
	issued := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := pki.Options{Now: func() time.Time { return issued }}

	root, _ := pki.NewRoot(pki.Request{Name: "ACME Manufacturing", KeyType: pki.P256}, clock)
	owner, _ := pki.Issue(pki.Request{Role: pki.RoleOwnerCA, Name: "Owner One", KeyType: pki.P256},
		pki.Issuer{Cert: root.Cert, Key: root.Key}, clock)
	scope, _ := pki.NewScope([]string{"/opt/acme/**"})
	tenant, _ := pki.Issue(pki.Request{Role: pki.RoleIMA, Name: "Tenant ACME", KeyType: pki.P256, Scope: scope},
		pki.Issuer{Cert: owner.Cert, Key: owner.Key}, clock)

	// Every CA of a chain needs a current CRL (or the store's revocation
	// mode pki.RevocationBestEffort): unknown revocation is not "not revoked".
	rootCRL, _, _ := pki.UpdateCRL(nil, pki.Issuer{Cert: root.Cert, Key: root.Key}, pki.CRLUpdate{}, clock)
	ownerCRL, _, _ := pki.UpdateCRL(nil, pki.Issuer{Cert: owner.Cert, Key: owner.Key}, pki.CRLUpdate{}, clock)
	ts, _ := pki.NewTrustStore([]*x509.Certificate{root.Cert}, []*x509.Certificate{owner.Cert}, []*x509.RevocationList{rootCRL, ownerCRL})

	chain, err := ts.CheckSigner(tenant.Cert, tenant.Key.Public(), issued.Add(24*time.Hour))
	fmt.Println(len(chain.Certs), err)
	fmt.Println(chain.CheckPath("/usr/bin/ls"))

	_, err = ts.CheckSigner(tenant.Cert, tenant.Key.Public(), issued.Add(400*24*time.Hour))
	fmt.Println(errors.Is(err, pki.ErrExpired), err)
	// Output:
	// 3 <nil>
	// certificate "CN=Tenant ACME": may not sign /usr/bin/ls: its scope is /opt/acme/**
	// true certificate "CN=Tenant ACME": expired on 2031-01-01T00:00:00Z (now 2031-02-05T00:00:00Z)
}
