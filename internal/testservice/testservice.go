// Package testservice sets up signing service tests (package service,
// imaforge serve): a TLS server certificate for 127.0.0.1, client
// certificates of a manufacturer CI, a tenant CI and an unknown client,
// relic server configurations for n servers on free loopback ports (each
// listing all as siblings) and the relic client configurations.
package testservice

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Fixture is the certificates and configurations of a service test in Dir.
type Fixture struct {
	Dir      string
	Ports    []int
	MfrFP    string // fingerprint of the manufacturer CI's client certificate
	TenantFP string // of the tenant CI's
	// Keys is the tokens and keys sections of the server configurations.
	Keys string
}

// New writes a fixture for n servers whose tokens and keys sections are
// keys (YAML; key "mfr" should have role mfr, key "tenant" roles tenant
// and mfr). Client configurations: mfr, tenant, stranger.
func New(t testing.TB, n int, keys string) *Fixture {
	t.Helper()
	f := &Fixture{Dir: t.TempDir(), Keys: keys}
	selfSigned(t, f.Dir, "tls", true)
	f.MfrFP = selfSigned(t, f.Dir, "mfr-client", false)
	f.TenantFP = selfSigned(t, f.Dir, "tenant-client", false)
	selfSigned(t, f.Dir, "stranger-client", false)
	for range n {
		f.Ports = append(f.Ports, freePort(t))
	}
	for i := range n {
		f.writeServerConfig(t, i)
	}
	for _, c := range []string{"mfr", "tenant", "stranger"} {
		f.writeClientConfig(t, c)
	}
	return f
}

// Path returns name in Dir.
func (f *Fixture) Path(name string) string { return filepath.Join(f.Dir, name) }

// URL returns the URL of server i.
func (f *Fixture) URL(i int) string { return fmt.Sprintf("https://127.0.0.1:%d", f.Ports[i]) }

// ServerConfig returns the configuration file of server i; its log is
// server<i>.log, its audit audit<i>.jsonl.
func (f *Fixture) ServerConfig(i int) string { return f.Path(fmt.Sprintf("server%d.yaml", i)) }

// ClientConfig returns the client configuration of who (mfr, tenant,
// stranger), whose url lists every server.
func (f *Fixture) ClientConfig(who string) string { return f.Path(who + "-client.yaml") }

func (f *Fixture) writeServerConfig(t testing.TB, i int) {
	var sib []string
	for j := range f.Ports {
		sib = append(sib, f.URL(j))
	}
	cfg := f.Keys + fmt.Sprintf(`server:
  listen: 127.0.0.1:%[2]d
  keyfile: %[1]s/tls.key
  certfile: %[1]s/tls.pem
  logfile: %[1]s/server%[3]d.log
  tokencheckinterval: 2
  siblings: [%[4]s]
clients:
  %[5]s:
    nickname: mfr-ci
    roles: [mfr]
  %[6]s:
    nickname: tenant-ci
    roles: [tenant]
auditfile: %[1]s/audit%[3]d.jsonl
`, f.Dir, f.Ports[i], i, strings.Join(sib, ", "), f.MfrFP, f.TenantFP)
	WriteFile(t, f.ServerConfig(i), cfg)
}

func (f *Fixture) writeClientConfig(t testing.TB, who string) {
	var urls []string
	for i := range f.Ports {
		urls = append(urls, f.URL(i))
	}
	cfg := fmt.Sprintf(`remote:
  url: %[1]s
  certfile: %[2]s/%[3]s-client.pem
  keyfile: %[2]s/%[3]s-client.key
  cacert: %[2]s/tls.pem
  retries: 3
`, strings.Join(urls, ", "), f.Dir, who)
	WriteFile(t, f.ClientConfig(who), cfg)
}

// WriteFile writes s to p (mode 0600), failing t on error.
func WriteFile(t testing.TB, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// selfSigned writes dir/name.key and name.pem, a P-256 self-signed
// certificate (for 127.0.0.1 when server), and returns the hex SHA-256 of
// its public key: relic's client fingerprint.
func selfSigned(t testing.TB, dir, name string, server bool) string {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	WriteFile(t, filepath.Join(dir, name+".key"), string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})))
	WriteFile(t, filepath.Join(dir, name+".pem"), string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
	c, _ := x509.ParseCertificate(der)
	fp := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(fp[:])
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// WaitHealthy waits until the server at url answers /health.
func WaitHealthy(t testing.TB, url string, timeout time.Duration) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		resp, err := c.Get(url + "/health")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("server %s not healthy after %v", url, timeout)
}
