package cms

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/imaforge/imaforge/internal/testenv"
	"github.com/imaforge/imaforge/internal/testpki"
	"github.com/imaforge/imaforge/pki"
)

// chain is a root, an owner CA and an IMA key of type typ, written as PEM
// files in dir (root.pem, owner.pem).
type chain struct {
	root, owner, leaf *pki.Issued
}

func newChain(t *testing.T, dir string, typ pki.KeyType) *chain {
	t.Helper()
	h := testpki.New(t, "Test Root", "Test Owner")
	leaf := testpki.Issue(t, pki.Request{Role: pki.RoleIMA, Name: "Image signer", KeyType: typ}, h.OwnerIssuer(), pki.Options{})
	must(t, os.WriteFile(filepath.Join(dir, "root.pem"), pki.EncodeCertificatePEM(h.Root.Cert), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "owner.pem"), pki.EncodeCertificatePEM(h.Owner.Cert), 0o644))
	return &chain{h.Root, h.Owner, leaf}
}

func (c *chain) certs() []*x509.Certificate { return []*x509.Certificate{c.leaf.Cert, c.owner.Cert} }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// openssl runs openssl cms -verify with args; IMA certificates carry
// extendedKeyUsage codeSigning, which OpenSSL's default S/MIME purpose
// refuses, so the purpose is "any" (RAUC: check-purpose=codesign).
func opensslVerify(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bin := testenv.NeedTool(t, "openssl")
	out, err := exec.Command(bin, append([]string{"cms", "-verify", "-binary", "-inform", "DER", "-purpose", "any"}, args...)...).CombinedOutput()
	return string(out), err
}

// TestDetachedOpenSSL: a detached signature over a file verifies with
// `openssl cms -verify -content FILE -CAfile root.pem` (the owner CA coming
// from the message, and again given with -certfile), for RSA and ECDSA keys;
// after one byte of the file is flipped both openssl and VerifyDetached
// refuse it. The same inputs give the same bytes.
func TestDetachedOpenSSL(t *testing.T) {
	for _, typ := range []pki.KeyType{"rsa2048", "p256"} {
		t.Run(string(typ), func(t *testing.T) {
			dir := t.TempDir()
			c := newChain(t, dir, typ)
			content := bytes.Repeat([]byte("image bytes\x00\x01"), 5000)
			data := filepath.Join(dir, "image")
			must(t, os.WriteFile(data, content, 0o644))
			d := sha256.Sum256(content)
			sig, err := SignDetached(d[:], c.leaf.Key, c.certs())
			must(t, err)
			again, err := SignDetached(d[:], c.leaf.Key, c.certs())
			must(t, err)
			if !bytes.Equal(sig, again) {
				t.Error("two signatures of the same digest differ")
			}
			sigPath := filepath.Join(dir, "image.cms")
			must(t, os.WriteFile(sigPath, sig, 0o644))

			for _, extra := range [][]string{nil, {"-certfile", filepath.Join(dir, "owner.pem")}} {
				args := append([]string{"-in", sigPath, "-content", data, "-CAfile", filepath.Join(dir, "root.pem"), "-out", os.DevNull}, extra...)
				if out, err := opensslVerify(t, args...); err != nil {
					t.Fatalf("openssl refused: %v\n%s", err, out)
				}
			}
			s, err := VerifyDetached(sig, d[:])
			must(t, err)
			if !s.Signer.Equal(c.leaf.Cert) || len(s.Certificates) != 2 || s.SignedAttributes {
				t.Errorf("signature %+v", s)
			}

			content[12345] ^= 0x80
			must(t, os.WriteFile(data, content, 0o644))
			if out, err := opensslVerify(t, "-in", sigPath, "-content", data, "-CAfile", filepath.Join(dir, "root.pem"), "-out", os.DevNull); err == nil {
				t.Fatalf("openssl accepted a flipped byte:\n%s", out)
			}
			d2 := sha256.Sum256(content)
			if _, err := VerifyDetached(sig, d2[:]); !errors.Is(err, ErrInvalid) {
				t.Fatalf("VerifyDetached after flip: %v, want ErrInvalid", err)
			}
		})
	}
}

// TestOpenSSLMadeVerifies: signatures made by `openssl cms -sign`, with
// signed attributes (signing time) and without (-noattr), verify here, and
// an attached one returns its content.
func TestOpenSSLMadeVerifies(t *testing.T) {
	bin := testenv.NeedTool(t, "openssl")
	dir := t.TempDir()
	c := newChain(t, dir, "rsa2048")
	keyPEM, err := pki.MarshalPrivateKey(c.leaf.Key, pki.KeyFileOptions{})
	must(t, err)
	key := filepath.Join(dir, "leaf.key")
	must(t, os.WriteFile(key, keyPEM, 0o600))
	leaf := filepath.Join(dir, "leaf.pem")
	must(t, os.WriteFile(leaf, pki.EncodeCertificatePEM(c.leaf.Cert), 0o644))
	content := []byte("[update]\ncompatible=x\n")
	in := filepath.Join(dir, "content")
	must(t, os.WriteFile(in, content, 0o644))
	d := sha256.Sum256(content)
	for _, tc := range []struct {
		name  string
		flags []string
	}{{"attrs", nil}, {"noattr", []string{"-noattr"}}} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, tc.name+".cms")
			args := append([]string{"cms", "-sign", "-binary", "-md", "sha256", "-in", in, "-signer", leaf, "-inkey", key,
				"-certfile", filepath.Join(dir, "owner.pem"), "-outform", "DER", "-out", out}, tc.flags...)
			if b, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
				t.Fatalf("openssl cms -sign: %v\n%s", err, b)
			}
			der, err := os.ReadFile(out)
			must(t, err)
			s, err := VerifyDetached(der, d[:])
			must(t, err)
			if s.SignedAttributes != (tc.name == "attrs") {
				t.Errorf("SignedAttributes = %v", s.SignedAttributes)
			}
			wrong := sha256.Sum256([]byte("other"))
			if _, err := VerifyDetached(der, wrong[:]); !errors.Is(err, ErrInvalid) {
				t.Errorf("other content: %v, want ErrInvalid", err)
			}
		})
	}
}

// TestAttached: SignAttached's message gives its content back through
// `openssl cms -verify` and VerifyAttached; a changed content byte inside
// the message is refused.
func TestAttached(t *testing.T) {
	dir := t.TempDir()
	c := newChain(t, dir, "rsa2048")
	content := []byte("[update]\ncompatible=Test\n\n[bundle]\nformat=verity\n")
	der, err := SignAttached(content, c.leaf.Key, c.certs())
	must(t, err)
	s, err := VerifyAttached(der)
	must(t, err)
	if !bytes.Equal(s.Content, content) {
		t.Fatalf("content %q", s.Content)
	}
	p := filepath.Join(dir, "m.cms")
	must(t, os.WriteFile(p, der, 0o644))
	outFile := filepath.Join(dir, "out")
	if out, err := opensslVerify(t, "-in", p, "-CAfile", filepath.Join(dir, "root.pem"), "-out", outFile); err != nil {
		t.Fatalf("openssl: %v\n%s", err, out)
	}
	got, err := os.ReadFile(outFile)
	must(t, err)
	if !bytes.Equal(got, content) {
		t.Fatalf("openssl extracted %q", got)
	}
	i := bytes.Index(der, []byte("compatible=Test"))
	bad := append([]byte(nil), der...)
	bad[i+11] = 'B'
	if _, err := VerifyAttached(bad); !errors.Is(err, ErrInvalid) {
		t.Fatalf("tampered content: %v, want ErrInvalid", err)
	}
}

// TestMangleSignature: changing any byte of the signature value makes
// verification fail.
func TestMangleSignature(t *testing.T) {
	c := newChain(t, t.TempDir(), "rsa2048")
	d := sha256.Sum256([]byte("x"))
	der, err := SignDetached(d[:], c.leaf.Key, c.certs())
	must(t, err)
	n := c.leaf.Cert.PublicKey.(interface{ Size() int }).Size()
	for i := len(der) - n; i < len(der); i++ {
		bad := append([]byte(nil), der...)
		bad[i] ^= 0x01
		if _, err := VerifyDetached(bad, d[:]); err == nil {
			t.Fatalf("byte %d of the signature changed, still verifies", i)
		}
	}
	for i := 0; i < len(der); i += 7 { // anywhere: never a panic
		bad := append([]byte(nil), der...)
		bad[i] ^= 0xff
		VerifyDetached(bad, d[:])
	}
}

var _ crypto.Signer = rfc6979{}

func FuzzVerify(f *testing.F) {
	f.Add([]byte{0x30, 0x03, 0x06, 0x01, 0x00})
	d := sha256.Sum256(nil)
	f.Fuzz(func(t *testing.T, der []byte) {
		VerifyDetached(der, d[:])
		VerifyAttached(der)
	})
}
