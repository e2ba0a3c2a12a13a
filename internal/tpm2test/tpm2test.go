// Package tpm2test starts a software TPM with a tpm2-pkcs11 token for tests
// of keys held in a TPM: swtpm on a unix socket, a private D-Bus daemon and
// tpm2-abrmd (the access broker and resource manager tpm2-pkcs11 needs: a
// bare swtpm has three object slots and nothing flushes what a process
// leaves loaded), and a tpm2-pkcs11 store made with tpm2_ptool. Everything
// lives in a temporary directory, listens on unix sockets only, and is
// stopped when the test ends.
//
// A process initializes a PKCS#11 module once, reading the TCTI and store
// from its environment then: Start sets them for the test (t.Setenv), so
// one TPM serves a whole test binary run (or the signing runs in a child
// process with Env).
package tpm2test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imaforge/imaforge/internal/testenv"
)

// Modules are the paths of tpm2-pkcs11's PKCS#11 library (Debian
// libtpm2-pkcs11-1, then other distributions').
var Modules = []string{
	"/usr/lib/x86_64-linux-gnu/pkcs11/libtpm2_pkcs11.so",
	"/usr/lib/aarch64-linux-gnu/pkcs11/libtpm2_pkcs11.so",
	"/usr/lib64/pkcs11/libtpm2_pkcs11.so",
	"/usr/lib/pkcs11/libtpm2_pkcs11.so",
}

// TPM is a running swtpm with a tpm2-pkcs11 store holding one token.
type TPM struct {
	Dir    string // sockets, TPM state, the store
	Store  string // TPM2_PKCS11_STORE
	TCTI   string // TPM2_PKCS11_TCTI and TPM2TOOLS_TCTI
	Bus    string // DBUS_SESSION_BUS_ADDRESS of the private bus
	Module string // the PKCS#11 library
	Token  string // the token label
	PIN    string // the token's user PIN
}

// Start starts swtpm, D-Bus and tpm2-abrmd, and creates a token labelled
// token with user PIN pin. The peers (swtpm, dbus-daemon, tpm2-abrmd,
// tpm2_ptool, pkcs11-tool) fail the test under CI=true and skip it
// elsewhere when missing.
func Start(t *testing.T, token, pin string) *TPM {
	t.Helper()
	swtpm := testenv.NeedTool(t, "swtpm")
	dbus := testenv.NeedTool(t, "dbus-daemon")
	abrmd := testenv.NeedTool(t, "tpm2-abrmd")
	testenv.NeedTool(t, "tpm2_ptool")
	testenv.NeedTool(t, "pkcs11-tool")
	h := &TPM{Dir: shortTempDir(t), Token: token, PIN: pin}
	for _, m := range Modules {
		if _, err := os.Stat(m); err == nil {
			h.Module = m
			break
		}
	}
	if h.Module == "" {
		t.Fatalf("tpm2_ptool is installed but no libtpm2_pkcs11.so in %v (Debian: libtpm2-pkcs11-1)", Modules)
	}
	p := func(s string) string { return filepath.Join(h.Dir, s) }
	for _, d := range []string{"state", "store"} {
		if err := os.Mkdir(p(d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	h.Store = p("store")

	// swtpm: the TPM command channel and its control channel on unix
	// sockets; startup-clear so that no TPM2_Startup is needed.
	h.daemon(t, "swtpm", p("sock"), swtpm, "socket", "--tpm2",
		"--tpmstate", "dir="+p("state"),
		"--server", "type=unixio,path="+p("sock"),
		"--ctrl", "type=unixio,path="+p("sock.ctrl"),
		"--flags", "not-need-init,startup-clear",
		"--log", "file="+p("swtpm.log"))

	// A private bus for tpm2-abrmd, on a unix socket.
	conf := fmt.Sprintf(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=%s</listen>
  <policy context="default"><allow send_destination="*" eavesdrop="true"/><allow eavesdrop="true"/><allow own="*"/></policy>
</busconfig>
`, p("bus"))
	if err := os.WriteFile(p("bus.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	h.daemon(t, "dbus-daemon", p("bus"), dbus, "--config-file="+p("bus.conf"), "--nofork", "--nopidfile")
	h.Bus = "unix:path=" + p("bus")

	// tpm2-abrmd under a name of its own on that bus.
	name := "com.intel.tss2.Tabrmd.test" + strconv.Itoa(os.Getpid())
	args := []string{"--session", "--dbus-name=" + name, "--tcti=swtpm:path=" + p("sock"), "--flush-all"}
	if os.Geteuid() == 0 {
		args = append(args, "--allow-root")
	}
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", h.Bus)
	h.TCTI = "tabrmd:bus_type=session,bus_name=" + name
	h.daemon(t, "tpm2-abrmd", "", abrmd, args...)
	t.Setenv("TPM2_PKCS11_TCTI", h.TCTI)
	t.Setenv("TPM2TOOLS_TCTI", h.TCTI)
	t.Setenv("TPM2_PKCS11_STORE", h.Store)
	// tpm2-abrmd is ready once it owns its name: retry the first command.
	var err error
	for range 50 {
		if _, err = h.ptool(t, false, "init"); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("tpm2_ptool init: %v\n%s", err, readLog(p("tpm2-abrmd.log")))
	}
	h.ptool(t, true, "addtoken", "--pid=1", "--label="+token, "--userpin="+pin, "--sopin=so-"+pin)
	return h
}

// Env returns the environment entries a child process signing with the
// token needs.
func (h *TPM) Env() []string {
	return []string{
		"TPM2_PKCS11_TCTI=" + h.TCTI,
		"TPM2_PKCS11_STORE=" + h.Store,
		"DBUS_SESSION_BUS_ADDRESS=" + h.Bus,
	}
}

// URI returns the pkcs11: URI of the key labelled key in the token.
func (h *TPM) URI(key string) string {
	return "pkcs11:token=" + h.Token + ";object=" + key + "?module-path=" + h.Module
}

// ImportKey imports a PEM private key file (RSA or ECDSA) into the token
// as the key labelled key: the TPM wraps it, so it signs inside the TPM.
func (h *TPM) ImportKey(t *testing.T, keyPEM, key, algorithm string) {
	t.Helper()
	h.ptool(t, true, "import", "--label="+h.Token, "--key-label="+key, "--userpin="+h.PIN,
		"--privkey="+keyPEM, "--algorithm="+algorithm)
}

// GenerateKey makes a key labelled key inside the TPM (algorithm: rsa2048,
// rsa3072, ecc256, ...) and returns its public key, DER
// SubjectPublicKeyInfo, as pkcs11-tool reads it from the token.
func (h *TPM) GenerateKey(t *testing.T, key, algorithm string) []byte {
	t.Helper()
	h.ptool(t, true, "addkey", "--label="+h.Token, "--key-label="+key, "--userpin="+h.PIN,
		"--algorithm="+algorithm)
	out := filepath.Join(h.Dir, key+".pub.der")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "pkcs11-tool", "--module", h.Module, "--token-label", h.Token,
		"--read-object", "--type", "pubkey", "--label", key, "--output-file", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pkcs11-tool --read-object %s: %v\n%s", key, err, b)
	}
	der, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// ptool runs tpm2_ptool on the store; with must, a failure fails the test.
func (h *TPM) ptool(t *testing.T, must bool, args ...string) ([]byte, error) {
	t.Helper()
	// A TPM command that gets no answer (a broker gone) would wait
	// forever: give each step a minute.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "tpm2_ptool", append(args, "--path="+h.Store)...)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if err != nil && must {
		// tpm2_ptool prints its arguments (PINs among them) only in
		// tracebacks of its own: name the command, not its arguments.
		t.Fatalf("tpm2_ptool %s: %v\n%s", args[0], err, out)
	}
	if err != nil {
		err = fmt.Errorf("%w: %s", err, strings.TrimSpace(string(out)))
	}
	return out, err
}

// daemon starts a long-running peer with its output in DIR/name.log and
// stops it when the test ends; with sock set, it waits until the socket
// exists.
func (h *TPM) daemon(t *testing.T, name, sock, prog string, args ...string) {
	t.Helper()
	log, err := os.Create(filepath.Join(h.Dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(prog, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		t.Fatalf("%s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); log.Close(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	if sock == "" {
		return
	}
	for range 100 {
		if _, err := os.Stat(sock); err == nil {
			return
		}
		select {
		case <-done:
			t.Fatalf("%s exited before creating %s:\n%s", name, sock, readLog(log.Name()))
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("%s did not create %s in 5 s:\n%s", name, sock, readLog(log.Name()))
}

func readLog(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// shortTempDir returns a temporary directory with a short path: unix
// socket paths are limited to 107 bytes, and t.TempDir's are long.
func shortTempDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "tpm2test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}
