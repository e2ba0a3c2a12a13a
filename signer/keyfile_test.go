package signer

import (
	"crypto"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadPrivateKeyForms(t *testing.T) {
	pass := func() ([]byte, error) { return []byte("imaforge-test"), nil }
	for _, tc := range []struct{ file, same string }{
		{"rsa2048.key", "rsa2048.pem"},            // PKCS#8 PEM
		{"rsa2048-pkcs1.key", "rsa2048.pem"},      // RSA PRIVATE KEY
		{"rsa2048-legacy-enc.key", "rsa2048.pem"}, // Proc-Type: 4,ENCRYPTED
		{"p256-sec1.key", "p256.pem"},             // EC PRIVATE KEY
		{"p256-pkcs8.der", "p256.pem"},            // DER
		{"p256-pkcs8-enc.key", "p256.pem"},        // PBES2 AES-256-CBC, HMAC-SHA256
		{"rsa3072-pkcs8-enc.key", "rsa3072.pem"},  // PBES2 AES-128-CBC, HMAC-SHA1
	} {
		t.Run(tc.file, func(t *testing.T) {
			k, err := LoadPrivateKey(keyPath(tc.file), &KeyOptions{Passphrase: pass})
			if err != nil {
				t.Fatal(err)
			}
			c := loadCert(t, tc.same)
			if !k.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(c.PublicKey) {
				t.Error("key does not match its certificate")
			}
			if strings.Contains(tc.file, "enc") {
				_, err := LoadPrivateKey(keyPath(tc.file), &KeyOptions{Passphrase: func() ([]byte, error) { return []byte("wrong"), nil }})
				if !errors.Is(err, ErrPassphrase) || !strings.Contains(err.Error(), tc.file) {
					t.Errorf("wrong passphrase: %v", err)
				}
				_, err = LoadPrivateKey(keyPath(tc.file), nil)
				if !errors.Is(err, ErrPassphrase) {
					t.Errorf("no passphrase: %v", err)
				}
			}
		})
	}
}

func TestLoadErrorsNameTheFile(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.key")
	_, err := LoadPrivateKey(missing, nil)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing key: %v", err)
	}
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("-----BEGIN CERTIFICATE-----\nnot base64\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCertificate(junk); err == nil || !strings.Contains(err.Error(), junk) {
		t.Errorf("junk cert: %v", err)
	}
	if _, err := LoadPrivateKey(junk, nil); err == nil || !strings.Contains(err.Error(), junk) {
		t.Errorf("junk key: %v", err)
	}
	// a certificate file given as the key
	if _, err := LoadPrivateKey(keyPath("rsa2048.pem"), nil); err == nil || !strings.Contains(err.Error(), "no private key") {
		t.Errorf("cert as key: %v", err)
	}
	// DER and PEM certificates load alike
	a, b := loadCert(t, "p384.pem"), loadCert(t, "p384.der")
	if !a.Equal(b) {
		t.Error("PEM and DER certificates differ")
	}
}

func TestKeyFilePermissionWarning(t *testing.T) {
	data, err := os.ReadFile(keyPath("p256.key"))
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o600, 0o640, 0o644} {
		p := filepath.Join(t.TempDir(), "k.key")
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
		var warned []string
		if _, err := LoadPrivateKey(p, &KeyOptions{Warn: func(m string) { warned = append(warned, m) }}); err != nil {
			t.Fatal(err)
		}
		if want := mode != 0o600; want != (len(warned) == 1) {
			t.Errorf("mode %04o: warnings %q", mode, warned)
		}
		if len(warned) == 1 && !strings.Contains(warned[0], p) {
			t.Errorf("warning does not name the file: %q", warned[0])
		}
	}
}

func TestPassphraseSources(t *testing.T) {
	f := filepath.Join(t.TempDir(), "pass")
	if err := os.WriteFile(f, []byte("imaforge-test\r\nignored\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if p, err := PassphraseFromFile(f)(); err != nil || string(p) != "imaforge-test" {
		t.Errorf("file: %q %v", p, err)
	}
	t.Setenv("IMAFORGE_TEST_PASS", "imaforge-test")
	if p, err := PassphraseFromEnv("IMAFORGE_TEST_PASS")(); err != nil || string(p) != "imaforge-test" {
		t.Errorf("env: %q %v", p, err)
	}
	if _, err := PassphraseFromEnv("IMAFORGE_TEST_UNSET_VAR")(); !errors.Is(err, ErrPassphrase) {
		t.Errorf("unset env: %v", err)
	}
	if _, err := LoadPrivateKey(keyPath("p256-pkcs8-enc.key"), &KeyOptions{Passphrase: PassphraseFromFile(f)}); err != nil {
		t.Errorf("key with passphrase file: %v", err)
	}
}

// TestLoadSignerChain: a certificate file holding a chain selects the
// certificate of the key.
func TestLoadSignerChain(t *testing.T) {
	var chain []byte
	for _, c := range []string{"rsa3072.pem", "p256.pem", "p384.pem"} {
		b, err := os.ReadFile(keyPath(c))
		if err != nil {
			t.Fatal(err)
		}
		chain = append(chain, b...)
	}
	p := filepath.Join(t.TempDir(), "chain.pem")
	if err := os.WriteFile(p, chain, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := LoadSigner(keyPath("p256.key"), p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !s.Cert().Equal(loadCert(t, "p256.pem")) {
		t.Error("wrong certificate picked from the chain")
	}
	if _, err := LoadSigner(keyPath("rsa2048.key"), p, nil); !errors.Is(err, ErrKeyMismatch) {
		t.Errorf("no matching certificate: %v", err)
	}
}
