package attest

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/subtle"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"

	"github.com/google/go-tpm/tpm2"
)

// Errors of quote verification, for errors.Is.
var (
	ErrQuoteFormat    = errors.New("malformed quote")
	ErrQuoteSignature = errors.New("quote signature does not verify with the attestation key")
	ErrQuoteNonce     = errors.New("quote nonce (extraData) differs from the nonce asked for")
	ErrQuotePCRs      = errors.New("quote PCR selection or digest does not match the replayed measurement list")
	ErrQuoteClock     = errors.New("quote clock or counters do not follow the previous quote")
	ErrAKFormat       = errors.New("malformed attestation key")
)

// Quote is a TPM2_Quote result as tpm2_quote writes it: the attestation
// structure (-m, a marshalled TPMS_ATTEST) and the signature (-s, a
// marshalled TPMT_SIGNATURE), decoded with go-tpm (TPM 2.0 Part 2
// sections 10.12.12 and 11.3.4).
type Quote struct {
	Raw       []byte // the TPMS_ATTEST bytes the signature covers
	Attest    *tpm2.TPMSAttest
	Info      *tpm2.TPMSQuoteInfo
	Signature *tpm2.TPMTSignature
}

// ParseQuote decodes a TPMS_ATTEST of type TPM_ST_ATTEST_QUOTE and a
// TPMT_SIGNATURE. Both must be consumed exactly: trailing bytes are an
// error (a signature must not be able to cover more than is shown).
func ParseQuote(attest, sig []byte) (*Quote, error) {
	a, err := tpm2.Unmarshal[tpm2.TPMSAttest](attest)
	if err != nil {
		return nil, fmt.Errorf("%w: TPMS_ATTEST: %w", ErrQuoteFormat, err)
	}
	if n := len(tpm2.Marshal(a)); n != len(attest) {
		return nil, fmt.Errorf("%w: TPMS_ATTEST: %d trailing bytes after byte %d", ErrQuoteFormat, len(attest)-n, n)
	}
	if a.Type != tpm2.TPMSTAttestQuote {
		return nil, fmt.Errorf("%w: TPMS_ATTEST type 0x%04x is not a quote (0x8018)", ErrQuoteFormat, uint16(a.Type))
	}
	info, err := a.Attested.Quote()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrQuoteFormat, err)
	}
	s, err := tpm2.Unmarshal[tpm2.TPMTSignature](sig)
	if err != nil {
		return nil, fmt.Errorf("%w: TPMT_SIGNATURE: %w", ErrQuoteFormat, err)
	}
	if n := len(tpm2.Marshal(s)); n != len(sig) {
		return nil, fmt.Errorf("%w: TPMT_SIGNATURE: %d trailing bytes after byte %d", ErrQuoteFormat, len(sig)-n, n)
	}
	return &Quote{Raw: attest, Attest: a, Info: info, Signature: s}, nil
}

// Nonce returns the quote's extraData.
func (q *Quote) Nonce() []byte { return q.Attest.ExtraData.Buffer }

// Clock returns the TPM clock info (clock, resetCount, restartCount, safe).
func (q *Quote) Clock() tpm2.TPMSClockInfo { return q.Attest.ClockInfo }

// PCRSelection lists the selected PCRs per bank in selection order.
func (q *Quote) PCRSelection() ([]PCRSelection, error) {
	var out []PCRSelection
	for _, s := range q.Info.PCRSelect.PCRSelections {
		h, err := s.Hash.Hash()
		if err != nil {
			return nil, fmt.Errorf("%w: PCR selection bank 0x%04x: %w", ErrQuoteFormat, uint16(s.Hash), err)
		}
		sel := PCRSelection{Bank: h}
		for i, b := range s.PCRSelect {
			for bit := 0; bit < 8; bit++ {
				if b&(1<<bit) != 0 {
					sel.PCRs = append(sel.PCRs, uint32(i*8+bit))
				}
			}
		}
		out = append(out, sel)
	}
	return out, nil
}

// PCRSelection is the PCRs of one bank a quote covers.
type PCRSelection struct {
	Bank Bank
	PCRs []uint32
}

// AK is an attestation key's public part.
type AK struct {
	Public crypto.PublicKey
	// Name is the TPM name of the key (nameAlg | H(TPMT_PUBLIC)) when it was
	// given as a TPM2B_PUBLIC. (A quote carries the qualified name, which
	// also depends on the key's parents, so it is not compared.)
	Name []byte
}

// ParseAK reads an attestation key: a PEM or DER SubjectPublicKeyInfo
// (tpm2_createak -f pem), or a TPM2B_PUBLIC (tpm2_createak -u).
func ParseAK(b []byte) (*AK, error) {
	if p, _ := pem.Decode(b); p != nil {
		b = p.Bytes
	}
	if pub, err := x509.ParsePKIXPublicKey(b); err == nil {
		return &AK{Public: pub}, nil
	}
	p2, err := tpm2.Unmarshal[tpm2.TPM2BPublic](b)
	if err != nil {
		return nil, fmt.Errorf("%w: neither a SubjectPublicKeyInfo nor a TPM2B_PUBLIC: %w", ErrAKFormat, err)
	}
	if n := len(tpm2.Marshal(p2)); n != len(b) {
		return nil, fmt.Errorf("%w: TPM2B_PUBLIC: %d trailing bytes", ErrAKFormat, len(b)-n)
	}
	pt, err := p2.Contents()
	if err != nil {
		return nil, fmt.Errorf("%w: TPMT_PUBLIC: %w", ErrAKFormat, err)
	}
	pub, err := tpm2.Pub(*pt)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrAKFormat, err)
	}
	name, err := tpm2.ObjectName(pt)
	if err != nil {
		return nil, fmt.Errorf("%w: name: %w", ErrAKFormat, err)
	}
	return &AK{Public: pub, Name: name.Buffer}, nil
}

// CheckSignature checks that ak signed the quote.
func (q *Quote) CheckSignature(ak *AK) error {
	s := q.Signature
	switch s.SigAlg {
	case tpm2.TPMAlgRSASSA, tpm2.TPMAlgRSAPSS:
		var rs *tpm2.TPMSSignatureRSA
		var err error
		if s.SigAlg == tpm2.TPMAlgRSASSA {
			rs, err = s.Signature.RSASSA()
		} else {
			rs, err = s.Signature.RSAPSS()
		}
		if err != nil {
			return fmt.Errorf("%w: %w", ErrQuoteFormat, err)
		}
		pub, ok := ak.Public.(*rsa.PublicKey)
		if !ok {
			return fmt.Errorf("%w: an RSA signature, the key is %T", ErrQuoteSignature, ak.Public)
		}
		h, err := rs.Hash.Hash()
		if err != nil {
			return fmt.Errorf("%w: signature hash: %w", ErrQuoteFormat, err)
		}
		d := h.New()
		d.Write(q.Raw)
		if s.SigAlg == tpm2.TPMAlgRSASSA {
			err = rsa.VerifyPKCS1v15(pub, h, d.Sum(nil), rs.Sig.Buffer)
		} else {
			err = rsa.VerifyPSS(pub, h, d.Sum(nil), rs.Sig.Buffer, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto})
		}
		if err != nil {
			return fmt.Errorf("%w: %w", ErrQuoteSignature, err)
		}
		return nil
	case tpm2.TPMAlgECDSA:
		es, err := s.Signature.ECDSA()
		if err != nil {
			return fmt.Errorf("%w: %w", ErrQuoteFormat, err)
		}
		pub, ok := ak.Public.(*ecdsa.PublicKey)
		if !ok {
			return fmt.Errorf("%w: an ECDSA signature, the key is %T", ErrQuoteSignature, ak.Public)
		}
		h, err := es.Hash.Hash()
		if err != nil {
			return fmt.Errorf("%w: signature hash: %w", ErrQuoteFormat, err)
		}
		d := h.New()
		d.Write(q.Raw)
		r := new(big.Int).SetBytes(es.SignatureR.Buffer)
		sv := new(big.Int).SetBytes(es.SignatureS.Buffer)
		if !ecdsa.Verify(pub, d.Sum(nil), r, sv) {
			return ErrQuoteSignature
		}
		return nil
	}
	return fmt.Errorf("%w: signature algorithm 0x%04x not supported (RSASSA, RSAPSS, ECDSA)", ErrQuoteSignature, uint16(s.SigAlg))
}

// CheckNonce checks the quote's extraData against the nonce the verifier
// sent (constant time).
func (q *Quote) CheckNonce(nonce []byte) error {
	if len(nonce) == 0 {
		return fmt.Errorf("%w: no nonce given to check against", ErrQuoteNonce)
	}
	if subtle.ConstantTimeCompare(q.Nonce(), nonce) != 1 {
		return fmt.Errorf("%w: quote has %x, want %x", ErrQuoteNonce, q.Nonce(), nonce)
	}
	return nil
}

// CheckPCRs checks that the quote selects exactly PCR 10 (IMA's) in one
// bank and that its pcrDigest is the digest (with the signature's hash) of
// value, the replayed PCR 10 of that bank. It returns the bank.
func (q *Quote) CheckPCRs(value func(Bank) ([]byte, error)) (Bank, error) {
	sel, err := q.PCRSelection()
	if err != nil {
		return 0, err
	}
	var chosen []PCRSelection
	for _, s := range sel {
		if len(s.PCRs) > 0 {
			chosen = append(chosen, s)
		}
	}
	if len(chosen) != 1 || len(chosen[0].PCRs) != 1 || chosen[0].PCRs[0] != IMAPCR {
		return 0, fmt.Errorf("%w: the quote selects %s, want only PCR %d of one bank", ErrQuotePCRs, formatSelection(sel), IMAPCR)
	}
	bank := chosen[0].Bank
	v, err := value(bank)
	if err != nil {
		return bank, err
	}
	h, err := q.digestHash()
	if err != nil {
		return bank, err
	}
	d := h.New()
	d.Write(v)
	if want := d.Sum(nil); !bytes.Equal(want, q.Info.PCRDigest.Buffer) {
		return bank, fmt.Errorf("%w: pcrDigest %x, the replayed %s PCR %d (%x) gives %x", ErrQuotePCRs, q.Info.PCRDigest.Buffer, BankName(bank), IMAPCR, v, want)
	}
	return bank, nil
}

// digestHash is the hash of pcrDigest: the signing scheme's hash.
func (q *Quote) digestHash() (crypto.Hash, error) {
	var ha tpm2.TPMIAlgHash
	switch q.Signature.SigAlg {
	case tpm2.TPMAlgRSASSA:
		s, err := q.Signature.Signature.RSASSA()
		if err != nil {
			return 0, err
		}
		ha = s.Hash
	case tpm2.TPMAlgRSAPSS:
		s, err := q.Signature.Signature.RSAPSS()
		if err != nil {
			return 0, err
		}
		ha = s.Hash
	case tpm2.TPMAlgECDSA:
		s, err := q.Signature.Signature.ECDSA()
		if err != nil {
			return 0, err
		}
		ha = s.Hash
	default:
		return 0, fmt.Errorf("%w: signature algorithm 0x%04x", ErrQuoteFormat, uint16(q.Signature.SigAlg))
	}
	return ha.Hash()
}

// CheckAfter checks q's clock and counters against an earlier quote of the
// same TPM: the same resetCount (else the device rebooted) and
// restartCount (else it was suspended or restarted), and a clock that went
// forward (else the quote is a replay of an old one or the clock was
// rolled back).
func (q *Quote) CheckAfter(prev *Quote) error {
	c, p := q.Clock(), prev.Clock()
	switch {
	case c.ResetCount != p.ResetCount:
		return fmt.Errorf("%w: resetCount %d, the previous quote's %d: the device rebooted (TPM reset) in between", ErrQuoteClock, c.ResetCount, p.ResetCount)
	case c.RestartCount != p.RestartCount:
		return fmt.Errorf("%w: restartCount %d, the previous quote's %d: the TPM restarted (suspend/resume) in between", ErrQuoteClock, c.RestartCount, p.RestartCount)
	case c.Clock <= p.Clock:
		return fmt.Errorf("%w: clock %d ms is not after the previous quote's %d ms: a replayed quote or a clock rolled back", ErrQuoteClock, c.Clock, p.Clock)
	case q.Attest.FirmwareVersion != prev.Attest.FirmwareVersion:
		return fmt.Errorf("%w: firmware version %x, the previous quote's %x", ErrQuoteClock, q.Attest.FirmwareVersion, prev.Attest.FirmwareVersion)
	}
	return nil
}

func formatSelection(sel []PCRSelection) string {
	var b bytes.Buffer
	for i, s := range sel {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s:%v", BankName(s.Bank), s.PCRs)
	}
	if b.Len() == 0 {
		return "no PCRs"
	}
	return b.String()
}

// IMAPCR is the PCR IMA extends by default (CONFIG_IMA_MEASURE_PCR_IDX).
const IMAPCR = 10
