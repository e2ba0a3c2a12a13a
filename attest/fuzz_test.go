package attest

import (
	"bytes"
	"crypto"
	"errors"
	"testing"
)

// FuzzParseList: any input parses or fails with a FormatError wrapping
// ErrFormat, never panics; a parsed list re-encodes to bytes that parse to
// the same entries (binary: the same bytes).
func FuzzParseList(f *testing.F) {
	asc := readFile(f, "testdata/enforce.ascii")
	f.Add(asc)
	l, err := Parse(asc, ParseOptions{})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(encodeBinary(f, l.Entries))
	f.Add(readFile(f, "testdata/kernel/ml1.bin"))
	f.Add(readFile(f, "testdata/kernel/ml2.bin"))
	f.Add(readFile(f, "testdata/kernel/ml1.txt"))
	f.Add([]byte("10 " + "0000000000000000000000000000000000000000" + " ima 0000000000000000000000000000000000000000 /x\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := Parse(data, ParseOptions{})
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) || !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v is not a FormatError", err)
			}
			return
		}
		for _, e := range l.Entries {
			if e.Known || e.raw != nil {
				e.ComputeTemplateHash(crypto.SHA256)
			}
		}
		if looksASCII(data) {
			return
		}
		var b []byte
		for _, e := range l.Entries {
			if b, err = e.AppendBinary(b); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(b, data) {
			t.Fatalf("binary list re-encodes differently")
		}
	})
}

// FuzzParseQuote: any attestation and signature parse or fail with
// ErrQuoteFormat; a parsed quote's checks never panic.
func FuzzParseQuote(f *testing.F) {
	f.Add(readFile(f, "testdata/quote/quote.msg"), readFile(f, "testdata/quote/quote.sig"))
	f.Add(readFile(f, "testdata/quote/quote2.msg"), readFile(f, "testdata/quote/quote2.sig"))
	f.Add(readFile(f, "testdata/kernel/q1.msg"), readFile(f, "testdata/kernel/q1.sig"))
	_, ak := realQuote(f, "")
	f.Fuzz(func(t *testing.T, msg, sig []byte) {
		q, err := ParseQuote(msg, sig)
		if err != nil {
			if !errors.Is(err, ErrQuoteFormat) {
				t.Fatalf("error %v does not wrap ErrQuoteFormat", err)
			}
			return
		}
		q.CheckSignature(ak)
		q.CheckNonce([]byte{1})
		q.CheckPCRs(func(Bank) ([]byte, error) { return make([]byte, 32), nil })
		q.CheckAfter(q)
	})
}

// FuzzParseAK: any key bytes parse or fail with ErrAKFormat.
func FuzzParseAK(f *testing.F) {
	f.Add(readFile(f, "testdata/quote/ak.pem"))
	f.Add(readFile(f, "testdata/quote/ak.tpm2b"))
	f.Add(readFile(f, "testdata/kernel/ak2.pem"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := ParseAK(b); err != nil && !errors.Is(err, ErrAKFormat) {
			t.Fatalf("error %v does not wrap ErrAKFormat", err)
		}
	})
}
