package verify_test

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/imaforge/imaforge/pki"
	"github.com/imaforge/imaforge/policy"
	"github.com/imaforge/imaforge/squashfs"
	"github.com/imaforge/imaforge/verify"
)

var (
	fxOnce sync.Once
	fx     *fixture
	fxRoot string // removed by TestMain
)

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "verify-test")
	if err != nil {
		panic(err)
	}
	fxRoot = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

// shared builds the fixture once for the package's tests (key generation and
// two builds are the slow part).
func shared(t testing.TB) *fixture {
	fxOnce.Do(func() { fx = newFixture(&onceTB{TB: t}) })
	if fx == nil {
		t.Fatal("fixture failed")
	}
	return fx
}

// onceTB puts the fixture's files where they outlive the first test.
type onceTB struct {
	testing.TB
}

func (o *onceTB) TempDir() string {
	d, err := os.MkdirTemp(fxRoot, "fx")
	if err != nil {
		o.TB.Fatal(err)
	}
	return d
}

func run(t *testing.T, img []byte, opts verify.Options) *verify.Report {
	t.Helper()
	rep, err := verify.Image(context.Background(), bytes.NewReader(img), int64(len(img)), opts)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// want checks that the files named have exactly problems with these reasons
// (in any order) and that every other file has none.
func want(t *testing.T, rep *verify.Report, failures map[string][]verify.Reason) {
	t.Helper()
	for _, f := range rep.Files {
		var got []string
		for _, p := range f.Problems {
			got = append(got, string(p.Reason))
		}
		var exp []string
		for _, r := range failures[f.Path] {
			exp = append(exp, string(r))
		}
		if strings.Join(sorted(got), ",") != strings.Join(sorted(exp), ",") {
			t.Errorf("%s: reasons %v, want %v (%+v)", f.Path, got, exp, f.Problems)
		}
	}
	for p := range failures {
		if rep.File(p) == nil {
			t.Errorf("%s not in the report", p)
		}
	}
	if rep.OK != (len(failures) == 0) {
		t.Errorf("report OK = %v with %d expected failures", rep.OK, len(failures))
	}
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j] < out[j-1]; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func TestVerifyClean(t *testing.T) {
	fx := shared(t)
	rep := run(t, fx.clean, verify.Options{Trust: fx.trust(t, nil), At: time.Now()})
	want(t, rep, nil)
	s := rep.Summary
	if s.Files != 8 || s.Signed != 7 || s.Unsigned != 1 || s.Failed != 0 {
		t.Errorf("summary %+v: want 8 files, 7 signed, 1 unsigned", s)
	}
	if f := rep.File("/var/log/boot.log"); f.Status != verify.StatusUnsigned || f.Appraisal != nil {
		t.Errorf("boot.log: %+v, want unsigned and not appraised", f)
	}
	// the fragment's squashfs-exec rules appraise the executables
	if s.Rules == 0 || s.Appraised != 5 || s.Refused != 0 {
		t.Errorf("coverage %+v: want rules, 5 executables appraised (policy fragment included), none refused", s)
	}
	if len(rep.Policies) != 1 || !rep.Policies[0].Loaded || rep.Policies[0].Path != "/etc/ima/policy.d/50-exec.policy" {
		t.Errorf("policies %+v", rep.Policies)
	}
	if f := rep.File("/etc/ima/policy.d/50-exec.policy"); !f.Policy || f.Status != verify.StatusOK {
		t.Errorf("fragment %+v: want a verified policy file", f)
	}
	bySubject := map[string]int{}
	for _, sg := range rep.Signers {
		if !sg.Trusted {
			t.Errorf("signer %+v not trusted", sg)
		}
		bySubject[sg.Subject] = sg.Files
	}
	if bySubject["CN=Test Manufacturing IMA"] != 5 || bySubject["CN=ACME tenant IMA"] != 2 {
		t.Errorf("signers %+v: want manufacturer 5 files, tenant 2", rep.Signers)
	}
	// dates unchecked, all workers counts give the same report
	for _, w := range []int{1, 3} {
		r2 := run(t, fx.clean, verify.Options{Trust: fx.trust(t, nil), Workers: w})
		if r2.CheckedAt != nil || !r2.OK || r2.Summary != rep.Summary {
			t.Errorf("workers %d: %+v", w, r2.Summary)
		}
	}
	// The JSON report has the documented top-level fields.
	b, err := json.Marshal(rep)
	check(t, err)
	var top map[string]json.RawMessage
	check(t, json.Unmarshal(b, &top))
	for _, k := range []string{"format", "image", "checked_at", "kernel", "ok", "summary", "reasons", "signers", "policies", "files"} {
		if _, ok := top[k]; !ok {
			t.Errorf("JSON report lacks %q", k)
		}
	}
}

// TestVerifyFindsTampering: each kind of tampering is found and named on the
// right file, and only there.
func TestVerifyFindsTampering(t *testing.T) {
	fx := shared(t)
	now := time.Now()
	frag := "/etc/ima/policy.d/50-exec.policy"

	// a CRL of the owner CA revoking the tenant key, made after the build
	crl, _, err := pki.UpdateCRL(nil, pki.Issuer{Cert: fx.owner.Cert, Key: fx.owner.Key},
		pki.CRLUpdate{Revoke: []*x509.Certificate{fx.tenant.Cert}}, pki.Options{})
	check(t, err)

	toolSig, otherSig := imaValue(t, fx.clean, "/usr/bin/tool"), imaValue(t, fx.clean, "/usr/bin/other")
	swapped := replaceOnce(t, fx.clean, toolSig, bytes.Repeat([]byte{0xAA}, len(toolSig)))
	swapped = replaceOnce(t, swapped, otherSig, toolSig)
	swapped = replaceOnce(t, swapped, bytes.Repeat([]byte{0xAA}, len(toolSig)), otherSig)

	appA := strings.Repeat("a", 100)
	appB := strings.Repeat("b", 100)
	crafted := func(entries ...entry) []byte { return writeImage(t, entries) }

	tests := []struct {
		name  string
		img   []byte
		opts  verify.Options
		fails map[string][]verify.Reason
		// msg: a file whose first problem message must contain a string
		msgPath, msgHas string
	}{
		{
			name:    "flipped byte in file data",
			img:     replaceOnce(t, fx.clean, []byte("TOOL-MARKER"), []byte("TOOL-MARKEX")),
			fails:   map[string][]verify.Reason{"/usr/bin/tool": {verify.ReasonDigestMismatch, verify.ReasonPolicyRefused}},
			msgPath: "/usr/bin/tool", msgHas: "changed after signing",
		},
		{
			name: "swapped signatures (RSA)",
			img:  swapped,
			fails: map[string][]verify.Reason{
				"/usr/bin/tool":  {verify.ReasonDigestMismatch, verify.ReasonPolicyRefused},
				"/usr/bin/other": {verify.ReasonDigestMismatch, verify.ReasonPolicyRefused},
			},
			msgPath: "/usr/bin/tool", msgHas: "content of /usr/bin/other",
		},
		{
			name: "swapped signatures (ECDSA)",
			img: crafted(
				entry{"/opt/acme/a", 0o755, appA, sign(t, fx.tenS, appB)},
				entry{"/opt/acme/b", 0o755, appB, sign(t, fx.tenS, appA)},
			),
			fails: map[string][]verify.Reason{
				"/opt/acme/a": {verify.ReasonDigestMismatch},
				"/opt/acme/b": {verify.ReasonDigestMismatch},
			},
			msgPath: "/opt/acme/a", msgHas: "content of /opt/acme/b",
		},
		{
			name:  "untrusted key, certificate unknown",
			img:   crafted(entry{"/usr/bin/x", 0o755, appA, sign(t, fx.rogS, appA)}),
			fails: map[string][]verify.Reason{"/usr/bin/x": {verify.ReasonUnknownKey}},
		},
		{
			name:  "untrusted key, certificate given but not chaining to the root",
			img:   crafted(entry{"/usr/bin/x", 0o755, appA, sign(t, fx.rogS, appA)}),
			opts:  verify.Options{Trust: fx.trust(t, nil, fx.rogue.Cert)},
			fails: map[string][]verify.Reason{"/usr/bin/x": {verify.ReasonUntrustedChain}},
		},
		{
			name: "revoked key (CRL made after the build)",
			img:  fx.clean,
			opts: verify.Options{Trust: fx.trust(t, []*x509.RevocationList{crl})},
			fails: map[string][]verify.Reason{
				// revoked keys are blacklisted on the device: the kernel refuses too
				"/opt/acme/bin/app":    {verify.ReasonRevoked, verify.ReasonPolicyRefused},
				"/opt/acme/bin/helper": {verify.ReasonRevoked, verify.ReasonPolicyRefused},
			},
		},
		{
			name: "expired keys (checked two years on)",
			img:  fx.clean,
			opts: verify.Options{At: now.AddDate(2, 0, 0)},
			fails: map[string][]verify.Reason{
				"/usr/bin/tool": {verify.ReasonExpired}, "/usr/bin/other": {verify.ReasonExpired},
				"/usr/lib/libx.so": {verify.ReasonExpired}, "/etc/conf": {verify.ReasonExpired},
				frag:                {verify.ReasonExpired},
				"/opt/acme/bin/app": {verify.ReasonExpired}, "/opt/acme/bin/helper": {verify.ReasonExpired},
			},
		},
		{
			name:  "tenant key outside its scope",
			img:   crafted(entry{"/usr/bin/evil", 0o755, appA, sign(t, fx.tenS, appA)}, entry{"/opt/acme/ok", 0o755, appB, sign(t, fx.tenS, appB)}),
			fails: map[string][]verify.Reason{"/usr/bin/evil": {verify.ReasonOutOfScope}},
		},
		{
			name:    "unsigned executable under an appraise rule",
			img:     fx.withExec,
			fails:   map[string][]verify.Reason{"/var/lib/run.sh": {verify.ReasonPolicyRefused}},
			msgPath: "/var/lib/run.sh", msgHas: "BPRM_CHECK",
		},
		{
			name: "tampered policy fragment",
			img:  replaceOnce(t, fx.clean, []byte("BPRM_CHECK fsmagic=0x73717368 appraise_type"), []byte("BPRM_CHECK fsmagic=0x73717369 appraise_type")),
			// its rules are not in force any more: nothing else is appraised
			fails:   map[string][]verify.Reason{frag: {verify.ReasonDigestMismatch}},
			msgPath: frag, msgHas: "changed after signing",
		},
		{
			name: "policy fragment the kernel would reject, validly signed",
			img: crafted(entry{"/etc/ima/policy.d/10-bad.policy", 0o444, "appraise func=BPRM_CHECK appraise_type=bogus\n",
				sign(t, fx.mfrS, "appraise func=BPRM_CHECK appraise_type=bogus\n")}),
			fails: map[string][]verify.Reason{"/etc/ima/policy.d/10-bad.policy": {verify.ReasonPolicyLint}},
		},
		{
			name: "malformed values",
			img: crafted(
				entry{"/a", 0o644, appA, append(sign(t, fx.mfrS, appA), 0)}, // sig_size no longer matches
				entry{"/b", 0o644, appB, []byte{0x02, 1, 2, 3}},             // EVM HMAC, truncated
				entry{"/c", 0o644, appA, func() []byte { v := sign(t, fx.mfrS, appA); v[len(v)-1] ^= 1; return v }()},
			),
			fails: map[string][]verify.Reason{"/a": {verify.ReasonBadFormat}, "/b": {verify.ReasonBadFormat}, "/c": {verify.ReasonBadSignature}},
		},
		{
			name:  "unsigned with RequireSignatures",
			img:   fx.clean,
			opts:  verify.Options{RequireSignatures: true},
			fails: map[string][]verify.Reason{"/var/log/boot.log": {verify.ReasonUnsigned}},
		},
		{
			name: "a --policy rule appraising reads refuses the unsigned log",
			img:  fx.clean,
			opts: verify.Options{Policies: []verify.PolicyFile{{Name: "device.policy",
				Data: []byte("appraise func=FILE_CHECK mask=^MAY_READ fsmagic=0x73717368 appraise_type=imasig\n")}}},
			fails:   map[string][]verify.Reason{"/var/log/boot.log": {verify.ReasonPolicyRefused}},
			msgPath: "/var/log/boot.log", msgHas: "device.policy:1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			if opts.Trust == nil {
				opts.Trust = fx.trust(t, nil)
			}
			if opts.At.IsZero() {
				opts.At = now
			}
			rep := run(t, tt.img, opts)
			want(t, rep, tt.fails)
			if tt.msgPath != "" {
				f := rep.File(tt.msgPath)
				if f == nil || len(f.Problems) == 0 || !strings.Contains(f.Problems[0].Message, tt.msgHas) {
					t.Errorf("%s: problems %+v, want the first to mention %q", tt.msgPath, f, tt.msgHas)
				}
			}
			var text bytes.Buffer
			check(t, rep.WriteText(&text, false))
			for p := range tt.fails {
				if !strings.Contains(text.String(), "FAIL     "+p+": ") {
					t.Errorf("text report does not name %s:\n%s", p, text.String())
				}
			}
			if !strings.Contains(text.String(), "result: FAILED") {
				t.Errorf("text report does not say FAILED:\n%s", text.String())
			}
		})
	}
}

// TestVerifyKernelSeries: a fragment valid on 6.1 but using a keyword an
// older kernel lacks is a lint failure when verifying for that kernel.
func TestVerifyKernelSeries(t *testing.T) {
	fx := shared(t)
	text := "appraise func=BPRM_CHECK fsmagic=0x73717368 appraise_type=imasig appraise_algos=sha256\n"
	img := writeImage(t, []entry{{"/etc/ima/ima-policy", 0o444, text, sign(t, fx.mfrS, text)}})
	for _, tt := range []struct {
		v    policy.Version
		fail bool
	}{{policy.V5_10, true}, {policy.V6_1, false}} {
		rep := run(t, img, verify.Options{Trust: fx.trust(t, nil), Kernel: tt.v})
		if got := rep.File("/etc/ima/ima-policy").Has(verify.ReasonPolicyLint); got != tt.fail {
			t.Errorf("kernel %s: policy-lint %v, want %v: %+v", tt.v, got, tt.fail, rep.Policies)
		}
	}
}

func TestVerifyImageErrors(t *testing.T) {
	fx := shared(t)
	for _, tt := range []struct {
		name string
		img  []byte
	}{
		{"empty", nil},
		{"truncated", fx.clean[:len(fx.clean)/2]},
		{"bad magic", append([]byte("nope"), fx.clean[4:]...)},
	} {
		_, err := verify.Image(context.Background(), bytes.NewReader(tt.img), int64(len(tt.img)), verify.Options{})
		var ie *verify.ImageError
		if !errors.As(err, &ie) || !errors.Is(err, squashfs.ErrFormat) {
			t.Errorf("%s: error %v, want an *ImageError matching squashfs.ErrFormat", tt.name, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := verify.Image(ctx, bytes.NewReader(fx.clean), int64(len(fx.clean)), verify.Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func TestIsPolicyPath(t *testing.T) {
	for p, want := range map[string]bool{
		"/etc/ima/policy.d/50-acme.policy": true,
		"/etc/ima/policy.d/README":         true,
		"/etc/ima/ima-policy":              true,
		"/etc/ima/x.policy":                true,
		"/etc/ima/x509_ima.der":            false,
		"/etc/ima":                         false,
		"/etc/imax/a.policy":               false,
		"/usr/share/ima/a.policy":          false,
	} {
		if got := verify.IsPolicyPath(p); got != want {
			t.Errorf("IsPolicyPath(%q) = %v", p, got)
		}
	}
}

// TestVerifyBadPolicyOption: a --policy file the kernel would reject fails the
// report with its diagnostics, and its rules are not used.
func TestVerifyBadPolicyOption(t *testing.T) {
	fx := shared(t)
	bad := "appraise func=FILE_CHECK mask=^MAY_READ fsmagic=0x73717368 appraise_type=imasig\nappraise func=NOPE\n"
	rep := run(t, fx.clean, verify.Options{Trust: fx.trust(t, nil), Policies: []verify.PolicyFile{{Name: "dev.policy", Data: []byte(bad)}}})
	if rep.OK || rep.Summary.PolicyBad != 1 || rep.Summary.Failed != 0 {
		t.Errorf("summary %+v, OK %v: want one bad policy and no failed file", rep.Summary, rep.OK)
	}
	p := rep.Policies[0]
	if p.Loaded || len(p.Diagnostics) == 0 || !strings.HasPrefix(p.Diagnostics[0].Pos, "dev.policy:2:") {
		t.Errorf("policy %+v: want not loaded, a diagnostic at dev.policy:2", p)
	}
	if f := rep.File("/var/log/boot.log"); f.Appraisal != nil {
		t.Errorf("boot.log appraised by a rejected policy: %+v", f.Appraisal)
	}
}
