package attest

import (
	"bytes"
	"crypto"
	"fmt"
)

// Bank is a PCR bank: the hash algorithm the TPM extends it with.
type Bank = crypto.Hash

// ParseBank maps a tpm2-tools bank name ("sha1", "sha256", "sha384",
// "sha512") to its hash.
func ParseBank(s string) (Bank, error) {
	switch s {
	case "sha1":
		return crypto.SHA1, nil
	case "sha256":
		return crypto.SHA256, nil
	case "sha384":
		return crypto.SHA384, nil
	case "sha512":
		return crypto.SHA512, nil
	}
	return 0, fmt.Errorf("PCR bank %q: want sha1, sha256, sha384 or sha512", s)
}

// BankName is the inverse of ParseBank.
func BankName(b Bank) string {
	switch b {
	case crypto.SHA1:
		return "sha1"
	case crypto.SHA256:
		return "sha256"
	case crypto.SHA384:
		return "sha384"
	case crypto.SHA512:
		return "sha512"
	}
	return b.String()
}

// Replayer extends PCRs entry by entry as the kernel's ima_pcr_extend does
// for one bank: PCR = H(PCR | template hash), starting from zeros, a
// violation (all-zero template hash) extending with all ones.
type Replayer struct {
	bank Bank
	pcrs map[uint32][]byte
	buf  []byte
}

// NewReplayer starts a replay of bank from reset PCRs.
func NewReplayer(bank Bank) *Replayer {
	return &Replayer{bank: bank, pcrs: map[uint32][]byte{}, buf: make([]byte, 0, 2*bank.Size())}
}

// Extend extends e's PCR with its template hash for the bank, computed
// from the template data (TemplateHash for the list's own bank is checked
// separately, see CheckTemplateHash). It returns the new PCR value.
func (r *Replayer) Extend(e *Entry, templateHash []byte) []byte {
	cur, ok := r.pcrs[e.PCR]
	if !ok {
		cur = make([]byte, r.bank.Size())
	}
	h := r.bank.New()
	h.Write(cur)
	if e.Violation() {
		h.Write(bytes.Repeat([]byte{0xff}, r.bank.Size()))
	} else {
		h.Write(templateHash)
	}
	cur = h.Sum(cur[:0])
	r.pcrs[e.PCR] = cur
	return cur
}

// PCR returns the replayed value of PCR i (zeros if no entry extended it).
func (r *Replayer) PCR(i uint32) []byte {
	if v, ok := r.pcrs[i]; ok {
		return bytes.Clone(v)
	}
	return make([]byte, r.bank.Size())
}

// Replay replays every entry of l into bank and returns the PCR values.
// Entries whose template data is unknown (an unknown template read from
// the ascii form) cannot be replayed: the error names the first.
func Replay(l *List, bank Bank) (map[uint32][]byte, error) {
	r := NewReplayer(bank)
	for _, e := range l.Entries {
		th, err := e.BankHash(bank, l.Hash)
		if err != nil {
			return nil, err
		}
		r.Extend(e, th)
	}
	out := map[uint32][]byte{}
	for k, v := range r.pcrs {
		out[k] = bytes.Clone(v)
	}
	return out, nil
}

// ErrNoTemplateData is returned for an entry whose template data is not
// known (an unknown template in the ascii form): its hash cannot be
// recomputed, so the replay stops there.
var ErrNoTemplateData = fmt.Errorf("template data unknown")

// BankHash returns the template hash e extends bank with: recomputed from
// the template data. listHash is the algorithm of e.TemplateHash.
func (e *Entry) BankHash(bank, listHash crypto.Hash) ([]byte, error) {
	if e.Violation() {
		return nil, nil
	}
	if !e.Known && e.raw == nil {
		if bank == listHash {
			return e.TemplateHash, nil
		}
		return nil, fmt.Errorf("%s: template %s: %w, so its %s template hash cannot be computed", e.Where(), e.Template, ErrNoTemplateData, BankName(bank))
	}
	return e.ComputeTemplateHash(bank), nil
}
