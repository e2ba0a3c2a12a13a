package attest

import (
	"bytes"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"testing"

	"github.com/imaforge/imaforge/pki"
)

func loadPEM(t *testing.T, name string) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(readFile(t, name))
	if b == nil {
		t.Fatalf("%s: no PEM", name)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The kernel's own lists and quotes (testdata/kernel/README.md).
func kernelInputs(t *testing.T) (*Reference, *AK) {
	t.Helper()
	ref, err := ParseReference(readFile(t, "testdata/kernel/ref.json"))
	if err != nil {
		t.Fatal(err)
	}
	ak, err := ParseAK(readFile(t, "testdata/kernel/ak.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return ref, ak
}

func kernelQuote(t *testing.T, n string) *Quote {
	t.Helper()
	q, err := ParseQuote(readFile(t, "testdata/kernel/q"+n+".msg"), readFile(t, "testdata/kernel/q"+n+".sig"))
	if err != nil {
		t.Fatal(err)
	}
	return q
}

var (
	kernelNonce1, _ = hex.DecodeString("6119af4f89ede30d6ab1e0293a49bcd0")
	kernelNonce2, _ = hex.DecodeString("b93c395d1baec82226439f4dac5d50eb")
)

// The ascii list re-encoded in the binary form gives the kernel's binary
// list byte for byte.
func TestKernelBinaryEqualsASCII(t *testing.T) {
	bin := readFile(t, "testdata/kernel/ml1.bin")
	la, err := Parse(readFile(t, "testdata/kernel/ml1.txt"), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := encodeBinary(t, la.Entries); !bytes.Equal(got, bin) {
		t.Fatalf("ascii list encoded (%d bytes) differs from the kernel's binary list (%d bytes)", len(got), len(bin))
	}
	lb, err := Parse(bin, ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := encodeASCII(t, lb.Entries); !bytes.Equal(got, readFile(t, "testdata/kernel/ml1.txt")) {
		t.Fatalf("binary list shown as ascii differs from the kernel's:\n%s", got)
	}
}

func TestKernelQuoteTrusted(t *testing.T) {
	ref, ak := kernelInputs(t)
	// the trust store: manufacturer root -> the image's IMA certificate
	rootCert, imaCert := loadPEM(t, "testdata/kernel/root.pem"), loadPEM(t, "testdata/kernel/ima.pem")
	crl, err := x509.ParseRevocationList(func() []byte { b, _ := pem.Decode(readFile(t, "testdata/kernel/root.crl")); return b.Bytes }())
	if err != nil {
		t.Fatal(err)
	}
	ts, err := pki.NewTrustStore([]*x509.Certificate{rootCert}, []*x509.Certificate{imaCert}, []*x509.RevocationList{crl})
	if err != nil {
		t.Fatal(err)
	}
	l, err := Parse(readFile(t, "testdata/kernel/ml1.bin"), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(l, Options{Reference: ref, Trust: ts, Quote: kernelQuote(t, "1"), AK: ak, Nonce: kernelNonce1})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Trusted || rep.PCR10 != hex.EncodeToString(readFile(t, "testdata/kernel/pcr10.bin")) {
		t.Fatalf("trusted %v, PCR 10 %s, problems %+v", rep.Trusted, rep.PCR10, rep.Problems)
	}
	// the second list and quote: /tmp/evil unknown, the quote fine and later
	l2, err := Parse(readFile(t, "testdata/kernel/ml2.bin"), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rep, err = Verify(l2, Options{Reference: ref, Trust: ts, Quote: kernelQuote(t, "2"), AK: ak, Nonce: kernelNonce2, Previous: kernelQuote(t, "1")})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range rep.Entries {
		got[e.Path] = string(e.Verdict) + " " + string(e.Reason) + string(e.Basis)
	}
	want := map[string]string{
		"boot_aggregate": "trusted boot_aggregate", "imaforge-mfr": "trusted key", "_ima": "trusted key",
		"/mnt/bin/good": "trusted reference", "/mnt/bin/good2": "trusted reference",
		"/tmp/evil": "unknown ", "e2e-rogue": "failed untrusted-key",
	}
	if rep.Trusted || !rep.Quote.Verified || len(got) != len(want) {
		t.Fatalf("evil: %+v %v", rep.Quote, got)
	}
	for p, w := range want {
		if got[p] != w {
			t.Errorf("%s: %q, want %q", p, got[p], w)
		}
	}
	// without the trust store the root certificate in imaforge-mfr is no
	// key the reference values know: not trusted
	rep, err = Verify(l, Options{Reference: ref, Quote: kernelQuote(t, "1"), AK: ak, Nonce: kernelNonce1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Trusted || rep.Entries[1].Path != "imaforge-mfr" || rep.Entries[1].Reason != ReasonUntrustedKey || rep.Entries[2].Verdict != VerdictTrusted {
		t.Errorf("without trust store: %+v %+v", rep.Entries[1], rep.Entries[2])
	}
	// the other AK of the same TPM, the first quote for the second nonce
	ak2, err := ParseAK(readFile(t, "testdata/kernel/ak2.pem"))
	if err != nil {
		t.Fatal(err)
	}
	for name, o := range map[string]Options{
		"other AK":  {Reference: ref, Quote: kernelQuote(t, "1"), AK: ak2, Nonce: kernelNonce1},
		"old nonce": {Reference: ref, Quote: kernelQuote(t, "1"), AK: ak, Nonce: kernelNonce2},
		"older":     {Reference: ref, Quote: kernelQuote(t, "1"), AK: ak, Nonce: kernelNonce1, Previous: kernelQuote(t, "2")},
	} {
		o.Trust = ts
		rep, err := Verify(l, o)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Trusted || rep.Quote.Verified {
			t.Errorf("%s: accepted", name)
		}
	}
}
