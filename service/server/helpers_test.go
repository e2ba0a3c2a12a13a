package server

import (
	"context"
	"crypto/x509"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/imaforge/imaforge/internal/testpki"
	"github.com/imaforge/imaforge/internal/testservice"
	"github.com/imaforge/imaforge/pki"
)

// fixture is a testservice.Fixture with file-token keys: an unscoped
// manufacturer IMA key and a tenant IMA key scoped to /opt/tenant/**.
type fixture struct {
	*testservice.Fixture
	mfr    *pki.Issued
	tenant *pki.Issued
	owner  *x509.Certificate
}

const tenantScope = "/opt/tenant/**"

func newFixture(t testing.TB, servers int) *fixture {
	t.Helper()
	h := testpki.New(t, "Test Root", "Test Owner")
	f := &fixture{owner: h.Owner.Cert}
	f.mfr = testpki.Issue(t, pki.Request{Role: pki.RoleIMA, Name: "mfr-ima", KeyType: pki.RSA2048}, h.OwnerIssuer(), pki.Options{})
	sc, err := pki.NewScope([]string{tenantScope})
	if err != nil {
		t.Fatal(err)
	}
	f.tenant = testpki.Issue(t, pki.Request{Role: pki.RoleIMA, Name: "tenant-ima", KeyType: pki.RSA2048, Scope: sc}, h.OwnerIssuer(), pki.Options{})
	dir := t.TempDir()
	testpki.Write(t, dir, "mfr", f.mfr, false)
	testpki.Write(t, dir, "tenant", f.tenant, false)
	f.Fixture = testservice.New(t, servers, fmt.Sprintf(`tokens:
  file:
    type: file
keys:
  mfr:
    token: file
    keyfile: %[1]s/mfr.key
    x509certificate: %[1]s/mfr.pem
    roles: [mfr]
  tenant:
    token: file
    keyfile: %[1]s/tenant.key
    x509certificate: %[1]s/tenant.pem
    roles: [tenant, mfr]
`, dir))
	return f
}

// serveInProcess runs server i of f in this process until the test ends.
func serveInProcess(t testing.TB, f *fixture, i int) {
	t.Helper()
	t.Cleanup(startInProcess(t, f, i))
}

// startInProcess starts server i of f in this process and returns the
// function that stops it (once).
func startInProcess(t testing.TB, f *fixture, i int) func() {
	t.Helper()
	cfg, err := LoadServerConfig(f.ServerConfig(i))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, cfg, false) }()
	testservice.WaitHealthy(t, f.URL(i), 30*time.Second)
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("serve: %v", err)
			}
		})
	}
}
