package server

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"sync"
	"syscall"
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

// serveEnv names the configuration file a re-executed test binary serves
// (TestMain): tests run each relic server in a child process, because relic
// v8.2.0's health-check goroutine never returns once Server.Close has run
// (server/view_health.go: the `break` on the closed channel leaves only the
// select, so the loop spins), and a server stopped inside the test binary
// kept a core busy until the binary exited: 93% of this package's CPU.
const serveEnv = "IMAFORGE_TEST_SERVE_CONFIG"

func TestMain(m *testing.M) {
	if path := os.Getenv(serveEnv); path != "" {
		os.Exit(serveChild(path))
	}
	os.Exit(m.Run())
}

// serveChild is a child server's main: it serves the configuration at path
// until SIGTERM.
func serveChild(path string) int {
	cfg, err := LoadServerConfig(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	if err := Serve(ctx, cfg, false); err != nil {
		fmt.Fprintln(os.Stderr, "serve:", err)
		return 1
	}
	return 0
}

// serve runs server i of f until the test ends.
func serve(t testing.TB, f *fixture, i int) {
	t.Helper()
	t.Cleanup(startServer(t, f, i))
}

// startServer starts server i of f in a child process (serveEnv) and returns
// the function that stops it (once) and fails the test if it did not exit
// cleanly.
func startServer(t testing.TB, f *fixture, i int) func() {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), serveEnv+"="+f.ServerConfig(i))
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			if err := <-exited; err != nil {
				t.Errorf("server %d: %v\n%s", i, err, out.String())
			}
		})
	}
	t.Cleanup(stop) // also when WaitHealthy fails
	testservice.WaitHealthy(t, f.URL(i), 30*time.Second)
	return stop
}

// serveInProcess runs server i of f in this process, for the tests that
// look at the server's state (TestFileKeyLibcrypto) and BenchmarkSign, whose
// CPU figure counts client and server together. The server stays up until
// the binary exits: stopping it would leave relic's health-check goroutine
// spinning (see serveEnv) for the rest of the binary's tests.
func serveInProcess(t testing.TB, f *fixture, i int) {
	t.Helper()
	cfg, err := LoadServerConfig(f.ServerConfig(i))
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		if err := Serve(context.Background(), cfg, false); err != nil {
			fmt.Fprintf(os.Stderr, "in-process server %s: %v\n", f.URL(i), err)
		}
	}()
	testservice.WaitHealthy(t, f.URL(i), 30*time.Second)
}
