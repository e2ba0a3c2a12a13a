package attest

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"testing"

	"github.com/google/go-tpm/tpm2"
)

func readFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// swtpmPCR10 is PCR 10 of the testdata quote: sha256 bank extended once
// with 00..01 (testdata/quote/README.md).
func swtpmPCR10(t testing.TB) []byte {
	t.Helper()
	v, _ := hex.DecodeString("90f4b39548df55ad6187a1d20d731ecee78c545b94afd16f42ef7592d99cd365")
	return v
}

func realQuote(t testing.TB, n string) (*Quote, *AK) {
	t.Helper()
	q, err := ParseQuote(readFile(t, "testdata/quote/quote"+n+".msg"), readFile(t, "testdata/quote/quote"+n+".sig"))
	if err != nil {
		t.Fatal(err)
	}
	ak, err := ParseAK(readFile(t, "testdata/quote/ak.pem"))
	if err != nil {
		t.Fatal(err)
	}
	return q, ak
}

// A quote made by tpm2_quote on swtpm verifies: signature, nonce, PCR 10.
func TestRealQuote(t *testing.T) {
	q, ak := realQuote(t, "")
	if err := q.CheckSignature(ak); err != nil {
		t.Fatal(err)
	}
	ak2, err := ParseAK(readFile(t, "testdata/quote/ak.tpm2b"))
	if err != nil {
		t.Fatal(err)
	}
	if err := q.CheckSignature(ak2); err != nil {
		t.Fatalf("TPM2B_PUBLIC AK: %v", err)
	}
	nonce, _ := hex.DecodeString("00112233445566778899")
	if err := q.CheckNonce(nonce); err != nil {
		t.Fatal(err)
	}
	if err := q.CheckNonce([]byte{0xaa, 0xbb, 0xcc, 0xdd}); !errors.Is(err, ErrQuoteNonce) {
		t.Errorf("old nonce: %v", err)
	}
	bank, err := q.CheckPCRs(func(b Bank) ([]byte, error) { return swtpmPCR10(t), nil })
	if err != nil || bank != crypto.SHA256 {
		t.Fatalf("PCRs: %v %v", bank, err)
	}
	if _, err := q.CheckPCRs(func(b Bank) ([]byte, error) { return make([]byte, 32), nil }); !errors.Is(err, ErrQuotePCRs) {
		t.Errorf("wrong PCR: %v", err)
	}
	if c := q.Clock(); c.Clock != 6582 || c.ResetCount != 1 {
		t.Errorf("clock %+v", c)
	}
	// the second quote came later from the same TPM
	q2, _ := realQuote(t, "2")
	if err := q2.CheckSignature(ak); err != nil {
		t.Fatal(err)
	}
	if err := q2.CheckAfter(q); err != nil {
		t.Errorf("later quote: %v", err)
	}
	if err := q.CheckAfter(q2); !errors.Is(err, ErrQuoteClock) {
		t.Errorf("replayed older quote: %v", err)
	}
}

// Changing any byte of the attestation or the signature fails: a parse
// error or a signature that does not verify, never acceptance.
func TestQuoteMangled(t *testing.T) {
	msg, sig := readFile(t, "testdata/quote/quote.msg"), readFile(t, "testdata/quote/quote.sig")
	_, ak := realQuote(t, "")
	for _, which := range []string{"msg", "sig"} {
		src := msg
		if which == "sig" {
			src = sig
		}
		for i := range src {
			b := bytes.Clone(src)
			b[i] ^= 0x01
			m, s := msg, sig
			if which == "msg" {
				m = b
			} else {
				s = b
			}
			q, err := ParseQuote(m, s)
			if err != nil {
				if !errors.Is(err, ErrQuoteFormat) {
					t.Errorf("%s byte %d: error %v does not wrap ErrQuoteFormat", which, i, err)
				}
				continue
			}
			if err := q.CheckSignature(ak); err == nil {
				t.Errorf("%s byte %d flipped: signature still verifies", which, i)
			}
		}
	}
	if _, err := ParseQuote(append(bytes.Clone(msg), 0), sig); !errors.Is(err, ErrQuoteFormat) {
		t.Errorf("trailing byte accepted: %v", err)
	}
}

// Another AK is refused.
func TestQuoteOtherAK(t *testing.T) {
	q, _ := realQuote(t, "")
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.CheckSignature(&AK{Public: &k.PublicKey}); !errors.Is(err, ErrQuoteSignature) {
		t.Errorf("other AK: %v", err)
	}
}

// fakeQuote makes a quote over pcr10 (sha256) signed by k: TPM structures
// built and marshalled by go-tpm, as a TPM would.
func fakeQuote(t testing.TB, k *rsa.PrivateKey, nonce, pcr10 []byte, clock uint64, resets uint32) *Quote {
	t.Helper()
	d := sha256.Sum256(pcr10)
	a := tpm2.TPMSAttest{
		Magic:           tpm2.TPMGeneratedValue,
		Type:            tpm2.TPMSTAttestQuote,
		QualifiedSigner: tpm2.TPM2BName{Buffer: []byte{0, 0x0b, 1, 2}},
		ExtraData:       tpm2.TPM2BData{Buffer: nonce},
		ClockInfo:       tpm2.TPMSClockInfo{Clock: clock, ResetCount: resets, Safe: true},
		Attested: tpm2.NewTPMUAttest(tpm2.TPMSTAttestQuote, &tpm2.TPMSQuoteInfo{
			PCRSelect: tpm2.TPMLPCRSelection{PCRSelections: []tpm2.TPMSPCRSelection{{Hash: tpm2.TPMAlgSHA256, PCRSelect: []byte{0, 4, 0}}}},
			PCRDigest: tpm2.TPM2BDigest{Buffer: d[:]},
		}),
	}
	raw := tpm2.Marshal(&a)
	h := sha256.Sum256(raw)
	s, err := rsa.SignPKCS1v15(nil, k, crypto.SHA256, h[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := tpm2.TPMTSignature{SigAlg: tpm2.TPMAlgRSASSA, Signature: tpm2.NewTPMUSignature(tpm2.TPMAlgRSASSA, &tpm2.TPMSSignatureRSA{Hash: tpm2.TPMAlgSHA256, Sig: tpm2.TPM2BPublicKeyRSA{Buffer: s}})}
	q, err := ParseQuote(raw, tpm2.Marshal(&sig))
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func TestQuoteCounters(t *testing.T) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pcr := make([]byte, 32)
	prev := fakeQuote(t, k, []byte("n1"), pcr, 1000, 3)
	tests := []struct {
		name   string
		clock  uint64
		resets uint32
		ok     bool
	}{
		{"later", 2000, 3, true},
		{"rebooted", 50, 4, false},
		{"same clock", 1000, 3, false},
		{"clock back", 999, 3, false},
	}
	for _, tt := range tests {
		q := fakeQuote(t, k, []byte("n2"), pcr, tt.clock, tt.resets)
		if err := q.CheckSignature(&AK{Public: &k.PublicKey}); err != nil {
			t.Fatal(err)
		}
		err := q.CheckAfter(prev)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrQuoteClock)) {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
}
