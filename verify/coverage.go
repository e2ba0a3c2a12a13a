package verify

import (
	"fmt"
	"slices"

	"github.com/imaforge/imaforge/policy"
)

// policies lints every policy file (Options.Policies, then the image's
// fragments in image order) for the target kernel and returns the rules in
// force: those of the files the kernel would load (no rule its grammar
// rejects: one bad rule makes the kernel refuse the whole write; for a
// fragment, also a signature it accepts).
func (v *verifier) policies(rep *Report) []policy.Rule {
	var rules []policy.Rule
	for _, p := range v.opts.Policies {
		rs, _ := policy.ParseFor(p.Name, p.Data, v.opts.Kernel)
		pr := PolicyResult{Path: p.Name, Source: "option", Rules: len(rs), Diagnostics: diagnostics(policy.Lint(p.Name, p.Data, v.opts.Kernel))}
		// One rule the kernel rejects makes it refuse the whole write.
		pr.Loaded = !hasError(pr.Diagnostics)
		if pr.Loaded {
			rules = append(rules, rs...)
		}
		rep.Policies = append(rep.Policies, pr)
	}
	for _, f := range rep.Files {
		if !f.Policy {
			continue
		}
		data, ok := v.policyData[f]
		if !ok {
			rep.Policies = append(rep.Policies, PolicyResult{Path: f.Path, Source: "image"})
			continue
		}
		rs, _ := policy.ParseFor(f.Path, data, v.opts.Kernel)
		pr := PolicyResult{Path: f.Path, Source: "image", Rules: len(rs), Diagnostics: diagnostics(policy.Lint(f.Path, data, v.opts.Kernel))}
		if hasError(pr.Diagnostics) {
			n := 0
			first := ""
			for _, d := range pr.Diagnostics {
				if d.Severity == "error" {
					if n == 0 {
						first = d.Pos + ": " + d.Message
					}
					n++
				}
			}
			f.add(ReasonPolicyLint, fmt.Sprintf("kernel %s would reject this policy (%d error(s)); first: %s", v.opts.Kernel, n, first))
		}
		pr.Loaded = !hasError(pr.Diagnostics) && f.kernelValid()
		if pr.Loaded {
			rules = append(rules, rs...)
		}
		rep.Policies = append(rep.Policies, pr)
	}
	return rules
}

func diagnostics(ds []policy.Diagnostic) []Diagnostic {
	var out []Diagnostic
	for _, d := range ds {
		out = append(out, Diagnostic{Pos: d.Pos.String(), Severity: d.Severity.String(), Message: d.Msg})
	}
	return out
}

func hasError(ds []Diagnostic) bool {
	for _, d := range ds {
		if d.Severity == "error" {
			return true
		}
	}
	return false
}

// coverage decides for every file how the kernel would appraise it under
// rules, for the accesses policy.SquashFSAccesses models (a read-only open;
// for an executable also execve and mmap with PROT_EXEC; for a policy
// fragment also the POLICY_CHECK of loading it), and records the files it
// would refuse as ReasonPolicyRefused.
func (v *verifier) coverage(files []*FileResult, rules []policy.Rule) {
	if len(rules) == 0 {
		return
	}
	for _, f := range files {
		acc := policy.SquashFSAccesses(f.exec, f.UID, f.GID)
		if f.Policy {
			acc = append(acc, policy.Access{Func: policy.FuncPolicyCheck, Mask: policy.MayRead,
				FSMagic: policy.SquashFSMagic, FSName: "squashfs"})
		}
		d := policy.Requirement(rules, acc)
		if !d.Appraise || d.Index < 0 || d.Index >= len(rules) {
			continue
		}
		r := &rules[d.Index]
		a := &Appraisal{Rule: r.Pos.String() + ": " + r.String(), Uncertain: d.Uncertain, source: r.Pos.File}
		if d.Type != policy.AppraiseAny {
			a.Type = d.Type.String()
		}
		f.Appraisal = a
		why := ""
		switch {
		case !f.hasValue:
			why = "it has no security.ima"
		case d.Type == policy.AppraiseSigV3:
			why = "appraise_type=sigv3 needs an fs-verity signature, which SquashFS cannot have"
		case f.Status == StatusDigest && d.Type.RequiresSignature():
			why = fmt.Sprintf("it has only a digest and appraise_type=%s requires a signature", d.Type)
		case f.Type == "digest" || f.Type == "digest-ng":
			if !f.kernelValid() {
				why = "its digest does not match the content"
			}
		case !f.kernelValid():
			for _, p := range f.Problems {
				if p.Reason.kernelRefuses() {
					why = fmt.Sprintf("its signature fails (%s)", p.Reason)
					break
				}
			}
		case d.Algos != nil && !slices.Contains(d.Algos, f.Hash):
			why = fmt.Sprintf("its %s signature is not among appraise_algos=%v", f.Hash, d.Algos)
		}
		if why == "" {
			continue
		}
		a.Refused = true
		f.add(ReasonPolicyRefused, fmt.Sprintf("the kernel would refuse it: %s (rule %s)", why, a.Rule))
	}
}
