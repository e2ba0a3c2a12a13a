package verify

import (
	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/policy"
)

// PlannedFile is a regular file of an image not yet written: what the
// coverage check needs to know of it without its content.
type PlannedFile struct {
	Path     string
	Mode     uint32 // permission bits (07777): any x bit makes it an executable
	UID, GID uint32
	// Signed: the file will carry a valid signature (the build makes it)
	// with Hash; otherwise it has no security.ima.
	Signed bool
	Hash   imasig.Hash
	// Policy marks a policy fragment (it is also loaded: POLICY_CHECK).
	Policy bool
}

// Refusal is a file the kernel would refuse under the policy rules.
type Refusal struct {
	Path string
	// Policy is the name of the policy file of the deciding rule, Rule that
	// rule as "file:line:col: rule".
	Policy string
	Rule   string
	// Message says why (as the report's policy-refused problem does).
	Message string
}

// Predict says which files the kernel would refuse under the rules of
// policies (in load order; a file the target kernel's grammar rejects is not
// loaded), from the files' metadata alone: it is the coverage check of
// Image, run before an image is written (the build's own policy fragments
// against the files it is about to sign or leave unsigned).
func Predict(files []PlannedFile, policies []PolicyFile, kernel policy.Version) []Refusal {
	if kernel == 0 {
		kernel = policy.DefaultVersion
	}
	v := &verifier{opts: Options{Policies: policies, Kernel: kernel}}
	frs := make([]*FileResult, len(files))
	for i, pf := range files {
		f := &FileResult{Path: pf.Path, UID: pf.UID, GID: pf.GID, exec: pf.Mode&0o111 != 0, perm: pf.Mode & 0o7777, Status: StatusUnsigned}
		if pf.Signed {
			f.hasValue, f.Status, f.Type, f.Hash = true, StatusOK, typeName(imasig.TypeSignature), pf.Hash.String()
		}
		f.Policy = pf.Policy
		frs[i] = f
	}
	rules := v.policies(&Report{}) // the given files only: fragments are given as policies
	v.coverage(frs, rules)
	var out []Refusal
	for _, f := range frs {
		if f.Appraisal == nil || !f.Appraisal.Refused {
			continue
		}
		r := Refusal{Path: f.Path, Policy: f.Appraisal.source, Rule: f.Appraisal.Rule}
		for _, p := range f.Problems {
			if p.Reason == ReasonPolicyRefused {
				r.Message = p.Message
			}
		}
		out = append(out, r)
	}
	return out
}
