package attest

import (
	"encoding/hex"
	"fmt"
	"io"
	"strings"
)

// Verdict is what Verify concluded about one entry.
type Verdict string

const (
	VerdictTrusted Verdict = "trusted" // known digest, valid trusted signature, trusted key or allowed value
	VerdictUnknown Verdict = "unknown" // nothing says it is good (not trusted)
	VerdictFailed  Verdict = "failed"  // something says it is bad
)

// Basis says why an entry is trusted.
type Basis string

const (
	BasisReference     Basis = "reference"      // digest listed for this path
	BasisSignature     Basis = "signature"      // signature by a trusted key, in scope
	BasisKey           Basis = "key"            // an ima-buf key of the trust store
	BasisBuffer        Basis = "buffer"         // an allowed ima-buf digest
	BasisBootAggregate Basis = "boot_aggregate" // an allowed boot aggregate
)

// Reason names a failure.
type Reason string

const (
	ReasonTemplateHash    Reason = "template-hash"    // template hash does not match the data
	ReasonUnknownTemplate Reason = "unknown-template" // template not known
	ReasonViolation       Reason = "violation"        // measurement violation
	ReasonDigestMismatch  Reason = "digest-mismatch"  // path known, digest different
	ReasonBadSignature    Reason = "bad-signature"    // signature invalid
	ReasonUntrustedKey    Reason = "untrusted-key"    // key not trusted (chain, revoked, not in store)
	ReasonOutOfScope      Reason = "out-of-scope"     // key's tenant scope excludes the path
	ReasonBootAggregate   Reason = "boot-aggregate"   // boot aggregate not allowed
	ReasonReplay          Reason = "replay"           // replayed PCR differs
	ReasonQuote           Reason = "quote"            // quote refused
)

// EntryResult is the verdict on one entry.
type EntryResult struct {
	Index    int     `json:"index"`
	Line     int     `json:"line,omitempty"`
	Offset   int64   `json:"offset,omitempty"`
	PCR      uint32  `json:"pcr"`
	Template string  `json:"template"`
	Path     string  `json:"path"`
	Digest   string  `json:"digest,omitempty"`
	KeyID    string  `json:"key_id,omitempty"`
	Signer   string  `json:"signer,omitempty"`
	Verdict  Verdict `json:"verdict"`
	Basis    Basis   `json:"basis,omitempty"`
	Reason   Reason  `json:"reason,omitempty"`
	Detail   string  `json:"detail,omitempty"`
	// Quoted says the entry is covered by the quote (false without one,
	// and for entries measured after it).
	Quoted bool `json:"quoted"`
}

func (r *EntryResult) fill(e *Entry) {
	r.Index, r.Line, r.PCR, r.Template, r.Path = e.Index, e.Line, e.PCR, e.Template, e.Name
	if e.Offset > 0 {
		r.Offset = e.Offset
	}
	if e.Digest != nil {
		r.Digest = e.DigestAlgo + ":" + hex.EncodeToString(e.Digest)
	}
}

func (r *EntryResult) fail(reason Reason, detail string) {
	if r.Verdict == VerdictFailed {
		r.Detail += "; " + detail
		return
	}
	r.Verdict, r.Reason, r.Detail, r.Basis = VerdictFailed, reason, detail, ""
}

func (r *EntryResult) trust(b Basis, detail string) {
	r.Verdict, r.Basis, r.Detail = VerdictTrusted, b, detail
}

// Problem is a failure of the list as a whole (replay, quote).
type Problem struct {
	Reason Reason `json:"reason"`
	Detail string `json:"detail"`
	// Entry is the entry index the problem is found at (-1: none; the
	// number of entries: after the last).
	Entry int `json:"entry"`
}

// QuoteResult describes the checked quote.
type QuoteResult struct {
	Verified     bool     `json:"verified"`
	Selection    string   `json:"selection"`
	PCRDigest    string   `json:"pcr_digest"`
	Nonce        string   `json:"nonce"`
	Clock        uint64   `json:"clock"`
	ResetCount   uint32   `json:"reset_count"`
	RestartCount uint32   `json:"restart_count"`
	Problems     []string `json:"problems,omitempty"`
}

// Summary counts entries by verdict.
type Summary struct {
	Entries int `json:"entries"`
	Trusted int `json:"trusted"`
	Unknown int `json:"unknown"`
	Failed  int `json:"failed"`
}

// Report is the result of Verify.
type Report struct {
	// Trusted is the overall verdict: every entry trusted, the replay
	// reaching the quoted (or expected) PCR 10, and the quote verified.
	Trusted       bool          `json:"trusted"`
	Bank          string        `json:"bank"`
	PCR10         string        `json:"pcr10"` // the replayed value after the last entry
	ReplayMatches bool          `json:"replay_matches"`
	QuoteChecked  bool          `json:"quote_checked"`
	Quote         *QuoteResult  `json:"quote,omitempty"`
	Problems      []Problem     `json:"problems"`
	Notes         []string      `json:"notes,omitempty"`
	Summary       Summary       `json:"summary"`
	Entries       []EntryResult `json:"entries"`
}

func (r *Report) problem(reason Reason, detail string, entry int) {
	r.Problems = append(r.Problems, Problem{Reason: reason, Detail: detail, Entry: entry})
}

func (r *Report) finish() {
	if r.Problems == nil {
		r.Problems = []Problem{}
	}
	r.Summary = Summary{Entries: len(r.Entries)}
	for _, e := range r.Entries {
		switch e.Verdict {
		case VerdictTrusted:
			r.Summary.Trusted++
		case VerdictFailed:
			r.Summary.Failed++
		default:
			r.Summary.Unknown++
		}
	}
	r.Trusted = len(r.Problems) == 0 && r.Summary.Trusted == r.Summary.Entries && r.Summary.Entries > 0
}

// Untrusted returns the entries not trusted, in list order.
func (r *Report) Untrusted() []EntryResult {
	var out []EntryResult
	for _, e := range r.Entries {
		if e.Verdict != VerdictTrusted {
			out = append(out, e)
		}
	}
	return out
}

// WriteText writes the report for people: the problems, every entry not
// trusted (all entries when verbose), then the summary and the verdict.
func (r *Report) WriteText(w io.Writer, verbose bool) error {
	var b strings.Builder
	for _, e := range r.Entries {
		if e.Verdict == VerdictTrusted && !verbose {
			continue
		}
		where := fmt.Sprintf("entry %d", e.Index)
		if e.Line > 0 {
			where += fmt.Sprintf(" (line %d)", e.Line)
		}
		why := string(e.Basis)
		if e.Reason != "" {
			why = string(e.Reason)
		}
		fmt.Fprintf(&b, "%-7s %s %s %s", e.Verdict, where, e.Template, e.Path)
		if why != "" {
			fmt.Fprintf(&b, ": %s", why)
		}
		if e.Detail != "" {
			fmt.Fprintf(&b, ": %s", e.Detail)
		}
		b.WriteString("\n")
	}
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "problem %s: %s\n", p.Reason, p.Detail)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "note: %s\n", n)
	}
	if q := r.Quote; q != nil {
		state := "verified"
		if !q.Verified {
			state = "REFUSED"
		}
		fmt.Fprintf(&b, "quote: %s (%s, nonce %s, clock %d, resets %d, restarts %d)\n", state, q.Selection, q.Nonce, q.Clock, q.ResetCount, q.RestartCount)
	}
	fmt.Fprintf(&b, "PCR 10 (%s, replayed): %s\n", r.Bank, r.PCR10)
	fmt.Fprintf(&b, "%d entries: %d trusted, %d unknown, %d failed\n", r.Summary.Entries, r.Summary.Trusted, r.Summary.Unknown, r.Summary.Failed)
	if r.Trusted {
		b.WriteString("verdict: trusted\n")
	} else {
		b.WriteString("verdict: NOT trusted\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
