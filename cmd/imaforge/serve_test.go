//go:build imaforge_serve

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imaforge/imaforge/internal/testservice"
)

// startServe starts "imaforge serve config" and returns the process; the
// test's end stops it (SIGTERM, then SIGKILL).
func startServe(t *testing.T, env []string, config string, log *bytes.Buffer) *exec.Cmd {
	t.Helper()
	cmd := child(env, "serve", config)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	return cmd
}

// TestServiceBuild: two imaforge serve instances over one SoftHSM2 token;
// eight concurrent builds signing through them give the image built with
// the same key as a PEM file, byte for byte, while one server is SIGKILLed
// mid-way; evmctl verifies a sample. With every server down a build fails
// after its retries, naming the server and key, and leaves no image.
func TestServiceBuild(t *testing.T) {
	hsm, env := softHSMForCLI(t)
	p := newCeremonyProject(t, nil, 300)
	if code, out, errOut := run(t, "build", "--quiet", p.pemYAML); code != 0 {
		t.Fatalf("pem build: exit %d\n%s%s", code, out, errOut)
	}
	pemImg, want := p.take(t, "pem.sqsh")
	verifyImage(t, pemImg, p.signed, p.unsigned)

	pins := filepath.Join(p.dir, "pins.yaml")
	testservice.WriteFile(t, pins, "hsm: \"1234\"\n")
	f := testservice.New(t, 2, fmt.Sprintf(`tokens:
  hsm:
    type: pkcs11
    provider: %s
    label: "fw"
keys:
  mfr:
    token: hsm
    label: "ima"
    x509certificate: %s
    roles: [mfr]
pinfile: %s
`, hsm.Module, absKey(t, "rsa2048.pem"), pins))
	var logs [2]bytes.Buffer
	var servers [2]*exec.Cmd
	for i := range servers {
		servers[i] = startServe(t, env, f.ServerConfig(i), &logs[i])
	}
	t.Cleanup(func() {
		if t.Failed() {
			for i := range logs {
				t.Logf("server %d log:\n%s", i, logs[i].String())
			}
		}
	})
	for i := range servers {
		testservice.WaitHealthy(t, f.URL(i), 60*time.Second)
	}

	pem, err := os.ReadFile(p.pemYAML)
	if err != nil {
		t.Fatal(err)
	}
	keyLine := "key: " + absKey(t, "rsa2048.key")
	if !strings.Contains(string(pem), keyLine) {
		t.Fatal("manifest shape changed")
	}
	manifest := func(n int) string {
		s := strings.Replace(string(pem), keyLine, "key: remote:mfr, relic_config: "+f.ClientConfig("mfr"), 1)
		s = strings.Replace(s, "output: out/firmware.sqsh", fmt.Sprintf("output: out/remote%d.sqsh", n), 1)
		m := filepath.Join(p.dir, fmt.Sprintf("remote%d.yaml", n))
		testservice.WriteFile(t, m, s)
		return m
	}

	const builds = 8
	var wg sync.WaitGroup
	results := make([]string, builds)
	codes := make([]int, builds)
	for n := range builds {
		m := manifest(n)
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[n], results[n] = runChild(t, env, "build", "--quiet", m)
		}()
	}
	// SIGKILL server 0 once it has signed a batch
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if b, _ := os.ReadFile(f.Path("audit0.jsonl")); bytes.Contains(b, []byte(`"ima.count"`)) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := servers[0].Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for n := range builds {
		if codes[n] != 0 {
			t.Errorf("build %d: exit %d\n%s", n, codes[n], results[n])
			continue
		}
		img := filepath.Join(p.dir, "out", fmt.Sprintf("remote%d.sqsh", n))
		if got := fileSHA256(t, img); got != want {
			t.Errorf("build %d through the service differs from the PEM build", n)
		}
	}
	verifyImage(t, filepath.Join(p.dir, "out", "remote7.sqsh"), p.signed, p.unsigned)
	audit := 0
	for i := range servers {
		b, _ := os.ReadFile(f.Path(fmt.Sprintf("audit%d.jsonl", i)))
		audit += strings.Count(string(b), `"ima.count"`)
	}
	if audit == 0 {
		t.Error("no signature in the audit files")
	}
	t.Logf("%d signed batches in the audit files", audit)

	// the signature cache works with a remote key: filled through the
	// service, then a build with every server down reuses it
	cache := filepath.Join(p.dir, "sigcache")
	cached := manifest(50)
	if code, out := runChild(t, env, "build", "--quiet", "--signature-cache", cache, cached); code != 0 {
		t.Fatalf("cached build: exit %d\n%s", code, out)
	}
	servers[1].Process.Signal(syscall.SIGKILL)
	servers[1].Process.Wait()
	if code, out := runChild(t, env, "build", "--quiet", "--signature-cache", cache, cached); code != 0 {
		t.Fatalf("build from the cache with no server: exit %d\n%s", code, out)
	}
	if got := fileSHA256(t, filepath.Join(p.dir, "out", "remote50.sqsh")); got != want {
		t.Error("build from the signature cache differs from the PEM build")
	}

	// the only servers are down: the build fails after its retries and
	// publishes nothing
	m := manifest(99)
	code, out := runChild(t, env, "build", "--quiet", m)
	if code != 1 || !strings.Contains(out, "after 3 rounds over 2 servers") || !strings.Contains(out, "signing service") || !strings.Contains(out, `key "mfr"`) || !strings.Contains(out, "127.0.0.1") {
		t.Errorf("build with no server: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(p.dir, "out", "remote99.sqsh")); !os.IsNotExist(err) {
		t.Errorf("a failed build left an image: %v", err)
	}
}
