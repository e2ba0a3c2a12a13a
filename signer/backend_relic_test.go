package signer

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/imaforge/imaforge/ceremony/ceremonytest"
	"github.com/imaforge/imaforge/imasig"
)

func relicPIN(pin string) Passphrase { return func() ([]byte, error) { return []byte(pin), nil } }

// fwPIN is the "fw" token's PIN. It is not made of digits, so that the check
// that no error repeats it cannot match a temporary directory's random
// digits ("/tmp/TestRelicPKCS112347234918/" holds "1234") or a token's hex
// serial number.
const fwPIN = "fw-PIN-qx"

// TestRelicPKCS11 opens keys held by a SoftHSM2 token through relic's
// PKCS#11 backend. It is one test with subtests because a process
// initializes the PKCS#11 module (and reads SOFTHSM2_CONF) once.
func TestRelicPKCS11(t *testing.T) {
	hsm := ceremonytest.New(t)
	hsm.InitToken(t, "fw", fwPIN)
	hsm.ImportKey(t, "fw", fwPIN, keyPath("rsa2048.key"), "ima", "01")
	hsm.ImportKey(t, "fw", fwPIN, keyPath("rsa3072.key"), "other", "02")
	hsm.ImportKey(t, "fw", fwPIN, keyPath("p256.key"), "ec", "03")
	hsm.InitToken(t, "fresh", "4321")
	hsm.ImportKey(t, "fresh", "4321", keyPath("rsa2048.key"), "ima", "01")
	dir := t.TempDir()
	certPath, _ := filepath.Abs(keyPath("rsa2048.pem"))
	cfg := hsm.WriteRelicConfig(t, filepath.Join(dir, "relic.yaml"),
		ceremonytest.RelicKey{Name: "ima", Token: "hsm", TokenLabel: "fw", Label: "ima", Cert: certPath},
		ceremonytest.RelicKey{Name: "other", Token: "hsm", TokenLabel: "fw", Label: "other"},
		ceremonytest.RelicKey{Name: "ec", Token: "hsm", TokenLabel: "fw", Label: "ec"},
		ceremonytest.RelicKey{Name: "nokey", Token: "hsm", TokenLabel: "fw", Label: "absent"},
		ceremonytest.RelicKey{Name: "fresh", Token: "fresh", TokenLabel: "fresh", Label: "ima"},
		ceremonytest.RelicKey{Name: "gone", Token: "gone", TokenLabel: "no-such-token", Label: "ima"},
	)
	if !withCgo {
		// Without cgo no PKCS#11 module can be loaded: every token key fails
		// to open, naming the key, the module and the cause.
		for _, ref := range []string{"relic:ima", "pkcs11:token=fw;object=ima?module-path=" + hsm.Module} {
			_, _, err := OpenKey(ref, cfg, &OpenOptions{PIN: relicPIN(fwPIN)})
			if err == nil || !strings.Contains(err.Error(), "without cgo") || !strings.Contains(err.Error(), hsm.Module) {
				t.Errorf("%s without cgo: %v", ref, err)
			}
		}
		return
	}
	cert := loadCert(t, "rsa2048.pem")
	ref, err := New(loadKey(t, "rsa2048.key"), cert)
	if err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("imaforge"))
	want, err := ref.SignDigest(imasig.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}

	// Wrong PIN first, on a token nothing has logged into yet (login state
	// is per token and process).
	t.Run("wrong PIN", func(t *testing.T) {
		_, _, err := OpenKey("relic:fresh", cfg, &OpenOptions{PIN: relicPIN("0000")})
		if !errors.Is(err, ErrPassphrase) || !strings.Contains(err.Error(), "refused the PIN") || !strings.Contains(err.Error(), cfg) {
			t.Fatalf("wrong PIN: %v", err)
		}
	})
	t.Run("no PIN", func(t *testing.T) {
		_, _, err := OpenKey("relic:fresh", cfg, nil)
		if !errors.Is(err, ErrPassphrase) {
			t.Fatalf("no PIN: %v", err)
		}
	})

	t.Run("sessions", func(t *testing.T) {
		key, c, err := OpenKey("relic:ima", cfg, &OpenOptions{PIN: relicPIN(fwPIN), Sessions: 3})
		if err != nil {
			t.Fatal(err)
		}
		tk := key.(*TokenKey)
		defer tk.Close()
		if tk.Sessions() != 3 || c == nil || !c.Equal(cert) {
			t.Fatalf("sessions %d, cert %v", tk.Sessions(), c)
		}
		id := tk.Identity()
		if id.Type != "pkcs11" || id.Label != "fw" || id.Key != "ima" || id.KeyID != "01" || id.Config != cfg {
			t.Errorf("identity %+v", id)
		}
		s, err := New(key, cert)
		if err != nil {
			t.Fatal(err)
		}
		if !s.Deterministic() || s.Backend() != "external" {
			t.Errorf("deterministic %v backend %s", s.Deterministic(), s.Backend())
		}
		// The token's signatures equal the file key's, from many goroutines.
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for i := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				d := sha256.Sum256([]byte{byte(i)})
				got, err := s.SignDigest(imasig.SHA256, d[:])
				if err == nil {
					var w []byte
					w, err = ref.SignDigest(imasig.SHA256, d[:])
					if err == nil && !bytes.Equal(got, w) {
						err = fmt.Errorf("digest %d: token and file key differ", i)
					}
				}
				errs <- err
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Error(err)
			}
		}
		if err := tk.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := key.Sign(nil, digest[:], crypto.SHA256); !errors.Is(err, ErrToken) {
			t.Errorf("sign after close: %v", err)
		}
	})

	// An ECDSA key in the token signs in DER, verifiably, with random
	// nonces: Deterministic says so, and so the build record will.
	t.Run("ECDSA", func(t *testing.T) {
		key, _, err := OpenKey("relic:ec", cfg, &OpenOptions{PIN: relicPIN(fwPIN)})
		if err != nil {
			t.Fatal(err)
		}
		defer key.(*TokenKey).Close()
		ecCert := loadCert(t, "p256.pem")
		s, err := New(key, ecCert)
		if err != nil {
			t.Fatal(err)
		}
		v, err := s.SignDigest(imasig.SHA256, digest[:])
		if err != nil {
			t.Fatal(err)
		}
		if err := imasig.Verify(v, digest[:], ecCert); err != nil {
			t.Fatal(err)
		}
		if s.Deterministic() {
			t.Error("SoftHSM ECDSA reported deterministic")
		}
	})

	t.Run("pkcs11 URI", func(t *testing.T) {
		key, c, err := OpenKey("pkcs11:token=fw;object=ima?module-path="+hsm.Module, "", &OpenOptions{PIN: relicPIN(fwPIN)})
		if err != nil {
			t.Fatal(err)
		}
		defer key.(*TokenKey).Close()
		if c != nil {
			t.Errorf("a URI names no certificate, got %v", c.Subject)
		}
		s, err := New(key, cert)
		if err != nil {
			t.Fatal(err)
		}
		got, err := s.SignDigest(imasig.SHA256, digest[:])
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("URI key: %x, %v", got, err)
		}
	})

	t.Run("wrong key for the certificate", func(t *testing.T) {
		key, _, err := OpenKey("relic:other", cfg, &OpenOptions{PIN: relicPIN(fwPIN)})
		if err != nil {
			t.Fatal(err)
		}
		defer key.(*TokenKey).Close()
		if _, err := New(key, cert); !errors.Is(err, ErrKeyMismatch) {
			t.Fatalf("other key with rsa2048 cert: %v", err)
		}
	})

	bad := []struct {
		name, ref, cfg string
		is             error
		msg            string
	}{
		{"missing token", "relic:gone", cfg, ErrToken, "No token found"},
		{"missing key object", "relic:nokey", cfg, ErrToken, `no key with label "absent"`},
		{"key not in config", "relic:unknown", cfg, ErrToken, `Key "unknown" not found`},
		{"no config", "relic:ima", "", ErrToken, "needs a relic configuration file"},
		{"config missing", "relic:ima", filepath.Join(dir, "absent.yaml"), ErrToken, "absent.yaml"},
		{"URI with pin-value", "pkcs11:token=fw;object=ima?pin-value=" + fwPIN + "&module-path=" + hsm.Module, "", ErrToken, "pin-value is not accepted"},
		{"URI without object", "pkcs11:token=fw?module-path=" + hsm.Module, "", ErrToken, "need an object"},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := OpenKey(c.ref, c.cfg, &OpenOptions{PIN: relicPIN(fwPIN)})
			if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("got %v, want %v containing %q", err, c.is, c.msg)
			}
			// A PIN written into a reference never reaches a message.
			if strings.Contains(err.Error(), fwPIN) {
				t.Errorf("the error repeats the PIN: %v", err)
			}
		})
	}
}

// TestRelicFileToken: relic's file token (no HSM), relative paths resolved
// against the configuration's directory, shared by concurrent signers.
func TestRelicFileToken(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"rsa2048.key", "rsa2048.pem"} {
		b, err := os.ReadFile(keyPath(f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "relic.yaml")
	if err := os.WriteFile(cfg, []byte("tokens:\n  disk:\n    type: file\nkeys:\n  ima:\n    token: disk\n    keyfile: rsa2048.key\n    x509certificate: rsa2048.pem\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	key, cert, err := OpenKey("relic:ima", cfg, &OpenOptions{Sessions: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer key.(*TokenKey).Close()
	if key.(*TokenKey).Sessions() != 4 || cert == nil {
		t.Fatalf("sessions %d cert %v", key.(*TokenKey).Sessions(), cert)
	}
	s, err := New(key, cert)
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256(nil)
	got, err := s.SignDigest(imasig.SHA256, d[:])
	if err != nil {
		t.Fatal(err)
	}
	if err := imasig.Verify(got, d[:], cert); err != nil {
		t.Fatal(err)
	}
	// A plain path is a key file.
	if k, c, err := OpenKey(keyPath("rsa2048.key"), "", nil); err != nil || c != nil || k == nil {
		t.Fatalf("file key: %v %v", c, err)
	}
}
