package verify

import (
	"encoding/json"
	"github.com/imaforge/imaforge/imasig"
	"sort"
	"time"
)

// ReportFormat names the JSON schema of Report; it changes when a field
// changes meaning (docs/verify.md).
const ReportFormat = "imaforge-verify-report/v1"

// Reason is the machine-readable code of a problem found in a file. The
// values are part of the JSON report and stable.
type Reason string

// Reasons a file fails verification.
const (
	// ReasonUnsigned: the file has no security.ima signature while one is
	// required (Options.RequireSignatures), or only a digest.
	ReasonUnsigned Reason = "unsigned"
	// ReasonBadFormat: the security.ima value is malformed or of a type IMA
	// appraisal of a file cannot use (EVM HMAC, fs-verity sigv3, ...).
	ReasonBadFormat Reason = "bad-format"
	// ReasonUnsupportedHash: the value names a hash algorithm this program
	// cannot compute.
	ReasonUnsupportedHash Reason = "unsupported-hash"
	// ReasonBadSignature: the signature does not verify with the key its key
	// id names, and it is not a valid signature over some other digest either
	// (corrupt signature bytes, or made by another key with the same id).
	ReasonBadSignature Reason = "bad-signature"
	// ReasonDigestMismatch: the value is intact but was made over other
	// content: the file changed after signing, or the value was copied or
	// swapped from another file (Problem.Message names that file when it is
	// in the image). For a digest-only value, the digest differs.
	ReasonDigestMismatch Reason = "digest-mismatch"
	// ReasonUnknownKey: no certificate in the trust material has the
	// signature's key id.
	ReasonUnknownKey Reason = "unknown-key"
	// ReasonUntrustedChain: the signing certificate does not chain to a
	// trusted root (or a CA on the chain may not issue it, or its key usage
	// forbids IMA signing).
	ReasonUntrustedChain Reason = "untrusted-chain"
	// ReasonExpired: a certificate of the chain has expired at the checked
	// time (Options.At).
	ReasonExpired Reason = "expired"
	// ReasonNotYetValid: a certificate of the chain is not yet valid at the
	// checked time.
	ReasonNotYetValid Reason = "not-yet-valid"
	// ReasonRevoked: a certificate of the chain is on its issuer's CRL.
	ReasonRevoked Reason = "revoked"
	// ReasonRevocationUnknown: a CA of the chain has no CRL in the trust
	// material, or only a stale one (nextUpdate passed), and the trust's
	// revocation mode is required (pki.ErrRevocationUnknown).
	ReasonRevocationUnknown Reason = "revocation-unknown"
	// ReasonOutOfScope: the signing key (or a CA above it) carries a tenant
	// scope that does not include the file's path.
	ReasonOutOfScope Reason = "out-of-scope"
	// ReasonPolicyRefused: a policy rule in force appraises the file and the
	// kernel would refuse it (no signature, a digest where a signature is
	// required, a signature the kernel cannot verify, an algorithm outside
	// appraise_algos=).
	ReasonPolicyRefused Reason = "policy-refused"
	// ReasonPolicyLint: a policy fragment the kernel would reject when it is
	// loaded (a rule the target kernel's grammar refuses).
	ReasonPolicyLint Reason = "policy-lint"
	// ReasonEVM: the file's security.evm is not a valid portable EVM
	// signature over its security.ima, owner, group and mode by a trusted
	// key (an offline chmod, chown or swapped security.ima).
	ReasonEVM Reason = "evm"
)

// kernelRefuses reports whether the kernel itself would fail a signature with
// this problem when it appraises the file. The kernel checks neither
// certificate dates nor imaforge's tenant scopes, so those fail verification
// but not appraisal.
func (r Reason) kernelRefuses() bool {
	switch r {
	case ReasonExpired, ReasonNotYetValid, ReasonOutOfScope, ReasonPolicyRefused, ReasonPolicyLint, ReasonUnsigned, ReasonRevocationUnknown:
		return false
	}
	return true
}

// Status summarizes one file's result.
type Status string

// File statuses.
const (
	StatusOK       Status = "ok"       // a valid signature by a trusted key, allowed for the path
	StatusDigest   Status = "digest"   // a digest-only value that matches (no signer)
	StatusUnsigned Status = "unsigned" // no security.ima, and nothing requires one
	StatusFailed   Status = "failed"   // see Problems
)

// Problem is one reason a file fails.
type Problem struct {
	Reason  Reason `json:"reason"`
	Message string `json:"message"`
}

// Appraisal says how the kernel would appraise a file under the policy rules.
type Appraisal struct {
	// Rule is the deciding appraise rule as "file:line: rule".
	Rule string `json:"rule"`
	// Type is the rule's appraise_type ("imasig", or "" when a digest
	// suffices).
	Type string `json:"type,omitempty"`
	// Refused: the kernel would deny the access.
	Refused bool `json:"refused"`
	// Uncertain: a rule with LSM conditions, which cannot be evaluated off
	// the device, came before the deciding rule.
	Uncertain bool `json:"uncertain,omitempty"`

	source string // the name of the deciding rule's policy file
}

// FileResult is the verdict on one regular file.
type FileResult struct {
	Path   string `json:"path"` // absolute image path
	Size   int64  `json:"size"`
	Mode   string `json:"mode"` // as ls -l shows it
	UID    uint32 `json:"uid"`
	GID    uint32 `json:"gid"`
	Status Status `json:"status"`
	// Type is the security.ima value's type: "signature", "digest-ng",
	// "digest", ... ("" when there is none).
	Type string `json:"type,omitempty"`
	// Hash names the algorithm the value names; Digest is the file's digest
	// with it, in hex.
	Hash   string `json:"hash,omitempty"`
	Digest string `json:"digest,omitempty"`
	// KeyID is the signature's key id (8 hex digits); Signer the subject of
	// the certificate it resolves to.
	KeyID  string `json:"key_id,omitempty"`
	Signer string `json:"signer,omitempty"`
	// EVM is the verdict on the file's security.evm: "ok" for a valid
	// portable signature, "failed" (see Problems), "" when it has none;
	// EVMKeyID is its key id.
	EVM      string `json:"evm,omitempty"`
	EVMKeyID string `json:"evm_key_id,omitempty"`
	// Policy marks an IMA policy fragment (see docs/verify.md).
	Policy    bool       `json:"policy,omitempty"`
	Appraisal *Appraisal `json:"appraisal,omitempty"`
	Problems  []Problem  `json:"problems,omitempty"`

	inode     uint32
	exec      bool
	hash      uint8 // signer.Hash of the value, 0 when none
	keyID     [4]byte
	rsaSaw    []byte // RSA: the digest the signature was made over, when it is not ours
	needScan  bool   // a failed signature to match against other files' digests
	value     []byte // the raw security.ima value (dropped after the check unless needScan)
	hasValue  bool   // the file has a security.ima
	evm       []byte // the raw security.evm value, until checkEVM
	evmMeta   imasig.EVMMeta
	perm      uint32 // permission bits with setuid, setgid, sticky
	recDigest string // the content's digest with the record's algorithm (Options.Record)
	recErr    string // why recDigest could not be computed
}

// setXattrs records a file's xattrs and st_mode: its security.ima value,
// and what a security.evm signature covers.
func (f *FileResult) setXattrs(xs map[string][]byte, mode uint32) {
	if v, ok := xs[imasig.XattrName]; ok {
		f.value, f.hasValue = v, true
	}
	if v, ok := xs[imasig.EVMXattrName]; ok {
		f.evm = v
		f.evmMeta = imasig.EVMMeta{UID: f.UID, GID: f.GID, Mode: mode, Xattrs: xs}
	}
}

// Failed reports whether the file has any problem.
func (f *FileResult) Failed() bool { return len(f.Problems) > 0 }

func (f *FileResult) add(r Reason, msg string) {
	f.Problems = append(f.Problems, Problem{Reason: r, Message: msg})
	f.Status = StatusFailed
}

// Has reports whether the file has a problem with reason r.
func (f *FileResult) Has(r Reason) bool {
	for _, p := range f.Problems {
		if p.Reason == r {
			return true
		}
	}
	return false
}

// kernelValid reports whether the kernel would accept the file's
// security.ima value when appraising it (dates and scopes aside).
func (f *FileResult) kernelValid() bool {
	if f.Status == StatusUnsigned {
		return false
	}
	for _, p := range f.Problems {
		if p.Reason.kernelRefuses() {
			return false
		}
	}
	return true
}

// SignerSummary counts the files signed with one key id.
type SignerSummary struct {
	KeyID   string `json:"key_id"`
	Subject string `json:"subject,omitempty"` // empty when no certificate has the id
	Issuer  string `json:"issuer,omitempty"`
	// Trusted: the certificate chains to a root and is valid at the checked
	// time and not revoked.
	Trusted bool   `json:"trusted"`
	Error   string `json:"error,omitempty"` // why it is not trusted
	// Warnings: what a best-effort revocation check could not know.
	Warnings []string `json:"warnings,omitempty"`
	Files    int      `json:"files"`
	Failed   int      `json:"failed"`
}

// Diagnostic is one problem found by the policy linter.
type Diagnostic struct {
	Pos      string `json:"pos"` // file:line:col
	Severity string `json:"severity"`
	Message  string `json:"message"`
}

// PolicyResult describes one policy file taken into account.
type PolicyResult struct {
	// Path is the image path of a fragment, or the name of a policy file
	// given in Options.Policies.
	Path string `json:"path"`
	// Source is "image" or "option".
	Source string `json:"source"`
	Rules  int    `json:"rules"`
	// Loaded: the kernel would load it (its signature is acceptable and it
	// has no lint error), so its rules count for coverage.
	Loaded      bool         `json:"loaded"`
	Diagnostics []Diagnostic `json:"diagnostics,omitempty"`
}

// ImageInfo describes the verified image.
type ImageInfo struct {
	Path        string `json:"path,omitempty"`
	Size        int64  `json:"size"`
	Compression string `json:"compression"`
	BlockSize   uint32 `json:"block_size"`
	Inodes      uint32 `json:"inodes"`
}

// Summary counts results.
type Summary struct {
	Files     int   `json:"files"`
	Bytes     int64 `json:"bytes"`
	Signed    int   `json:"signed"`     // files with a valid, trusted signature
	Digest    int   `json:"digest"`     // files with a matching digest-only value
	Unsigned  int   `json:"unsigned"`   // files without security.ima that nothing requires to have one
	Failed    int   `json:"failed"`     // files with at least one problem
	Appraised int   `json:"appraised"`  // files some policy rule appraises
	Refused   int   `json:"refused"`    // of those, files the kernel would refuse
	Rules     int   `json:"rules"`      // policy rules in force
	PolicyBad int   `json:"policy_bad"` // policy files with lint errors
}

// Report is the result of verifying an image.
type Report struct {
	Format string    `json:"format"`
	Image  ImageInfo `json:"image"`
	// CheckedAt is the time certificates were checked at; nil when dates
	// were not checked.
	CheckedAt *time.Time `json:"checked_at"`
	Kernel    string     `json:"kernel"`
	OK        bool       `json:"ok"`
	// ImageSignature is the verdict on the whole-image signature (always
	// present in a report Image returns).
	ImageSignature *ImageSignatureResult `json:"image_signature"`
	// Error is set, with nothing else checked, when the image itself could
	// not be read (a report written for an *ImageError).
	Error   string  `json:"error,omitempty"`
	Summary Summary `json:"summary"`
	// Reasons counts failed files by reason code.
	Reasons  map[Reason]int  `json:"reasons"`
	Signers  []SignerSummary `json:"signers"`
	Policies []PolicyResult  `json:"policies"`
	// Files lists every regular file in image order (hard links once per
	// path).
	Files []*FileResult `json:"files"`
	// Record is the comparison with the build record (Options.Record);
	// nil when none was given.
	Record *RecordResult `json:"record,omitempty"`
	// Setuid lists the setuid and setgid regular files; those not
	// Recorded are warned about.
	Setuid []SetuidFile `json:"setuid,omitempty"`
}

// Failures returns the files with problems, in image order.
func (r *Report) Failures() []*FileResult {
	var out []*FileResult
	for _, f := range r.Files {
		if f.Failed() {
			out = append(out, f)
		}
	}
	return out
}

// File returns the result for the image path p ("/usr/bin/sh"), or nil.
func (r *Report) File(p string) *FileResult {
	for _, f := range r.Files {
		if f.Path == p {
			return f
		}
	}
	return nil
}

// MarshalJSON encodes the report with empty lists as [] rather than null.
func (r *Report) MarshalJSON() ([]byte, error) {
	type plain Report
	c := *r
	if c.Signers == nil {
		c.Signers = []SignerSummary{}
	}
	if c.Policies == nil {
		c.Policies = []PolicyResult{}
	}
	if c.Files == nil {
		c.Files = []*FileResult{}
	}
	if c.Reasons == nil {
		c.Reasons = map[Reason]int{}
	}
	return json.Marshal((*plain)(&c))
}

// finish fills the summary, the reason counts and OK.
func (r *Report) finish() {
	s := Summary{Rules: r.Summary.Rules}
	r.Reasons = map[Reason]int{}
	for _, f := range r.Files {
		s.Files++
		s.Bytes += f.Size
		switch f.Status {
		case StatusOK:
			s.Signed++
		case StatusDigest:
			s.Digest++
		case StatusUnsigned:
			s.Unsigned++
		}
		if f.Appraisal != nil {
			s.Appraised++
			if f.Appraisal.Refused {
				s.Refused++
			}
		}
		if f.Failed() {
			s.Failed++
			seen := map[Reason]bool{}
			for _, p := range f.Problems {
				if !seen[p.Reason] {
					seen[p.Reason] = true
					r.Reasons[p.Reason]++
				}
			}
		}
	}
	for _, p := range r.Policies {
		for _, d := range p.Diagnostics {
			if d.Severity == "error" {
				s.PolicyBad++
				break
			}
		}
	}
	r.Summary = s
	r.OK = s.Failed == 0 && s.PolicyBad == 0 && !r.ImageSignature.Failed() && r.Error == "" && (r.Record == nil || len(r.Record.Problems) == 0)
	sort.Slice(r.Signers, func(i, j int) bool { return r.Signers[i].KeyID < r.Signers[j].KeyID })
}
