//go:build imaforge_serve

package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imaforge/imaforge/ceremony"
	"github.com/imaforge/imaforge/internal/testpki"
	"github.com/imaforge/imaforge/internal/testservice"
	"github.com/imaforge/imaforge/pki"
)

// proc is a child imaforge process (a server or a build) with its output.
type proc struct {
	cmd  *exec.Cmd
	out  bytes.Buffer
	done chan struct{}
	code int
}

// startProc starts "imaforge args..." with env; the test's end stops it
// (SIGCONT, SIGTERM, then SIGKILL).
func startProc(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: child(env, args...), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = &p.out, &p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		err := p.cmd.Wait()
		if ee, ok := err.(*exec.ExitError); ok {
			p.code = ee.ExitCode()
		} else if err != nil {
			p.code = -1
		}
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Signal(syscall.SIGCONT)
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill SIGKILLs p and waits for it.
func (p *proc) kill(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !p.exited() {
		t.Fatal(err)
	}
	<-p.done
}

// signalAll sends sig to every process of ps still running.
func signalAll(ps []*proc, sig syscall.Signal) {
	for _, p := range ps {
		if !p.exited() {
			_ = p.cmd.Process.Signal(sig)
		}
	}
}

// waitFor polls cond every 5 ms until it holds, failing t after timeout.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v", what, timeout)
		}
	}
}

// auditRecords returns the records of a relic audit file (none if it does
// not exist).
func auditRecords(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var r map[string]any
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			// a line being written: the caller polls again
			continue
		}
		out = append(out, r)
	}
	return out
}

// signedBatches counts the signed batches of an audit file.
func signedBatches(t *testing.T, path string) int {
	n := 0
	for _, r := range auditRecords(t, path) {
		if _, ok := r["ima.count"]; ok {
			n++
		}
	}
	return n
}

// TestServiceBuild: two imaforge serve instances, each with a copy of one
// SoftHSM2 token holding a manufacturer key and a tenant key (its
// certificate issued by the owner CA with the scope /opt/tenant/**); the
// manufacturer CI and the
// tenant CI each have their own client certificate and role, and the
// tenant's role allows only the tenant key. Eight concurrent builds, four
// of each, give the images built with the same keys as files, byte for
// byte, while server 0 is SIGKILLed, restarted while the builds still run
// and then server 1 is SIGKILLed, so that the builds finish through the
// restarted server; evmctl verifies an image of each. The builds are
// paused (SIGSTOP) while the servers change, so each phase is certain to
// happen mid-build. The tenant CI asking for the manufacturer key is
// refused and audited; the signature cache works with every server down;
// with every server down a build fails after its retries, naming the
// servers and the key, and leaves no image.
func TestServiceBuild(t *testing.T) {
	hsm, env := softHSMForCLI(t)
	p := newCeremonyProject(t, nil, 300)

	// The tenant key: issued by the owner CA, scoped, in the same token.
	h := testpki.New(t, "Test Root", "Test Owner")
	scope, err := pki.NewScope([]string{"/opt/tenant/**"})
	if err != nil {
		t.Fatal(err)
	}
	pkiDir := filepath.Join(p.dir, "pki")
	if err := os.Mkdir(pkiDir, 0o700); err != nil {
		t.Fatal(err)
	}
	tenantKey := testpki.Issue(t, pki.Request{Role: pki.RoleIMA, Name: "tenant-ima", KeyType: pki.RSA2048, Scope: scope}, h.OwnerIssuer(), pki.Options{})
	testpki.Write(t, pkiDir, "tenant", tenantKey, false)
	hsm.ImportKey(t, "fw", "1234", filepath.Join(pkiDir, "tenant.key"), "tenant", "03")

	tenantManifest := func(name, key string) string {
		m := filepath.Join(p.dir, name+".yaml")
		testservice.WriteFile(t, m, fmt.Sprintf(`version: 1
image: {output: out/%s.sqsh, compression: zstd, level: 3, epoch: 1700000000, owner: {uid: 0, gid: 0}}
hash: sha256
keys:
  tenant: {cert: %s, %s}
sources: [{from: rootfs/, to: /opt/tenant/}]
rules:
  - {match: /opt/tenant/var/**, sign: false}
  - {match: /opt/tenant/**, key: tenant}
`, name, filepath.Join(pkiDir, "tenant.pem"), key))
		return m
	}
	var tenantSigned, tenantUnsigned []string
	for _, s := range p.signed {
		tenantSigned = append(tenantSigned, "opt/tenant/"+s)
	}
	for _, s := range p.unsigned {
		tenantUnsigned = append(tenantUnsigned, "opt/tenant/"+s)
	}

	// The images built with the keys as files.
	if code, out, errOut := run(t, "build", "--quiet", p.pemYAML); code != 0 {
		t.Fatalf("pem build: exit %d\n%s%s", code, out, errOut)
	}
	pemImg, wantMfr := p.take(t, "pem.sqsh")
	verifyImage(t, pemImg, p.signed, p.unsigned)
	if code, out, errOut := run(t, "build", "--quiet", tenantManifest("tenant-local", "key: "+filepath.Join(pkiDir, "tenant.key"))); code != 0 {
		t.Fatalf("tenant key file build: exit %d\n%s%s", code, out, errOut)
	}
	wantTenant := fileSHA256(t, filepath.Join(p.dir, "out", "tenant-local.sqsh"))

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
  tenant:
    token: hsm
    label: "tenant"
    x509certificate: %s
    roles: [tenant]
pinfile: %s
`, hsm.Module, absKey(t, "rsa2048.pem"), filepath.Join(pkiDir, "tenant.pem"), pins))
	audit := func(i int) string { return f.Path(fmt.Sprintf("audit%d.jsonl", i)) }
	var servers [2]*proc
	// Each server has its own copy of the token, as two HSMs holding the
	// same keys: SoftHSM2 is not safe for logins from several processes
	// at once (ceremonytest.SoftHSM.Copy).
	var serverEnv [len(servers)][]string
	for i := range servers {
		serverEnv[i] = append(slices.Clip(env), hsm.Copy(t).Env())
	}
	var logs []*bytes.Buffer
	for i := range servers {
		servers[i] = startProc(t, serverEnv[i], "serve", f.ServerConfig(i))
		logs = append(logs, &servers[i].out)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for i, l := range logs {
				t.Logf("server log %d:\n%s", i, l.String())
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
	// mfrManifest signs with remote:mfr as the client who.
	mfrManifest := func(n int, who string) string {
		s := strings.Replace(string(pem), keyLine, "key: remote:mfr, relic_config: "+f.ClientConfig(who), 1)
		s = strings.Replace(s, "output: out/firmware.sqsh", fmt.Sprintf("output: out/remote%d.sqsh", n), 1)
		m := filepath.Join(p.dir, fmt.Sprintf("remote%d.yaml", n))
		testservice.WriteFile(t, m, s)
		return m
	}

	// Eight builds, even ones the manufacturer's, odd ones the tenant's.
	const builds = 8
	image := func(n int) string {
		if n%2 == 0 {
			return filepath.Join(p.dir, "out", fmt.Sprintf("remote%d.sqsh", n))
		}
		return filepath.Join(p.dir, "out", fmt.Sprintf("tenant%d.sqsh", n))
	}
	var procs []*proc
	for n := range builds {
		m := mfrManifest(n, "mfr")
		if n%2 == 1 {
			m = tenantManifest(fmt.Sprintf("tenant%d", n), "key: remote:tenant, relic_config: "+f.ClientConfig("tenant"))
		}
		procs = append(procs, startProc(t, env, "build", "--quiet", m))
	}
	allExited := func() bool {
		for _, b := range procs {
			if !b.exited() {
				return false
			}
		}
		return true
	}
	running := func() int {
		n := 0
		for _, b := range procs {
			if !b.exited() {
				n++
			}
		}
		return n
	}

	// 1. Both servers serve until server 0 has signed a batch; then the
	// builds pause, server 0 is SIGKILLed with requests in flight, and the
	// builds go on.
	waitFor(t, "server 0 signs a batch", 120*time.Second, func() bool { return signedBatches(t, audit(0)) > 0 || allExited() })
	signalAll(procs, syscall.SIGSTOP)
	servers[0].kill(t)
	before1 := signedBatches(t, audit(1))
	signalAll(procs, syscall.SIGCONT)

	// 2. Server 1 alone signs a batch; the builds pause again, server 0
	// is restarted, server 1 SIGKILLed: what is left can only be signed by
	// the restarted server.
	waitFor(t, "server 1 signs a batch after server 0 died", 120*time.Second, func() bool { return signedBatches(t, audit(1)) > before1 || allExited() })
	signalAll(procs, syscall.SIGSTOP)
	left := running()
	if left == 0 {
		t.Fatal("every build finished before server 0 was restarted")
	}
	servers[0] = startProc(t, serverEnv[0], "serve", f.ServerConfig(0))
	logs = append(logs, &servers[0].out)
	testservice.WaitHealthy(t, f.URL(0), 60*time.Second)
	servers[1].kill(t)
	before0 := signedBatches(t, audit(0))
	signalAll(procs, syscall.SIGCONT)
	for _, b := range procs {
		<-b.done
	}
	after0 := signedBatches(t, audit(0))
	if after0 <= before0 {
		t.Errorf("the restarted server 0 signed nothing for the %d builds still running", left)
	}
	t.Logf("%d builds running when server 0 was restarted; it signed %d batches for them", left, after0-before0)

	for n, b := range procs {
		if b.code != 0 {
			t.Errorf("build %d: exit %d\n%s", n, b.code, b.out.String())
			continue
		}
		want := wantMfr
		if n%2 == 1 {
			want = wantTenant
		}
		if got := fileSHA256(t, image(n)); got != want {
			t.Errorf("build %d through the service differs from the build with the key file", n)
		}
	}
	verifyImage(t, image(0), p.signed, p.unsigned)
	verifyImageWith(t, image(1), filepath.Join(pkiDir, "tenant.der"), tenantSigned, tenantUnsigned)
	// the servers signed in their own process (relic's p11token sessions),
	// not through relic's token worker
	for i := range servers {
		if l, _ := os.ReadFile(f.Path(fmt.Sprintf("server%d.log", i))); len(l) == 0 || bytes.Contains(l, []byte("not opened in the server process")) {
			t.Errorf("server %d signed through relic's token worker (or logged nothing):\n%s", i, l)
		}
	}

	// Every signed batch is audited, was sent as a stream, each client
	// used only its own key, and every file of the builds is in the audit
	// records once per build (four per key; identical files share one
	// signature, asked for with the path of one of them), more often only
	// when its batch was in flight to a server that was killed.
	batches := map[string]int{}
	signedPaths := map[string]int{}
	for i := range servers {
		for _, r := range auditRecords(t, audit(i)) {
			if _, ok := r["ima.count"]; !ok {
				continue
			}
			who, key := r["client.name"], r["sig.keyname"]
			batches[fmt.Sprintf("%v/%v", who, key)]++
			if (who == "tenant-ci") != (key == "tenant") {
				t.Errorf("client %v signed with key %v", who, key)
			}
			if r["content-type"] != "application/x-ndjson" {
				t.Errorf("a build sent a batch as %v, not as a stream", r["content-type"])
			}
			paths, _ := r["ima.paths"].([]any)
			for _, p := range paths {
				signedPaths[fmt.Sprintf("%v %v", key, p)]++
			}
		}
	}
	again := 0
	for key, prefix := range map[string]string{"mfr": "/", "tenant": "/opt/tenant/"} {
		byContent := map[string]int{}
		for _, s := range p.signed {
			byContent[fileSHA256(t, filepath.Join(p.rootfs, s))] += signedPaths[key+" "+prefix+s]
		}
		for c, n := range byContent {
			switch {
			case n < 4:
				t.Errorf("key %s, content %.12s: signed %d times for 4 builds", key, c, n)
			case n > 4:
				again += n - 4
			}
		}
	}
	t.Logf("paths signed again after a server was killed: %d", again)
	if batches["mfr-ci/mfr"] == 0 || batches["tenant-ci/tenant"] == 0 {
		t.Errorf("signed batches per client/key: %v", batches)
	}
	t.Logf("signed batches per client/key: %v", batches)

	// The tenant CI asking for the manufacturer key: refused by relic's
	// roles, not retried, audited.
	code, out := runChild(t, env, "build", "--quiet", mfrManifest(60, "tenant"))
	if code != 1 || !strings.Contains(out, "403") || !strings.Contains(out, `key "mfr"`) || !strings.Contains(out, f.URL(0)) {
		t.Errorf("tenant CI with the manufacturer key: exit %d\n%s", code, out)
	}
	mustNotExist(t, image(60), "refused build")
	refused := false
	for _, r := range auditRecords(t, audit(0)) {
		if r["ima.refused"] == "https://relic.sas.com/forbidden" && r["client.name"] == "tenant-ci" && r["sig.keyname"] == "mfr" {
			refused = true
		}
	}
	if !refused {
		t.Error("the tenant CI's refusal is not in the audit file")
	}

	// The signature cache works with a remote key: filled through the
	// service, then a build with every server down reuses it.
	cache := filepath.Join(p.dir, "sigcache")
	cached := mfrManifest(50, "mfr")
	if code, out := runChild(t, env, "build", "--quiet", "--signature-cache", cache, cached); code != 0 {
		t.Fatalf("cached build: exit %d\n%s", code, out)
	}
	servers[0].kill(t)
	if code, out := runChild(t, env, "build", "--quiet", "--signature-cache", cache, cached); code != 0 {
		t.Fatalf("build from the cache with no server: exit %d\n%s", code, out)
	}
	if got := fileSHA256(t, image(50)); got != wantMfr {
		t.Error("build from the signature cache differs from the PEM build")
	}

	// Every server is down: the build fails after its retries and
	// publishes nothing.
	code, out = runChild(t, env, "build", "--quiet", mfrManifest(99, "mfr"))
	if code != 1 || !strings.Contains(out, "after 3 rounds over 2 servers") || !strings.Contains(out, "signing service") || !strings.Contains(out, `key "mfr"`) || !strings.Contains(out, "127.0.0.1") {
		t.Errorf("build with no server: exit %d\n%s", code, out)
	}
	mustNotExist(t, image(99), "failed build")
}

// TestCeremonyRemote: plan and ceremony sign with a remote: key (a
// signing service's) give, through build --signatures with every server
// down, the image built with the key file; the audit transcript names the
// service; the tenant CI's client certificate cannot sign the
// manufacturer's request.
func TestCeremonyRemote(t *testing.T) {
	p := newCeremonyProject(t, nil, 12)
	if code, out, errOut := run(t, "build", "--quiet", p.pemYAML); code != 0 {
		t.Fatalf("pem build: exit %d\n%s%s", code, out, errOut)
	}
	_, want := p.take(t, "pem.sqsh")
	f := testservice.New(t, 1, fmt.Sprintf(`tokens:
  file:
    type: file
keys:
  mfr:
    token: file
    keyfile: %s
    x509certificate: %s
    roles: [mfr]
`, absKey(t, "rsa2048.key"), absKey(t, "rsa2048.pem")))
	server := startProc(t, nil, "serve", f.ServerConfig(0))
	testservice.WaitHealthy(t, f.URL(0), 60*time.Second)
	pem, err := os.ReadFile(p.pemYAML)
	if err != nil {
		t.Fatal(err)
	}
	remote := filepath.Join(p.dir, "remote.yaml")
	testservice.WriteFile(t, remote, strings.Replace(string(pem), "key: "+absKey(t, "rsa2048.key"), "key: remote:mfr, relic_config: "+f.ClientConfig("mfr"), 1))

	req := filepath.Join(p.dir, "request.json")
	if code, out, errOut := run(t, "plan", remote, "-o", req); code != 0 {
		t.Fatalf("plan: exit %d\n%s%s", code, out, errOut)
	}
	r, err := ceremony.ReadRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Keys) != 1 || r.Keys[0].Ref != "remote:mfr" {
		t.Fatalf("request keys %+v", r.Keys)
	}
	resp := filepath.Join(p.dir, "response.json")
	audit := filepath.Join(p.dir, "audit.jsonl")
	// The operator confirms, shown the key's service.
	cmd := child(nil, "ceremony", "sign", req, "--relic-config", f.ClientConfig("mfr"), "-o", resp, "--audit", audit)
	cmd.Stdin = strings.NewReader("y\n")
	cout, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(cout), fmt.Sprintf("signed %d digests", len(r.Keys[0].Digests))) {
		t.Fatalf("ceremony sign: %v\n%s", err, cout)
	}
	if !strings.Contains(string(cout), "key manufacturer: remote:mfr at "+f.URL(0)) {
		t.Errorf("the ceremony does not show the service:\n%s", cout)
	}
	// The service audited the batches, signed for the manufacturer CI.
	if a := readAudit(t, f.Path("audit0.jsonl")); !strings.Contains(a, `"client.name":"mfr-ci"`) || !strings.Contains(a, `"/bin/tool011"`) {
		t.Errorf("service audit:\n%s", a)
	}
	// The transcript: started and complete, naming the key's reference
	// and the service.
	b, _ := os.ReadFile(audit)
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	var rec ceremony.AuditRecord
	if len(lines) != 2 || json.Unmarshal(lines[1], &rec) != nil {
		t.Fatalf("audit transcript:\n%s", b)
	}
	if rec.Outcome != "complete" || rec.Keys[0].Ref != "remote:mfr" || len(rec.Keys[0].Service) != 1 || rec.Keys[0].Service[0] != f.URL(0) ||
		rec.Keys[0].Signed != len(r.Keys[0].Digests) || rec.Keys[0].Token != nil {
		t.Errorf("audit record %+v", rec)
	}
	if code, vout, verr := run(t, "ceremony", "audit", "verify", audit); code != 0 {
		t.Errorf("audit verify: exit %d\n%s%s", code, vout, verr)
	}
	if code, vout, verr := run(t, "ceremony", "verify", req, resp); code != 0 {
		t.Errorf("ceremony verify: exit %d\n%s%s", code, vout, verr)
	}

	// The tenant CI's certificate may not use the manufacturer key: the
	// ceremony fails naming the server and key, audited, no response.
	bad := filepath.Join(p.dir, "tenant-response.json")
	code, out := runChild(t, nil, "ceremony", "sign", req, "--relic-config", f.ClientConfig("tenant"), "-o", bad, "--yes", "--audit", audit)
	if code != 1 || !strings.Contains(out, "403") || !strings.Contains(out, `key "mfr"`) || !strings.Contains(out, f.URL(0)) {
		t.Errorf("tenant CI ceremony: exit %d\n%s", code, out)
	}
	mustNotExist(t, bad, "refused ceremony")
	if b, _ := os.ReadFile(audit); !strings.Contains(string(b), `"outcome":"failed: `) {
		t.Errorf("the refused ceremony is not in the transcript:\n%s", b)
	}
	// A remote key needs the client configuration.
	code, out = runChild(t, nil, "ceremony", "sign", req, "-o", bad, "--yes", "--audit", audit)
	if code != 1 || !strings.Contains(out, "needs the relic client configuration") {
		t.Errorf("ceremony without --relic-config: exit %d\n%s", code, out)
	}

	// With every server down: build --signatures takes the response.
	server.kill(t)
	if code, out := runChild(t, nil, "build", "--quiet", remote, "--signatures", resp); code != 0 {
		t.Fatalf("build --signatures: exit %d\n%s", code, out)
	}
	img, got := p.take(t, "ceremony.sqsh")
	if got != want {
		t.Errorf("remote ceremony build %s, PEM build %s", got, want)
	}
	verifyImage(t, img, p.signed, p.unsigned)
	// and a ceremony fails after its retries, naming server and key.
	code, out = runChild(t, nil, "ceremony", "sign", req, "--relic-config", f.ClientConfig("mfr"), "-o", bad, "--yes", "--audit", audit)
	if code != 1 || !strings.Contains(out, "after 3 rounds over 1 servers") || !strings.Contains(out, `key "mfr"`) || !strings.Contains(out, f.URL(0)) {
		t.Errorf("ceremony with no server: exit %d\n%s", code, out)
	}
	mustNotExist(t, bad, "failed ceremony")
}

func readAudit(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
