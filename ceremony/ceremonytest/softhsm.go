// Package ceremonytest sets up SoftHSM2 tokens for tests of HSM-backed
// signing: a token directory and configuration in a temporary directory
// (SOFTHSM2_CONF), tokens initialized with softhsm2-util, PKCS#8 keys
// imported, and relic configuration files naming them.
//
// A process initializes a PKCS#11 module once, reading SOFTHSM2_CONF then,
// and PKCS#11 login state is per token and process: in-process tests should
// create one SoftHSM per test binary run (or run the signing in a child
// process) and keep one token per login scenario.
package ceremonytest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imaforge/imaforge/internal/testenv"
)

// Module paths of SoftHSM2's PKCS#11 library (Debian softhsm2).
var modules = []string{
	"/usr/lib/softhsm/libsofthsm2.so",
	"/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
	"/usr/lib64/pkcs11/libsofthsm2.so",
}

// SoftHSM is a SoftHSM2 instance whose tokens live in Dir.
type SoftHSM struct {
	Dir    string // token directory and configuration
	Conf   string // the SOFTHSM2_CONF file
	Module string // PKCS#11 module path
}

// New creates a SoftHSM2 configuration in a temporary directory and sets
// SOFTHSM2_CONF for the test (so the test cannot be parallel). It needs
// softhsm2-util (NeedTool: fails under CI, skips elsewhere).
func New(t testing.TB) *SoftHSM {
	t.Helper()
	testenv.NeedTool(t, "softhsm2-util")
	h := &SoftHSM{Dir: t.TempDir()}
	for _, m := range modules {
		if _, err := os.Stat(m); err == nil {
			h.Module = m
			break
		}
	}
	if h.Module == "" {
		t.Fatalf("softhsm2-util is installed but no libsofthsm2.so in %v", modules)
	}
	tokens := filepath.Join(h.Dir, "tokens")
	if err := os.Mkdir(tokens, 0o700); err != nil {
		t.Fatal(err)
	}
	h.Conf = filepath.Join(h.Dir, "softhsm2.conf")
	conf := fmt.Sprintf("directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n", tokens)
	if err := os.WriteFile(h.Conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SOFTHSM2_CONF", h.Conf)
	return h
}

// Copy returns a second SoftHSM2 instance holding a copy of h's tokens
// (the same labels, serials, PINs and keys), like a second HSM holding the
// same keys, with its own token directory and configuration. SOFTHSM2_CONF
// is not changed: give Env to the processes that use the copy.
//
// Processes that log in to one token at the same time need their own copy:
// SoftHSM2's file object store rewrites token.object on every C_Login, and a
// process that reads it while another writes it marks the token invalid
// ("Token integrity check failed") for the rest of its life, failing with
// CKR_GENERAL_ERROR or not finding the token at all. Six pkcs11-tool loops
// logging in to one token here failed 25 of 360 logins; a test that starts
// two relic servers on one token flaked that way in CI.
func (h *SoftHSM) Copy(t testing.TB) *SoftHSM {
	t.Helper()
	c := &SoftHSM{Dir: t.TempDir(), Module: h.Module}
	tokens := filepath.Join(c.Dir, "tokens")
	if err := os.CopyFS(tokens, os.DirFS(filepath.Join(h.Dir, "tokens"))); err != nil {
		t.Fatal(err)
	}
	old, err := os.ReadFile(h.Conf)
	if err != nil {
		t.Fatal(err)
	}
	c.Conf = filepath.Join(c.Dir, "softhsm2.conf")
	conf := strings.Replace(string(old), filepath.Join(h.Dir, "tokens"), tokens, 1)
	if err := os.WriteFile(c.Conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

// Env returns the environment entry child processes need.
func (h *SoftHSM) Env() string { return "SOFTHSM2_CONF=" + h.Conf }

// InitToken initializes a token labelled label with the user PIN pin.
func (h *SoftHSM) InitToken(t testing.TB, label, pin string) {
	t.Helper()
	h.run(t, "--init-token", "--free", "--label", label, "--pin", pin, "--so-pin", "so-"+pin)
}

// ImportKey imports a PKCS#8 PEM private key (and its public half) into
// the token labelled token, as objects labelled keyLabel with CKA_ID idHex.
func (h *SoftHSM) ImportKey(t testing.TB, token, pin, keyPEM, keyLabel, idHex string) {
	t.Helper()
	h.run(t, "--import", keyPEM, "--token", token, "--label", keyLabel, "--id", idHex, "--pin", pin)
}

func (h *SoftHSM) run(t testing.TB, args ...string) {
	t.Helper()
	cmd := exec.Command("softhsm2-util", args...)
	cmd.Env = append(os.Environ(), h.Env())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("softhsm2-util %s: %v\n%s", args[0], err, out)
	}
}

// RelicKey is one key entry of a relic configuration.
type RelicKey struct {
	Name       string // key name (relic:NAME)
	Token      string // token name in the configuration
	TokenLabel string // the SoftHSM token label
	Label      string // key object label
	Cert       string // x509certificate path, optional
}

// WriteRelicConfig writes a relic configuration with a pkcs11 token per
// distinct Token of keys and returns its path. No PIN is written.
func (h *SoftHSM) WriteRelicConfig(t testing.TB, path string, keys ...RelicKey) string {
	t.Helper()
	s := "tokens:\n"
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[k.Token] {
			continue
		}
		seen[k.Token] = true
		s += fmt.Sprintf("  %s:\n    type: pkcs11\n    provider: %s\n    label: %q\n", k.Token, h.Module, k.TokenLabel)
	}
	s += "keys:\n"
	for _, k := range keys {
		s += fmt.Sprintf("  %s:\n    token: %s\n    label: %q\n", k.Name, k.Token, k.Label)
		if k.Cert != "" {
			s += fmt.Sprintf("    x509certificate: %s\n", k.Cert)
		}
	}
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
