package attest

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"testing"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/internal/testpki"
	"github.com/imaforge/imaforge/pki"
	"github.com/imaforge/imaforge/signer"
)

// newEntry makes a measurement of template (ima-ng, ima-sig, ima-buf,
// ima-modsig, ima) as the kernel would, with its sha1 template hash.
func newEntry(template, name string, digest []byte, extra []byte) *Entry {
	e := &Entry{PCR: IMAPCR, Template: template, Known: true, Offset: -1}
	algo := "sha256"
	if len(digest) == 20 {
		algo = "sha1"
	}
	dng := append([]byte(algo+":\x00"), digest...)
	nng := append([]byte(name), 0)
	switch template {
	case "ima":
		e.Fields = [][]byte{digest, []byte(name)}
	case "ima-ng":
		e.Fields = [][]byte{dng, nng}
	case "ima-sig":
		e.Fields = [][]byte{dng, nng, extra}
	case "ima-buf":
		e.Fields = [][]byte{dng, nng, extra}
	case "ima-modsig":
		e.Fields = [][]byte{dng, nng, {}, {}, {}}
	default:
		panic(template)
	}
	if err := e.interpret(templates[template]); err != nil {
		panic(err)
	}
	e.TemplateHash = e.ComputeTemplateHash(crypto.SHA1)
	return e
}

// encodeBinary encodes entries as binary_runtime_measurements.
func encodeBinary(t testing.TB, es []*Entry) []byte {
	t.Helper()
	var b []byte
	for _, e := range es {
		var err error
		if b, err = e.AppendBinary(b); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

// encodeASCII encodes entries as ascii_runtime_measurements.
func encodeASCII(t testing.TB, es []*Entry) []byte {
	t.Helper()
	var b []byte
	for _, e := range es {
		var err error
		if b, err = e.AppendASCII(b); err != nil {
			t.Fatal(err)
		}
		b = append(b, '\n')
	}
	return b
}

// world is a trust store (root -> owner CA -> tenant limited to /app/**,
// and an unrestricted IMA key) with signers for both keys.
type world struct {
	h              *testpki.Hierarchy
	trust          *pki.TrustStore
	tenant, device *signer.Signer
	tenantCert     *pki.Issued
	deviceCert     *pki.Issued
}

func newWorld(t testing.TB) *world {
	t.Helper()
	h := testpki.New(t, "Attest Root", "Attest Owner")
	scope, err := pki.NewScope([]string{"/app/**"})
	if err != nil {
		t.Fatal(err)
	}
	ten := testpki.Issue(t, pki.Request{Role: pki.RoleIMA, Name: "Tenant", KeyType: pki.P256, Scope: scope}, h.OwnerIssuer(), pki.Options{})
	dev := testpki.Issue(t, pki.Request{Role: pki.RoleIMA, Name: "Device", KeyType: pki.P256}, h.OwnerIssuer(), pki.Options{})
	ts, err := pki.NewTrustStore([]*x509.Certificate{h.Root.Cert}, []*x509.Certificate{h.Owner.Cert, ten.Cert, dev.Cert}, h.CRLs(t)) // every CA's CRL: revocation known
	if err != nil {
		t.Fatal(err)
	}
	w := &world{h: h, trust: ts, tenantCert: ten, deviceCert: dev}
	if w.tenant, err = signer.New(ten.Key, ten.Cert); err != nil {
		t.Fatal(err)
	}
	if w.device, err = signer.New(dev.Key, dev.Cert); err != nil {
		t.Fatal(err)
	}
	return w
}

// signed makes an ima-sig entry for content signed by s (nil: unsigned).
func signed(t testing.TB, s *signer.Signer, name string, content []byte) *Entry {
	t.Helper()
	d := sha256.Sum256(content)
	var sig []byte
	if s != nil {
		var err error
		if sig, err = s.SignDigest(imasig.SHA256, d[:]); err != nil {
			t.Fatal(err)
		}
	}
	return newEntry("ima-sig", name, d[:], sig)
}

func mustSigner(t testing.TB, iss *pki.Issued) *signer.Signer {
	t.Helper()
	s, err := signer.New(iss.Key, iss.Cert)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
