package attest

import (
	"bytes"
	"encoding/hex"
	"testing"
)

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
	kernelNonce1, _ = hex.DecodeString("6845bd604c2106e6ace385d6854d1103")
	kernelNonce2, _ = hex.DecodeString("0f4293becf5ff87ac59b1989d0b5cb14")
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
	l, err := Parse(readFile(t, "testdata/kernel/ml1.bin"), ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(l, Options{Reference: ref, Quote: kernelQuote(t, "1"), AK: ak, Nonce: kernelNonce1})
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
	rep, err = Verify(l2, Options{Reference: ref, Quote: kernelQuote(t, "2"), AK: ak, Nonce: kernelNonce2, Previous: kernelQuote(t, "1")})
	if err != nil {
		t.Fatal(err)
	}
	last := rep.Entries[len(rep.Entries)-1]
	if rep.Trusted || !rep.Quote.Verified || last.Path != "/tmp/evil" || last.Verdict != VerdictUnknown || rep.Summary.Unknown != 1 {
		t.Fatalf("evil: %+v %+v", rep.Quote, last)
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
		rep, err := Verify(l, o)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Trusted || rep.Quote.Verified {
			t.Errorf("%s: accepted", name)
		}
	}
}
