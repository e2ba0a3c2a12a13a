package rauc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imaforge/imaforge/integrity"
	"github.com/imaforge/imaforge/integrity/verity"
	"github.com/imaforge/imaforge/internal/testenv"
	"github.com/imaforge/imaforge/internal/testpki"
	"github.com/imaforge/imaforge/pki"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// ca is a root and an IMA signing key under an owner CA, the root written
// to dir/NAME.pem.
type ca struct {
	root, owner, leaf *pki.Issued
	pem               string
	crls              []*x509.RevocationList
}

func newCA(t *testing.T, dir, name string) *ca {
	t.Helper()
	h := testpki.New(t, name+" Root", name+" Owner")
	leaf := testpki.Issue(t, pki.Request{Role: pki.RoleIMA, Name: name + " Bundle Signer", KeyType: "rsa2048"}, h.OwnerIssuer(), pki.Options{})
	c := &ca{root: h.Root, owner: h.Owner, leaf: leaf, pem: filepath.Join(dir, name+".pem"), crls: h.CRLs(t)}
	must(t, os.WriteFile(c.pem, pki.EncodeCertificatePEM(h.Root.Cert), 0o644))
	return c
}

func (c *ca) signer() *integrity.Signer {
	return &integrity.Signer{Key: c.leaf.Key, Certs: []*x509.Certificate{c.leaf.Cert, c.owner.Cert}}
}

func (c *ca) trust(t *testing.T) *pki.TrustStore {
	ts, err := pki.NewTrustStore([]*x509.Certificate{c.root.Cert}, []*x509.Certificate{c.owner.Cert}, c.crls)
	must(t, err)
	return ts
}

func writeBundle(t *testing.T, path string, image []byte, s *integrity.Signer) *Bundle {
	t.Helper()
	f, err := os.Create(path)
	must(t, err)
	defer f.Close()
	d := sha256.Sum256(image)
	b, err := Write(context.Background(), f, Options{
		Manifest: Manifest{Compatible: "imaforge test device", Version: "1.2.3", Slot: "rootfs", Filename: "rootfs.img"},
		Image:    bytes.NewReader(image), ImageSize: int64(len(image)), ImageSHA256: d[:],
		Signer: s, ModTime: 1700000000,
	})
	must(t, err)
	return b
}

// raucConf is a system.conf for `rauc info`: IMA signing certificates carry
// extendedKeyUsage codeSigning, which OpenSSL's default S/MIME purpose
// refuses; RAUC's codesign purpose (check-purpose=codesign) is the one
// meant for update signing keys.
const raucConf = `[system]
compatible=imaforge test device
bootloader=noop

[keyring]
path=%s
check-purpose=codesign
`

func raucInfo(t *testing.T, dir, keyring, bundle string) (string, error) {
	t.Helper()
	bin := testenv.NeedTool(t, "rauc")
	conf := filepath.Join(dir, "system.conf")
	must(t, os.WriteFile(conf, []byte(strings.Replace(raucConf, "%s", keyring, 1)), 0o644))
	out, err := exec.Command(bin, "--conf", conf, "info", "--keyring", keyring, bundle).CombinedOutput()
	return string(out), err
}

// TestBundleRAUC: `rauc info --keyring CA.pem` accepts the bundle and shows
// its manifest; a bundle signed by a key of another CA is refused, and so
// is ours with the other CA as keyring; Verify agrees, checks the payload
// blocks and refuses a changed payload byte; the same inputs give the same
// bundle bytes.
func TestBundleRAUC(t *testing.T) {
	dir := t.TempDir()
	good, evil := newCA(t, dir, "good"), newCA(t, dir, "evil")
	image := bytes.Repeat([]byte("squashfs image stand-in "), 20000)
	path := filepath.Join(dir, "good.raucb")
	b := writeBundle(t, path, image, good.signer())
	st, err := os.Stat(path)
	must(t, err)
	if st.Size() != b.PayloadSize+b.HashSize+b.SignatureSize+8 || b.PayloadSize%4096 != 0 {
		t.Fatalf("bundle %+v, %d bytes", b, st.Size())
	}

	out, err := raucInfo(t, dir, good.pem, path)
	if err != nil {
		t.Fatalf("rauc info refused the bundle: %v\n%s", err, out)
	}
	t.Logf("rauc info:\n%s", out)
	for _, want := range []string{"imaforge test device", "1.2.3", "rootfs.img", "verity", b.Manifest.VerityHash} {
		if !strings.Contains(out, want) {
			t.Errorf("rauc info output lacks %q:\n%s", want, out)
		}
	}

	t.Run("extract", func(t *testing.T) {
		// rauc extract checks every payload block against the hash tree,
		// then unpacks imaforge's SquashFS with unsquashfs.
		testenv.NeedRoot(t) // rauc needs exclusive access (it chowns the bundle)
		x := filepath.Join(dir, "x")
		out, err := exec.Command(testenv.NeedTool(t, "rauc"), "--conf", filepath.Join(dir, "system.conf"), "extract", "--keyring", good.pem, path, x).CombinedOutput()
		if err != nil {
			t.Fatalf("rauc extract: %v\n%s", err, out)
		}
		got, err := os.ReadFile(filepath.Join(x, "rootfs.img"))
		must(t, err)
		if !bytes.Equal(got, image) {
			t.Error("rauc extract gave another image")
		}
	})

	evilPath := filepath.Join(dir, "evil.raucb")
	writeBundle(t, evilPath, image, evil.signer())
	out, err = raucInfo(t, dir, good.pem, evilPath)
	if err == nil {
		t.Fatalf("rauc info accepted a bundle signed by an untrusted key:\n%s", out)
	}
	t.Logf("rauc info, untrusted signer:\n%s", out)
	if out, err := raucInfo(t, dir, evil.pem, path); err == nil {
		t.Fatalf("rauc info accepted the bundle with another CA as keyring:\n%s", out)
	}

	f, err := os.Open(path)
	must(t, err)
	defer f.Close()
	vb, err := Verify(f, st.Size(), good.trust(t), time.Now())
	must(t, err)
	if *vb.Manifest != *b.Manifest {
		t.Errorf("verified manifest %+v, written %+v", vb.Manifest, b.Manifest)
	}
	if _, err := Verify(f, st.Size(), evil.trust(t), time.Now()); !errors.Is(err, integrity.ErrUntrusted) {
		t.Errorf("Verify with the other CA: %v, want ErrUntrusted", err)
	}

	again := filepath.Join(dir, "again.raucb")
	writeBundle(t, again, image, good.signer())
	b1, _ := os.ReadFile(path)
	b2, _ := os.ReadFile(again)
	if !bytes.Equal(b1, b2) {
		t.Error("the same inputs gave different bundles")
	}

	b1[b.PayloadSize/2] ^= 1
	if _, err := Verify(bytes.NewReader(b1), int64(len(b1)), good.trust(t), time.Now()); !errors.Is(err, verity.ErrMismatch) {
		t.Errorf("Verify with a changed payload byte: %v, want ErrMismatch", err)
	}
}

func TestManifestRoundTrip(t *testing.T) {
	m := Manifest{Compatible: "c", Version: "v", Build: "b", VerityHash: "aa", VeritySalt: "bb", VeritySize: 4096,
		Slot: "rootfs", Filename: "rootfs.img", Size: 5, SHA256: "cc"}
	b, err := m.Marshal(true)
	must(t, err)
	got, err := ParseManifest(b)
	must(t, err)
	if *got != m {
		t.Fatalf("round trip: %+v", got)
	}
	for _, bad := range []Manifest{
		{Compatible: "", Slot: "rootfs", Filename: "x", SHA256: "cc"},
		{Compatible: "a\nb", Slot: "rootfs", Filename: "x", SHA256: "cc"},
		{Compatible: " a", Slot: "rootfs", Filename: "x", SHA256: "cc"},
		{Compatible: "a", Slot: "root fs", Filename: "x", SHA256: "cc"},
		{Compatible: "a", Slot: "rootfs", Filename: "manifest.raucm", SHA256: "cc"},
	} {
		if _, err := bad.Marshal(true); !errors.Is(err, ErrManifest) {
			t.Errorf("%+v: %v, want ErrManifest", bad, err)
		}
	}
}

func FuzzParseManifest(f *testing.F) {
	m := Manifest{Compatible: "c", VerityHash: "aa", VeritySalt: "bb", VeritySize: 4096, Slot: "rootfs", Filename: "f", Size: 1, SHA256: "cc"}
	b, _ := m.Marshal(true)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err != nil {
			return
		}
		out, err := m.Marshal(true)
		if err != nil {
			t.Fatalf("parsed manifest does not marshal: %v", err)
		}
		if _, err := ParseManifest(out); err != nil {
			t.Fatalf("re-encoded manifest does not parse: %v", err)
		}
	})
}

// TestBundleImageChanged: an image whose bytes are not the digest given
// (changed since the build recorded it) fails Write.
func TestBundleImageChanged(t *testing.T) {
	c := newCA(t, t.TempDir(), "c")
	f, err := os.Create(filepath.Join(t.TempDir(), "b.raucb"))
	must(t, err)
	defer f.Close()
	image := bytes.Repeat([]byte("x"), 10000)
	wrong := sha256.Sum256([]byte("another image"))
	_, err = Write(context.Background(), f, Options{
		Manifest: Manifest{Compatible: "c", Slot: "rootfs", Filename: "rootfs.img"},
		Image:    bytes.NewReader(image), ImageSize: int64(len(image)), ImageSHA256: wrong[:], Signer: c.signer(),
	})
	if !errors.Is(err, ErrImageChanged) {
		t.Fatalf("Write: %v, want ErrImageChanged", err)
	}
}

// TestBundleScopedSigner: a bundle signed by an IMA key whose scope does
// not cover the whole image is refused by Verify as out of scope.
func TestBundleScopedSigner(t *testing.T) {
	dir := t.TempDir()
	h := testpki.New(t, "Scoped Root", "Scoped Owner")
	scope, err := pki.NewScope([]string{"/opt/t/**"})
	must(t, err)
	leaf := testpki.Issue(t, pki.Request{Role: pki.RoleIMA, Name: "Tenant", KeyType: "rsa2048", Scope: scope}, h.OwnerIssuer(), pki.Options{})
	path := filepath.Join(dir, "b.raucb")
	writeBundle(t, path, bytes.Repeat([]byte{7}, 8192), &integrity.Signer{Key: leaf.Key, Certs: []*x509.Certificate{leaf.Cert, h.Owner.Cert}})
	f, err := os.Open(path)
	must(t, err)
	defer f.Close()
	st, err := f.Stat()
	must(t, err)
	ts, err := pki.NewTrustStore([]*x509.Certificate{h.Root.Cert}, []*x509.Certificate{h.Owner.Cert}, h.CRLs(t))
	must(t, err)
	if _, err := Verify(f, st.Size(), ts, time.Now()); !errors.Is(err, pki.ErrOutOfScope) {
		t.Fatalf("Verify of a bundle by a scoped key: %v, want pki.ErrOutOfScope", err)
	}
}
