package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imaforge/imaforge/ceremony"
	"github.com/imaforge/imaforge/ceremony/ceremonytest"
	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/internal/testenv"
	"github.com/imaforge/imaforge/pipeline"
	"github.com/imaforge/imaforge/signer"
	"github.com/imaforge/imaforge/squashfs"
)

// child prepares the real imaforge (TestMain) as a child process with extra
// environment: commands that open a PKCS#11 token run there, because a
// process initializes a PKCS#11 module, and logs into a token, once.
func child(env []string, args ...string) *exec.Cmd {
	cmd := exec.Command("imaforge", args...)
	cmd.Env = append(os.Environ(), env...)
	return cmd
}

func runChild(t *testing.T, env []string, args ...string) (code int, out string) {
	t.Helper()
	cmd := child(env, args...)
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), b.String()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, b.String()
}

func absKey(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(sk(name))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func fileSHA256(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256(b)
	return hex.EncodeToString(d[:])
}

func mustNotExist(t *testing.T, path, what string) {
	t.Helper()
	if _, err := os.Stat(path); err == nil {
		t.Errorf("%s: %s left behind", what, path)
	}
}

// ceremonyProject is a small tree and manifests signing it with the same
// RSA key from a PEM file (pem.yaml) or a SoftHSM token (hsm.yaml).
type ceremonyProject struct {
	dir, rootfs string
	pemYAML     string
	hsmYAML     string
	relic       string
	signed      []string // image paths (fs.FS names) that carry a signature
	unsigned    []string
}

func newCeremonyProject(t *testing.T, hsm *ceremonytest.SoftHSM, files int) *ceremonyProject {
	t.Helper()
	p := &ceremonyProject{dir: t.TempDir()}
	p.rootfs = filepath.Join(p.dir, "rootfs")
	for _, d := range []string{"bin", "etc", "var/log"} {
		if err := os.MkdirAll(filepath.Join(p.rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i := range files {
		name := fmt.Sprintf("bin/tool%03d", i)
		if err := os.WriteFile(filepath.Join(p.rootfs, name), bytes.Repeat([]byte{byte(i), byte(i >> 8), 'x'}, 100+i*37), 0o755); err != nil {
			t.Fatal(err)
		}
		p.signed = append(p.signed, name)
	}
	if err := os.WriteFile(filepath.Join(p.rootfs, "etc/same-as-tool000"), bytes.Repeat([]byte{0, 0, 'x'}, 100), 0o644); err != nil { // a duplicate
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p.rootfs, "etc/empty"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p.rootfs, "var/log/boot.log"), []byte("not signed\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p.signed = append(p.signed, "etc/same-as-tool000", "etc/empty")
	p.unsigned = []string{"var/log/boot.log"}

	manifest := func(name, key string) string {
		path := filepath.Join(p.dir, name)
		m := fmt.Sprintf(`version: 1
image: {output: out/firmware.sqsh, compression: zstd, level: 3, epoch: 1700000000, owner: {uid: 0, gid: 0}}
hash: sha256
keys:
  manufacturer: {cert: %s, %s}
sources: [{from: rootfs/, to: /}]
rules:
  - {match: /var/**, sign: false}
  - {match: /**, key: manufacturer}
`, absKey(t, "rsa2048.pem"), key)
		if err := os.WriteFile(path, []byte(m), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	p.pemYAML = manifest("pem.yaml", "key: "+absKey(t, "rsa2048.key"))
	if hsm != nil {
		p.relic = hsm.WriteRelicConfig(t, filepath.Join(p.dir, "relic.yaml"),
			ceremonytest.RelicKey{Name: "ima", Token: "hsm", TokenLabel: "fw", Label: "ima"},
			ceremonytest.RelicKey{Name: "other", Token: "hsm", TokenLabel: "fw", Label: "other"},
			ceremonytest.RelicKey{Name: "gone", Token: "gone", TokenLabel: "no-such-token", Label: "ima"})
		p.hsmYAML = manifest("hsm.yaml", "key: relic:ima, relic_config: relic.yaml, passphrase_env: TEST_HSM_PIN")
	}
	return p
}

func (p *ceremonyProject) image() string { return filepath.Join(p.dir, "out", "firmware.sqsh") }

// take moves the built image aside under name and returns its sha256.
func (p *ceremonyProject) take(t *testing.T, name string) (string, string) {
	t.Helper()
	dst := filepath.Join(p.dir, name)
	if err := os.Rename(p.image(), dst); err != nil {
		t.Fatal(err)
	}
	return dst, fileSHA256(t, dst)
}

// verifyImage reads every file's security.ima out of img with our reader
// and has evmctl ima_verify check it against the certificate (DER), over the
// content read back; unsigned paths must carry no value.
func verifyImage(t *testing.T, img string, signed, unsigned []string) {
	t.Helper()
	verifyImageWith(t, img, absKey(t, "rsa2048.der"), signed, unsigned)
}

// verifyImageWith is verifyImage with the certificate der (DER file).
func verifyImageWith(t *testing.T, img, der string, signed, unsigned []string) {
	t.Helper()
	evmctl := testenv.NeedTool(t, "evmctl")
	r, err := squashfs.OpenReader(img)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	tmp := t.TempDir()
	imaOf := func(name string) []byte {
		xs, err := r.Xattrs(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, x := range xs {
			if x.Name == imasig.XattrName {
				return x.Value
			}
		}
		return nil
	}
	for i, name := range signed {
		data, err := r.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		v := imaOf(name)
		if v == nil {
			t.Errorf("%s: no security.ima", name)
			continue
		}
		f := filepath.Join(tmp, strconv.Itoa(i))
		if err := os.WriteFile(f, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f+signer.SigFileSuffix, v, 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(evmctl, "ima_verify", "--sigfile", "--key", der, f).CombinedOutput(); err != nil {
			t.Errorf("evmctl ima_verify %s: %v\n%s", name, err, out)
		}
	}
	for _, name := range unsigned {
		if v := imaOf(name); v != nil {
			t.Errorf("%s: unsigned path carries security.ima %x", name, v)
		}
	}
}

// softHSMForCLI initializes a token "fw" holding the rsa2048 test key (as
// "ima") and the rsa3072 one (as "other").
func softHSMForCLI(t *testing.T) (*ceremonytest.SoftHSM, []string) {
	hsm := ceremonytest.New(t)
	hsm.InitToken(t, "fw", "1234")
	hsm.ImportKey(t, "fw", "1234", absKey(t, "rsa2048.key"), "ima", "01")
	hsm.ImportKey(t, "fw", "1234", absKey(t, "rsa3072.key"), "other", "02")
	return hsm, []string{hsm.Env(), "TEST_HSM_PIN=1234"}
}

// TestCeremonyRoundTrip: a build with the key in a SoftHSM token, and plan →
// ceremony sign → build --signatures with no key, give the image built
// with the same key from a PEM file, byte for byte; evmctl verifies it.
// Resigning a finished request signs nothing; the audit transcript and
// the signature cache work.
func TestCeremonyRoundTrip(t *testing.T) {
	hsm, env := softHSMForCLI(t)
	p := newCeremonyProject(t, hsm, 12)

	if code, out, errOut := run(t, "build", "--quiet", p.pemYAML); code != 0 {
		t.Fatalf("pem build: exit %d\n%s%s", code, out, errOut)
	}
	pemImg, want := p.take(t, "pem.sqsh")
	verifyImage(t, pemImg, p.signed, p.unsigned)

	// 1. build with the HSM key.
	if code, out := runChild(t, env, "build", "--quiet", p.hsmYAML); code != 0 {
		t.Fatalf("hsm build: exit %d\n%s", code, out)
	}
	if _, got := p.take(t, "hsm.sqsh"); got != want {
		t.Errorf("HSM build %s, PEM build %s", got, want)
	}

	// 2. plan → ceremony sign → build --signatures.
	req := filepath.Join(p.dir, "request.json")
	code, out, errOut := run(t, "plan", p.hsmYAML, "-o", req)
	if code != 0 || !strings.Contains(out, "request sha256") {
		t.Fatalf("plan: exit %d\n%s%s", code, out, errOut)
	}
	r, err := ceremony.ReadRequest(req)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Keys) != 1 || r.Keys[0].Files != len(p.signed) || len(r.Keys[0].Digests) != len(p.signed)-1 || r.Keys[0].Ref != "relic:ima" {
		t.Fatalf("request keys %+v", r.Keys)
	}
	resp := filepath.Join(p.dir, "response.json")
	audit := filepath.Join(p.dir, "audit.jsonl")
	code, cout := runChild(t, env, "ceremony", "sign", req, "--relic-config", p.relic, "-o", resp, "--yes", "--audit", audit, "--pin-env", "TEST_HSM_PIN", "--sessions", "2")
	if code != 0 || !strings.Contains(cout, r.SHA256) || !strings.Contains(cout, fmt.Sprintf("signed %d digests (0 resumed", len(p.signed)-1)) {
		t.Fatalf("ceremony sign: exit %d\n%s", code, cout)
	}
	mustNotExist(t, resp+ceremony.JournalSuffix, "finished ceremony")
	// (flags after MANIFEST, as the documentation writes them)
	if code, out, errOut := run(t, "build", p.hsmYAML, "--quiet", "--signatures", resp); code != 0 {
		t.Fatalf("build --signatures: exit %d\n%s%s", code, out, errOut)
	}
	// The build record names the response and the request it answers.
	var brec pipeline.Record
	if b, err := os.ReadFile(p.image() + ".record.json"); err != nil || json.Unmarshal(b, &brec) != nil {
		t.Fatalf("build record: %v", err)
	}
	if src := brec.Keys[0].Precomputed; len(src) != 1 || src[0].File != resp || src[0].Format != "response" ||
		src[0].Request != r.SHA256 || src[0].SHA256 != fileSHA256(t, resp) || src[0].Response == "" {
		t.Errorf("record key %+v, request %s", brec.Keys[0], r.SHA256)
	}
	img, got := p.take(t, "ceremony.sqsh")
	if got != want {
		t.Errorf("ceremony build %s, PEM build %s", got, want)
	}
	verifyImage(t, img, p.signed, p.unsigned)

	// The audit transcript names the operator, the token and both digests.
	rs, err := ceremony.ReadResponse(resp)
	if err != nil {
		t.Fatal(err)
	}
	// Two records: started (before any signature) and complete, chained.
	b, _ := os.ReadFile(audit)
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	var start, rec ceremony.AuditRecord
	if len(lines) != 2 || json.Unmarshal(lines[0], &start) != nil || json.Unmarshal(lines[1], &rec) != nil {
		t.Fatalf("audit transcript:\n%s", b)
	}
	if start.Outcome != "started" || start.Request != r.SHA256 || start.Operator == "" || start.Keys[0].Signed != 0 ||
		start.Keys[0].Token == nil || start.Keys[0].Token.Label != "fw" {
		t.Errorf("started record %+v", start)
	}
	if rec.Outcome != "complete" || rec.Request != r.SHA256 || rec.Response != rs.SHA256 || rec.Operator == "" ||
		rec.Keys[0].Token == nil || rec.Keys[0].Token.Label != "fw" || rec.Keys[0].Signed != len(p.signed)-1 ||
		rec.Sessions != 2 || rec.Start == "" || rec.End == "" || rec.Seq != 2 || rec.Started == "" || rec.Started != rec.Prev {
		t.Errorf("audit record %+v", rec)
	}
	// The serial the token reported, not only the configured label.
	if rep := rec.Keys[0].Reported; rep == nil || rep.Label != "fw" || rep.Serial == "" || rep.Model != "SoftHSM v2" {
		t.Errorf("reported token %+v", rep)
	}
	if code, vout, verr := run(t, "ceremony", "audit", "verify", audit); code != 0 || !strings.Contains(vout, "2 records") {
		t.Errorf("audit verify: exit %d\n%s%s", code, vout, verr)
	}

	// Signing the same request again signs nothing.
	code, cout = runChild(t, env, "ceremony", "sign", "--yes", "--audit", audit, "--pin-env", "TEST_HSM_PIN", "--relic-config", p.relic, "-o", resp, req)
	if code != 0 || !strings.Contains(cout, "nothing to sign") {
		t.Errorf("second ceremony: exit %d\n%s", code, cout)
	}

	// Without --yes the operator must agree; "n" declines and is audited.
	decl := filepath.Join(p.dir, "declined.json")
	cmd := child(env, "ceremony", "sign", "--audit", audit, "--pin-env", "TEST_HSM_PIN", "--relic-config", p.relic, "-o", decl, req)
	cmd.Stdin = strings.NewReader("n\n")
	dout, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(dout), "[y/N]") || !strings.Contains(string(dout), "declined") {
		t.Errorf("declined ceremony: %v\n%s", err, dout)
	}
	mustNotExist(t, decl, "declined ceremony")

	// Tokens and keys are checked before the question: a missing token
	// fails without asking.
	cmd = child(env, "ceremony", "sign", "--audit", audit, "--pin-env", "TEST_HSM_PIN", "--relic-config", p.relic, "-o", decl, "--key", "manufacturer=relic:gone", req)
	cmd.Stdin = strings.NewReader("y\n")
	dout, err = cmd.CombinedOutput()
	if err == nil || strings.Contains(string(dout), "[y/N]") || !strings.Contains(string(dout), "No token found") {
		t.Errorf("missing token asked to confirm: %v\n%s", err, dout)
	}

	// The ceremony machine inspects the request and checks the response.
	code, sout, serr := run(t, "ceremony", "show", req)
	if code != 0 || !strings.Contains(sout, r.SHA256) || !strings.Contains(sout, r.Manifest.SHA256) ||
		!strings.Contains(sout, r.Keys[0].Digests[0]) || !strings.Contains(sout, "  /bin/tool011\n") || !strings.Contains(sout, "/etc/same-as-tool000") {
		t.Errorf("ceremony show: exit %d\n%s%s", code, sout, serr)
	}
	code, vout, verr := run(t, "ceremony", "verify", req, resp)
	if code != 0 || !strings.Contains(vout, rs.SHA256) || !strings.Contains(vout, fmt.Sprintf("%d digests, each signed and verified", len(p.signed)-1)) {
		t.Errorf("ceremony verify: exit %d\n%s%s", code, vout, verr)
	}
	if b, _ := os.ReadFile(audit); !strings.Contains(string(b), `"outcome":"declined"`) {
		t.Errorf("audit lacks the declined ceremony:\n%s", b)
	}
}

// TestCeremonyRefusals: each bad input fails with a clear error and leaves
// no response or image.
func TestCeremonyRefusals(t *testing.T) {
	hsm, env := softHSMForCLI(t)
	p := newCeremonyProject(t, hsm, 4)
	req := filepath.Join(p.dir, "request.json")
	if code, out, errOut := run(t, "plan", "-o", req, p.hsmYAML); code != 0 {
		t.Fatalf("plan: %d\n%s%s", code, out, errOut)
	}
	sign := func(t *testing.T, reqFile, out string, extra []string, extraEnv ...string) (int, string) {
		t.Helper()
		args := append([]string{"ceremony", "sign", "--yes", "--relic-config", p.relic, "--pin-env", "TEST_HSM_PIN", "-o", out}, extra...)
		return runChild(t, append(append([]string{}, env...), extraEnv...), append(args, reqFile)...)
	}
	// A good response to start from.
	good := filepath.Join(p.dir, "good.json")
	if code, out := sign(t, req, good, nil); code != 0 {
		t.Fatalf("sign: %d\n%s", code, out)
	}

	// Ceremony-side refusals.
	tamperedReq := filepath.Join(p.dir, "tampered-request.json")
	b, _ := os.ReadFile(req)
	r, _ := ceremony.ParseRequest(b)
	d0 := r.Keys[0].Digests[0]
	if err := os.WriteFile(tamperedReq, bytes.Replace(b, []byte(d0), []byte(strings.Repeat("0", len(d0))), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	ceremonyCases := []struct {
		name  string
		req   string
		extra []string
		env   []string
		want  string
	}{
		{"tampered request", tamperedReq, nil, nil, "does not match its own digest"},
		{"wrong PIN", req, nil, []string{"TEST_HSM_PIN=9999"}, "the token refused the PIN"},
		{"missing token", req, []string{"--key", "manufacturer=relic:gone"}, nil, "No token found"},
		{"key not the certificate's", req, []string{"--key", "manufacturer=relic:other"}, nil, "is not the key of the request's certificate"},
	}
	for _, c := range ceremonyCases {
		t.Run(c.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "response.json")
			code, msg := sign(t, c.req, out, c.extra, c.env...)
			if code != 1 || !strings.Contains(msg, c.want) {
				t.Errorf("exit %d, want 1 with %q:\n%s", code, c.want, msg)
			}
			mustNotExist(t, out, c.name)
		})
	}

	// Build-side refusals: a response altered, for another manifest, or
	// holding a signature by another key.
	mutate := func(name string, f func(*ceremony.Response), resign bool) string {
		rs, err := ceremony.ReadResponse(good)
		if err != nil {
			t.Fatal(err)
		}
		f(rs)
		var data []byte
		if resign {
			data, _ = rs.Marshal()
		} else {
			data, _ = json.MarshalIndent(rs, "", "  ")
		}
		path := filepath.Join(p.dir, name)
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	other, _ := signer.LoadSigner(absKey(t, "rsa3072.key"), absKey(t, "rsa3072.pem"), nil)
	byOtherKey := func(rs *ceremony.Response) {
		d, _ := hex.DecodeString(rs.Keys[0].Signatures[0].Digest)
		v, _ := other.SignDigest(imasig.SHA256, d)
		rs.Keys[0].Signatures[0].Value = hex.EncodeToString(v)
	}
	flipped := func(rs *ceremony.Response) {
		v, _ := hex.DecodeString(rs.Keys[0].Signatures[1].Value)
		v[len(v)-1] ^= 1
		rs.Keys[0].Signatures[1].Value = hex.EncodeToString(v)
	}
	// Another manifest: the same tree with another epoch, planned and signed.
	otherYAML := filepath.Join(p.dir, "other.yaml")
	ob, _ := os.ReadFile(p.hsmYAML)
	if err := os.WriteFile(otherYAML, bytes.Replace(ob, []byte("epoch: 1700000000"), []byte("epoch: 1700000001"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	otherReq, otherResp := filepath.Join(p.dir, "other-request.json"), filepath.Join(p.dir, "other-response.json")
	if code, out, errOut := run(t, "plan", "-o", otherReq, otherYAML); code != 0 {
		t.Fatalf("plan other: %d\n%s%s", code, out, errOut)
	}
	if code, out := sign(t, otherReq, otherResp, nil); code != 0 {
		t.Fatalf("sign other: %d\n%s", code, out)
	}
	// A changed file after the plan.
	changedTree := func() func() {
		f := filepath.Join(p.rootfs, "bin/tool001")
		old, _ := os.ReadFile(f)
		if err := os.WriteFile(f, append(old, '!'), 0o755); err != nil {
			t.Fatal(err)
		}
		return func() { os.WriteFile(f, old, 0o755) }
	}
	buildCases := []struct {
		name   string
		resp   string
		before func() func()
		want   string
	}{
		{"response edited", mutate("edited.json", flipped, false), nil, "does not match its own digest"},
		{"signature altered, digest recomputed", mutate("altered.json", flipped, true), nil, "signature does not verify"},
		{"digest signed by another key", mutate("other-key.json", byOtherKey, true), nil, "no certificate with the signature's key id"},
		{"response for another manifest", otherResp, nil, "the response is for manifest other.yaml"},
		{"digest missing", mutate("missing.json", func(rs *ceremony.Response) { rs.Keys[0].Signatures = rs.Keys[0].Signatures[1:] }, true), nil, "no signature for this digest"},
		{"file changed since the plan", good, changedTree, "the file changed since the plan"},
	}
	// ceremony verify refuses the responses that do not answer the request.
	for _, c := range buildCases[:5] {
		if code, out, errOut := run(t, "ceremony", "verify", req, c.resp); code != 1 {
			t.Errorf("ceremony verify %s: exit %d, want 1\n%s%s", c.name, code, out, errOut)
		}
	}
	for _, c := range buildCases {
		t.Run(c.name, func(t *testing.T) {
			if c.before != nil {
				defer c.before()()
			}
			code, out, errOut := run(t, "build", "--quiet", "--signatures", c.resp, p.hsmYAML)
			if code == 0 || !strings.Contains(errOut, c.want) {
				t.Errorf("exit %d, want failure with %q:\n%s%s", code, c.want, out, errOut)
			}
			mustNotExist(t, p.image(), c.name)
		})
	}
	// And the good response still builds.
	if code, out, errOut := run(t, "build", "--quiet", "--signatures", good, p.hsmYAML); code != 0 {
		t.Fatalf("good response: %d\n%s%s", code, out, errOut)
	}
}

var signedRE = regexp.MustCompile(`signed (\d+) digests \((\d+) resumed`)

// TestCeremonyResume kills a ceremony (SIGKILL) part-way and runs it again:
// the signatures in the journal are kept and only the rest are signed.
func TestCeremonyResume(t *testing.T) {
	hsm, env := softHSMForCLI(t)
	p := newCeremonyProject(t, hsm, 150)
	req := filepath.Join(p.dir, "request.json")
	if code, out, errOut := run(t, "plan", "-o", req, p.hsmYAML); code != 0 {
		t.Fatalf("plan: %d\n%s%s", code, out, errOut)
	}
	r, _ := ceremony.ReadRequest(req)
	total := r.Digests()
	resp := filepath.Join(p.dir, "response.json")
	journal := resp + ceremony.JournalSuffix
	args := []string{"ceremony", "sign", "--yes", "--quiet", "--sessions", "1", "--relic-config", p.relic, "--pin-env", "TEST_HSM_PIN", "-o", resp, req}

	cmd := child(env, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill once some signatures are journaled (header + 10 lines).
	deadline := time.Now().Add(60 * time.Second)
	for {
		b, _ := os.ReadFile(journal)
		if bytes.Count(b, []byte("\n")) >= 11 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("no journal progress:\n%s", out.String())
		}
		time.Sleep(time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	mustNotExist(t, resp, "killed ceremony")
	b, err := os.ReadFile(journal)
	if err != nil {
		t.Fatalf("journal: %v\n%s", err, out.String())
	}
	kept := bytes.Count(b, []byte("\n")) - 1
	t.Logf("killed after %d of %d signatures", kept, total)
	// The killed ceremony left its started record, with no end.
	if code, vout, verr := run(t, "ceremony", "audit", "verify", resp+".audit.jsonl"); code != 0 ||
		!strings.Contains(vout, "1 records") || !strings.Contains(vout, "line 1: a ceremony started and never ended") {
		t.Errorf("audit after SIGKILL: exit %d\n%s%s", code, vout, verr)
	}
	if kept >= total {
		t.Fatalf("the ceremony finished (%d of %d) before it was killed", kept, total)
	}

	code, cout := runChild(t, env, args...)
	m := signedRE.FindStringSubmatch(cout)
	if code != 0 || m == nil {
		t.Fatalf("resumed ceremony: exit %d\n%s", code, cout)
	}
	signed, resumed := atoi(m[1]), atoi(m[2])
	if resumed != kept || signed != total-kept {
		t.Errorf("resumed %d (journal had %d), signed %d (want %d): nothing may be signed twice", resumed, kept, signed, total-kept)
	}
	rs, err := ceremony.ReadResponse(resp)
	if err != nil {
		t.Fatal(err)
	}
	if err := ceremony.CheckResponse(r, rs); err != nil {
		t.Fatal(err)
	}
	mustNotExist(t, journal, "finished ceremony")
	if code, out, errOut := run(t, "build", "--quiet", "--signatures", resp, p.hsmYAML); code != 0 {
		t.Fatalf("build: %d\n%s%s", code, out, errOut)
	}
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

// TestCeremonyEvmctlRoute: plan --format sha256sum | evmctl sign_hash, then
// build --signatures with its output gives the PEM-built image; a line
// signed by another key is refused.
func TestCeremonyEvmctlRoute(t *testing.T) {
	evmctl := testenv.NeedTool(t, "evmctl")
	p := newCeremonyProject(t, nil, 6)
	if code, out, errOut := run(t, "build", "--quiet", p.pemYAML); code != 0 {
		t.Fatalf("pem build: %d\n%s%s", code, out, errOut)
	}
	_, want := p.take(t, "pem.sqsh")

	code, sums, errOut := run(t, "plan", "--format", "sha256sum", p.pemYAML)
	if code != 0 || strings.Count(sums, "\n") != len(p.signed)-1 || !strings.Contains(errOut, "request sha256") {
		t.Fatalf("plan --format sha256sum: %d\n%s%s", code, sums, errOut)
	}
	signHash := func(key string) string {
		cmd := exec.Command(evmctl, "sign_hash", "-a", "sha256", "--key", absKey(t, key))
		cmd.Stdin = strings.NewReader(sums)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("evmctl sign_hash: %v", err)
		}
		path := filepath.Join(p.dir, key+".sigs")
		if err := os.WriteFile(path, out, 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	sigs := signHash("rsa2048.key")
	if code, out, errOut := run(t, "build", "--quiet", "--signatures", sigs, p.pemYAML); code != 0 {
		t.Fatalf("build --signatures (evmctl): %d\n%s%s", code, out, errOut)
	}
	img, got := p.take(t, "evmctl.sqsh")
	if got != want {
		t.Errorf("evmctl-signed build %s, PEM build %s", got, want)
	}
	verifyImage(t, img, p.signed, p.unsigned)

	// evmctl output signed by another key, or with one value altered.
	otherSigs := signHash("rsa3072.key")
	b, _ := os.ReadFile(sigs)
	lines := strings.SplitAfter(string(b), "\n")
	l := []byte(lines[2])
	i := len(l) - 3 // a hex digit of the signature
	if l[i] == '0' {
		l[i] = '1'
	} else {
		l[i] = '0'
	}
	lines[2] = string(l)
	altered := filepath.Join(p.dir, "altered.sigs")
	if err := os.WriteFile(altered, []byte(strings.Join(lines, "")), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ file, want string }{
		{otherSigs, "which no key of the manifest has"},
		{altered, "altered.sigs:3:"},
	} {
		code, out, errOut := run(t, "build", "--quiet", "--signatures", c.file, p.pemYAML)
		if code == 0 || !strings.Contains(errOut, c.want) {
			t.Errorf("%s: exit %d, want failure with %q\n%s%s", c.file, code, c.want, out, errOut)
		}
		mustNotExist(t, p.image(), c.file)
	}
}

// TestCeremonyFailsClosed: with SoftHSM, an audit transcript that cannot be
// written stops the ceremony before the token signs anything (it used to
// sign every digest and write the response), and a second ceremony on a
// response another one holds is refused, naming the holder.
func TestCeremonyFailsClosed(t *testing.T) {
	hsm, env := softHSMForCLI(t)
	p := newCeremonyProject(t, hsm, 4)
	req := filepath.Join(p.dir, "request.json")
	if code, out, errOut := run(t, "plan", "-o", req, p.hsmYAML); code != 0 {
		t.Fatalf("plan: %d\n%s%s", code, out, errOut)
	}
	resp := filepath.Join(p.dir, "response.json")
	sign := func(audit string) (int, string) {
		return runChild(t, env, "ceremony", "sign", "--yes", "--relic-config", p.relic, "--pin-env", "TEST_HSM_PIN", "--audit", audit, "-o", resp, req)
	}
	code, out := sign(filepath.Join(p.dir, "no-such-dir", "audit.jsonl"))
	if code != 1 || !strings.Contains(out, "audit transcript") || !strings.Contains(out, "no such file or directory") {
		t.Errorf("unwritable audit: exit %d\n%s", code, out)
	}
	mustNotExist(t, resp, "unaudited ceremony")
	mustNotExist(t, resp+ceremony.JournalSuffix, "unaudited ceremony")

	lock, err := ceremony.LockResponse(resp, ceremony.NewLockHolder("first", time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	code, out = sign(filepath.Join(p.dir, "audit.jsonl"))
	if code != 1 || !strings.Contains(out, "another ceremony is signing this response") || !strings.Contains(out, fmt.Sprintf("pid %d", os.Getpid())) {
		t.Errorf("locked response: exit %d\n%s", code, out)
	}
	mustNotExist(t, resp+ceremony.JournalSuffix, "locked ceremony")
	if err := lock.Unlock(); err != nil {
		t.Fatal(err)
	}
	if code, out = sign(filepath.Join(p.dir, "audit.jsonl")); code != 0 {
		t.Fatalf("after unlock: exit %d\n%s", code, out)
	}
}

// TestCeremonyEvmctlOddNames: the evmctl route on a tree whose file names
// hold a backslash (systemd's escaped unit names, in every Debian root), a
// newline and bytes that are not UTF-8, plus this machine's systemd unit
// names, gives the image built with the key file, byte for byte. With
// GNU sha256sum's escaped lines evmctl 1.4 signed the previous line's digest
// for each such name and the build failed.
func TestCeremonyEvmctlOddNames(t *testing.T) {
	evmctl := testenv.NeedTool(t, "evmctl")
	p := newCeremonyProject(t, nil, 2)
	odd := []string{
		`system-systemd\x2dcryptsetup.slice`, `dev-disk-by\x2dlabel-root.device`, "new\nline", "bad\xff\xfeutf8",
		`back\\slash`, "tab\there", "carriage\rreturn", `"quoted"`, "with space",
	}
	units, _ := os.ReadDir("/usr/lib/systemd/system")
	dir := filepath.Join(p.rootfs, "lib/systemd/system")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	names := odd
	for _, u := range units {
		if !slices.Contains(names, u.Name()) {
			names = append(names, u.Name())
		}
	}
	for i, n := range names {
		// Distinct content, so each name is the one its digest's line shows.
		if err := os.WriteFile(filepath.Join(dir, n), []byte(fmt.Sprintf("unit %d %q\n", i, n)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if code, out, errOut := run(t, "build", "--quiet", p.pemYAML); code != 0 {
		t.Fatalf("pem build: %d\n%s%s", code, out, errOut)
	}
	_, want := p.take(t, "pem.sqsh")

	code, sums, errOut := run(t, "plan", "--format", "sha256sum", p.pemYAML)
	if code != 0 {
		t.Fatalf("plan: %d\n%s", code, errOut)
	}
	if n := strings.Count(sums, "\n"); n != len(p.signed)-1+len(names) {
		t.Fatalf("%d lines for %d unique digests:\n%s", n, len(p.signed)-1+len(names), sums)
	}
	for _, l := range strings.Split(sums, "\n") {
		if strings.HasPrefix(l, `\`) {
			t.Errorf("escaped line evmctl misreads: %q", l)
		}
	}
	cmd := exec.Command(evmctl, "sign_hash", "-a", "sha256", "--key", absKey(t, "rsa2048.key"))
	cmd.Stdin = strings.NewReader(sums)
	signed, err := cmd.Output()
	if err != nil {
		t.Fatalf("evmctl sign_hash: %v", err)
	}
	sigs := filepath.Join(p.dir, "signed.txt")
	if err := os.WriteFile(sigs, signed, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out, errOut := run(t, "build", "--quiet", "--signatures", sigs, p.pemYAML); code != 0 {
		t.Fatalf("build --signatures: %d\n%s%s", code, out, errOut)
	}
	if _, got := p.take(t, "evmctl.sqsh"); got != want {
		t.Errorf("evmctl-signed build %s, PEM build %s", got, want)
	}
}

// twoTokenProject is a manifest with two keys, manufacturer (rsa2048 on
// SoftHSM token "fw", PIN 1234) and tenant (rsa3072 on token "t2", PIN
// 5678), planned into request.json; relic(tenantPIN) writes a relic
// configuration, with a pin for t2 when tenantPIN is not empty.
type twoTokenProject struct {
	*ceremonyProject
	hsm *ceremonytest.SoftHSM
	req string
}

func newTwoTokenProject(t *testing.T) *twoTokenProject {
	t.Helper()
	hsm := ceremonytest.New(t)
	hsm.InitToken(t, "fw", "1234")
	hsm.InitToken(t, "t2", "5678")
	hsm.ImportKey(t, "fw", "1234", absKey(t, "rsa2048.key"), "ima", "01")
	hsm.ImportKey(t, "t2", "5678", absKey(t, "rsa3072.key"), "tenant", "02")
	p := &twoTokenProject{ceremonyProject: newCeremonyProject(t, nil, 4), hsm: hsm}
	if err := os.MkdirAll(filepath.Join(p.rootfs, "opt/tenant"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p.rootfs, "opt/tenant/app"), []byte("tenant app\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	m := fmt.Sprintf(`version: 1
image: {output: out/firmware.sqsh, compression: zstd, level: 3, epoch: 1700000000, owner: {uid: 0, gid: 0}}
hash: sha256
keys:
  manufacturer: {cert: %s, key: "relic:ima", relic_config: relic.yaml}
  tenant: {cert: %s, key: "relic:tenant", relic_config: relic.yaml}
sources: [{from: rootfs/, to: /}]
rules:
  - {match: /var/**, sign: false}
  - {match: /opt/tenant/**, key: tenant}
  - {match: /**, key: manufacturer}
`, absKey(t, "rsa2048.pem"), absKey(t, "rsa3072.pem"))
	p.hsmYAML = filepath.Join(p.dir, "two.yaml")
	if err := os.WriteFile(p.hsmYAML, []byte(m), 0o644); err != nil {
		t.Fatal(err)
	}
	p.req = filepath.Join(p.dir, "request.json")
	if code, out, errOut := run(t, "plan", "-o", p.req, p.hsmYAML); code != 0 {
		t.Fatalf("plan: %d\n%s%s", code, out, errOut)
	}
	return p
}

func (p *twoTokenProject) relicConfig(t *testing.T, name, tenantPIN string) string {
	t.Helper()
	pin := ""
	if tenantPIN != "" {
		pin = fmt.Sprintf("    pin: %q\n", tenantPIN)
	}
	s := fmt.Sprintf(`tokens:
  hsm:
    type: pkcs11
    provider: %s
    label: fw
  tenant-hsm:
    type: pkcs11
    provider: %s
    label: t2
%skeys:
  ima: {token: hsm, label: ima}
  tenant: {token: tenant-hsm, label: tenant}
`, p.hsm.Module, p.hsm.Module, pin)
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestCeremonyTwoTokens: two keys on two tokens with different PINs sign
// unattended with a PIN source per token (by relic token name or token
// label), or with a PIN written for one token in the relic configuration,
// which the PIN for every token no longer overrides. A token whose PIN is
// wrong fails with exit 1 and names the token.
func TestCeremonyTwoTokens(t *testing.T) {
	p := newTwoTokenProject(t)
	env := []string{p.hsm.Env(), "PIN_A=1234", "PIN_B=5678"}
	plain := p.relicConfig(t, "relic.yaml", "")
	withPIN := p.relicConfig(t, "relic-pin.yaml", "5678")
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"a PIN per token name", []string{"--relic-config", plain, "--pin-env", "hsm=PIN_A", "--pin-env", "tenant-hsm=PIN_B"}, 0, "signed 6 digests"},
		{"a PIN per token label, one from a file", []string{"--relic-config", plain, "--pin-env", "fw=PIN_A", "--pin-file", "t2=" + writePIN(t, "5678")}, 0, "signed 6 digests"},
		{"configured PIN kept beside the PIN for every token", []string{"--relic-config", withPIN, "--pin-env", "PIN_A"}, 0, "signed 6 digests"},
		{"one PIN for two tokens", []string{"--relic-config", plain, "--pin-env", "PIN_A"}, 1, `open token "tenant-hsm": wrong or missing passphrase: the token refused the PIN`},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp := filepath.Join(p.dir, fmt.Sprintf("response%d.json", i))
			args := append([]string{"ceremony", "sign", "--yes", "-o", resp}, c.args...)
			code, out := runChild(t, env, append(args, p.req)...)
			if code != c.code || !strings.Contains(out, c.want) {
				t.Fatalf("exit %d, want %d with %q\n%s", code, c.code, c.want, out)
			}
			if code != 0 {
				mustNotExist(t, resp, c.name)
				return
			}
			if code, out, errOut := run(t, "build", "--quiet", "--signatures", resp, p.hsmYAML); code != 0 {
				t.Fatalf("build: %d\n%s%s", code, out, errOut)
			}
			os.Remove(p.image())
		})
	}
}

func writePIN(t *testing.T, pin string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pin")
	if err := os.WriteFile(path, []byte(pin+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTokenPrompt(t *testing.T) {
	for _, c := range []struct {
		id   signer.TokenIdentity
		want string
	}{
		{signer.TokenIdentity{Token: "hsm", Label: "fw", Serial: "a1ef", Key: "ima"}, `PIN of token "hsm" (label "fw", serial a1ef) for key "ima": `},
		{signer.TokenIdentity{Token: "hsm", Key: "ima"}, `PIN of token "hsm" for key "ima": `},
	} {
		if got := tokenPrompt(c.id); got != c.want {
			t.Errorf("got %q, want %q", got, c.want)
		}
	}
}

// TestKeyErrorExitCodes: a wrong PIN, a missing PKCS#11 module or token are
// key failures (exit 1, as the documented table says), not usage errors
// (build said exit 2); the messages name the module's path and the
// loader's reason, and the tokens that exist.
func TestKeyErrorExitCodes(t *testing.T) {
	hsm, env := softHSMForCLI(t)
	p := newCeremonyProject(t, hsm, 2)
	manifestWith := func(name, key string) string {
		b, _ := os.ReadFile(p.hsmYAML)
		path := filepath.Join(p.dir, name)
		if err := os.WriteFile(path, bytes.Replace(b, []byte("key: relic:ima"), []byte(key), 1), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	noModule := manifestWith("nomodule.yaml", `key: "pkcs11:token=fw;object=ima?module-path=/nonexistent/libp11.so"`)
	if b, _ := os.ReadFile(noModule); true {
		if err := os.WriteFile(noModule, bytes.Replace(b, []byte(", relic_config: relic.yaml"), nil, 1), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	noToken := manifestWith("notoken.yaml", "key: relic:gone")
	req := filepath.Join(p.dir, "request.json")
	if code, out, errOut := run(t, "plan", "-o", req, p.hsmYAML); code != 0 {
		t.Fatalf("plan: %d\n%s%s", code, out, errOut)
	}
	sign := []string{"ceremony", "sign", "--yes", "--relic-config", p.relic, "--pin-env", "TEST_HSM_PIN", "-o", filepath.Join(p.dir, "r.json")}
	cases := []struct {
		name string
		env  []string
		args []string
		want []string
	}{
		{"build, wrong PIN", []string{"TEST_HSM_PIN=9999"}, []string{"build", "--quiet", p.hsmYAML}, []string{"the token refused the PIN"}},
		{"build, missing module", nil, []string{"build", "--quiet", noModule}, []string{"PKCS#11 module /nonexistent/libp11.so does not load", "No such file or directory"}},
		{"build, missing token", nil, []string{"build", "--quiet", noToken}, []string{"No token found", `label "fw" serial`}},
		{"ceremony, wrong PIN", []string{"TEST_HSM_PIN=9999"}, append(sign, req), []string{"the token refused the PIN"}},
		{"ceremony, missing module", nil, append(sign, "--key", `manufacturer=pkcs11:object=ima?module-path=/nonexistent/libp11.so`, req), []string{"/nonexistent/libp11.so does not load"}},
		{"ceremony, missing token", nil, append(sign, "--key", "manufacturer=relic:gone", req), []string{"No token found", `label "fw" serial`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out := runChild(t, append(append([]string{}, env...), c.env...), c.args...)
			if code != 1 {
				t.Errorf("exit %d, want 1\n%s", code, out)
			}
			for _, w := range c.want {
				if !strings.Contains(out, w) {
					t.Errorf("no %q in\n%s", w, out)
				}
			}
			mustNotExist(t, p.image(), c.name)
		})
	}
}

// TestCeremonyTokens: ceremony tokens lists the SoftHSM tokens of a relic
// configuration's module with their serials and key objects; a module that
// does not load is named with the reason and exits 1.
func TestCeremonyTokens(t *testing.T) {
	p := newTwoTokenProject(t)
	relic := p.relicConfig(t, "relic.yaml", "")
	code, out := runChild(t, []string{p.hsm.Env()}, "ceremony", "tokens", "--relic-config", relic)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, out)
	}
	for _, want := range []string{"module " + p.hsm.Module, `token "fw" serial "`, `token "t2" serial "`, "SoftHSM v2",
		`public-key  label "ima" id 01`, `public-key  label "tenant" id 02`} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
	code, out = runChild(t, []string{p.hsm.Env()}, "ceremony", "tokens", "--module", "/nonexistent/p11.so", "--module", p.hsm.Module)
	if code != 1 || !strings.Contains(out, "PKCS#11 module /nonexistent/p11.so does not load: /nonexistent/p11.so: cannot open shared object file") ||
		!strings.Contains(out, `token "t2"`) {
		t.Errorf("exit %d\n%s", code, out)
	}
	// --json: every module, the one that does not load with its error, exit 1
	cmd := child([]string{p.hsm.Env()}, "ceremony", "tokens", "--json", "--module", "/nonexistent/p11.so", "--module", p.hsm.Module)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	err := cmd.Run()
	var mods []struct {
		Module, Error string
		Tokens        []signer.TokenInfo
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Errorf("tokens --json: %v", err)
	}
	if err := json.Unmarshal(stdout.Bytes(), &mods); err != nil || len(mods) != 2 ||
		!strings.Contains(mods[0].Error, "cannot open shared object file") || len(mods[0].Tokens) != 0 ||
		mods[1].Error != "" || len(mods[1].Tokens) != 2 || mods[1].Tokens[0].Label == mods[1].Tokens[1].Label ||
		len(mods[1].Tokens[0].Objects) == 0 || len(mods[1].Tokens[1].Objects) == 0 {
		t.Errorf("tokens --json: %v\n%s", err, stdout.Bytes())
	}
}
