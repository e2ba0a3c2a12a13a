package attest

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/imaforge/imaforge/pipeline"
)

// validate checks v against a schema file as Keylime's
// validate_runtime_policy does (jsonschema.validate).
func validate(t *testing.T, schemaFile string, doc []byte) error {
	t.Helper()
	sch, err := jsonschema.UnmarshalJSON(bytes.NewReader(readFile(t, schemaFile)))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(schemaFile, sch); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(schemaFile)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		t.Fatal(err)
	}
	return s.Validate(inst)
}

// enforceReference is the reference of the kernel end-to-end test's image
// (its build record and exported certificates), mounted at /mnt.
func enforceReference(t *testing.T) (*Reference, *pipeline.Record) {
	t.Helper()
	var rec pipeline.Record
	if err := json.Unmarshal(readFile(t, "../testdata/e2e/enforce-sample/enforce.image.record.json"), &rec); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(readFile(t, "../testdata/e2e/enforce-sample/enforce.export/certs/02-ima-e2e-ima.der"))
	if err != nil {
		t.Fatal(err)
	}
	ref, notes, err := NewReference([]ImageSource{{Record: &rec, Mount: "/mnt"}}, []*x509.Certificate{cert}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "rogue") {
		t.Errorf("notes %q: want the rogue key (no certificate given) named", notes)
	}
	return ref, &rec
}

func TestKeylimePolicySchema(t *testing.T) {
	ref, rec := enforceReference(t)
	p, err := ref.Keylime(KeylimeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := validate(t, "testdata/keylime-runtime-policy.schema.json", b); err != nil {
		t.Fatalf("policy does not validate against Keylime's schema: %v\n%s", err, b)
	}
	if err := validate(t, "testdata/keylime-ima-keyring.schema.json", []byte(p.VerificationKeys)); err != nil {
		t.Fatalf("verification-keys does not validate against Keylime's keyring schema: %v", err)
	}
	// every signed file of the image is in the policy at its device path
	for _, f := range rec.Files {
		if got := p.Digests["/mnt"+f.Path]; len(got) != 1 || got[0] != f.Digest {
			t.Errorf("%s: policy has %v, want %s", f.Path, got, f.Digest)
		}
	}
	ids, err := keylimeKeyIDs(p.VerificationKeys)
	if err != nil || len(ids) != 1 || ids[0] != "7a6cb25c" {
		t.Errorf("verification key ids %v %v", ids, err)
	}
	// the schema is not vacuous: a policy missing a field or with an
	// upper-case digest fails
	var m map[string]any
	json.Unmarshal(b, &m)
	delete(m, "excludes")
	bad, _ := json.Marshal(m)
	if validate(t, "testdata/keylime-runtime-policy.schema.json", bad) == nil {
		t.Error("policy without excludes validates")
	}
	bad = bytes.Replace(b, []byte(rec.Files[0].Digest), []byte(strings.ToUpper(rec.Files[0].Digest)), 1)
	if validate(t, "testdata/keylime-runtime-policy.schema.json", bad) == nil {
		t.Error("upper-case digest validates")
	}
	// reproducible
	p2, _ := ref.Keylime(KeylimeOptions{})
	b2, _ := p2.Marshal()
	if !bytes.Equal(b, b2) {
		t.Error("two policies from the same reference differ")
	}
}

// The reference values verify the kernel's own measurement list of that
// image (the e2e sample, no TPM): the signed programs are trusted by digest.
func TestReferenceRoundTripAndKernelList(t *testing.T) {
	ref, _ := enforceReference(t)
	ref.BootAggregate = []string{"sha256:" + strings.Repeat("00", 32)}
	b, err := ref.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	ref2, err := ParseReference(b)
	if err != nil {
		t.Fatal(err)
	}
	if b2, _ := ref2.Marshal(); !bytes.Equal(b, b2) {
		t.Error("reference values do not round-trip")
	}
	l, err := Parse(readFile(t, "testdata/enforce.ascii"), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(l, Options{Reference: ref2})
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]EntryResult{}
	for _, e := range rep.Entries {
		byPath[e.Path] = e
	}
	if e := byPath["/mnt/bin/good"]; e.Verdict != VerdictTrusted {
		t.Errorf("/mnt/bin/good: %+v", e)
	}
	if e := byPath["boot_aggregate"]; e.Verdict != VerdictTrusted {
		t.Errorf("boot_aggregate: %+v", e)
	}
	for _, bad := range []string{`{"format":"x"}`, `{"format":"` + ReferenceFormat + `","images":[{"mount":"rel"}]}`, `{"format":"` + ReferenceFormat + `","boot_aggregate":["sha256:00"]}`, `{"format":"` + ReferenceFormat + `","extra":1}`} {
		if _, err := ParseReference([]byte(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	_ = os.Stdout
}
