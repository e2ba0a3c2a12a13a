package policy

// Access describes one access the kernel judges against the policy: the
// hook and access mask, the file's filesystem and owner, and the
// credentials of the process. It is what ima_match_rules compares a rule
// with.
type Access struct {
	Func Func // the hook: FuncBprmCheck for execve, FuncMmapCheck, FuncFileCheck, ...
	Mask Mask // MayExec for execve and mmap(PROT_EXEC), MayRead for a read-only open

	FSMagic uint64   // superblock magic, 0x73717368 for SquashFS
	FSName  string   // filesystem type name, "squashfs"
	FSUUID  [16]byte // superblock UUID (all zero on SquashFS)

	FOwner, FGroup uint32 // the inode's owner and group

	// Process credentials. Without CapSetuid (CapSetgid) only EUID (EGID)
	// is compared for euid= (egid=); with it, any of UID, EUID and SUID.
	UID, EUID, SUID      uint32
	GID, EGID, SGID      uint32
	CapSetuid, CapSetgid bool

	// Data is the keyring name (KEY_CHECK) or label (CRITICAL_DATA).
	Data string
}

// Decision is the outcome of looking an access up in a rule list.
type Decision struct {
	// Appraise reports whether the access is appraised.
	Appraise bool
	// Index is the index in the rule list of the rule that decided (an
	// appraise or dont_appraise rule), or -1 when none matched.
	Index int
	// Type is the appraise_type= of the deciding appraise rule:
	// AppraiseAny accepts a digest, the others need a signature.
	Type AppraiseType
	// Algos is its appraise_algos= list (nil: any algorithm).
	Algos []string
	// Uncertain reports that a rule with LSM conditions (obj_type= and the
	// like), which cannot be evaluated off the device, was skipped before
	// the decision.
	Uncertain bool
}

// Appraisal decides whether the kernel appraises access a under rules, as
// ima_match_policy does for IMA_APPRAISE: rules are tried in order, and the
// first appraise or dont_appraise rule that matches decides.
func Appraisal(rules []Rule, a Access) Decision {
	d := Decision{Index: -1}
	for i := range rules {
		r := &rules[i]
		if r.Action != ActionAppraise && r.Action != ActionDontAppraise {
			continue
		}
		if r.HasLSM() {
			if Matches(r, a) {
				d.Uncertain = true
			}
			continue
		}
		if !Matches(r, a) {
			continue
		}
		d.Index = i
		if r.Action == ActionAppraise {
			d.Appraise = true
			d.Type = r.AppraiseType
			d.Algos = r.AppraiseAlgos
		}
		return d
	}
	return d
}

// Measured reports whether access a is measured under rules: the first
// matching measure or dont_measure rule decides. index is that rule's
// index, or -1.
func Measured(rules []Rule, a Access) (measured bool, index int) {
	for i := range rules {
		r := &rules[i]
		if r.Action != ActionMeasure && r.Action != ActionDontMeasure || r.HasLSM() {
			continue
		}
		if Matches(r, a) {
			return r.Action == ActionMeasure, i
		}
	}
	return false, -1
}

// Matches reports whether the conditions of rule r, other than LSM labels,
// hold for access a (ima_match_rules).
func Matches(r *Rule, a Access) bool {
	if r.Func != FuncNone && r.Func != a.Func && a.Func != FuncPostSetattr {
		return false
	}
	if a.Func == FuncKeyCheck || a.Func == FuncCriticalData {
		if r.Func != a.Func {
			return false
		}
		if r.UID != nil && !r.UID.Effective && !r.UID.Match(a.UID) {
			return false
		}
		list := r.Keyrings
		if a.Func == FuncCriticalData {
			list = r.Labels
		}
		if len(list) == 0 {
			return true
		}
		for _, s := range list {
			if s == a.Data {
				return true
			}
		}
		return false
	}
	if r.Mask != 0 && a.Func != FuncPostSetattr {
		if r.MaskAny && r.Mask&a.Mask == 0 || !r.MaskAny && r.Mask != a.Mask {
			return false
		}
	}
	if r.FSMagic != nil && *r.FSMagic != a.FSMagic {
		return false
	}
	if r.FSName != "" && r.FSName != a.FSName {
		return false
	}
	if r.FSUUID != nil && *r.FSUUID != a.FSUUID {
		return false
	}
	if c := r.UID; c != nil {
		if !c.Effective && !c.Match(a.UID) {
			return false
		}
		if c.Effective && !(c.Match(a.EUID) || a.CapSetuid && (c.Match(a.SUID) || c.Match(a.UID))) {
			return false
		}
	}
	if c := r.GID; c != nil {
		if !c.Effective && !c.Match(a.GID) {
			return false
		}
		if c.Effective && !(c.Match(a.EGID) || a.CapSetgid && (c.Match(a.SGID) || c.Match(a.GID))) {
			return false
		}
	}
	if r.FOwner != nil && !r.FOwner.Match(a.FOwner) {
		return false
	}
	if r.FGroup != nil && !r.FGroup.Match(a.FGroup) {
		return false
	}
	return true
}

// SquashFSAccesses returns the accesses a file on a mounted SquashFS image
// is judged under: a read-only open by root (FILE_CHECK, MAY_READ) and,
// for an executable, execve (BPRM_CHECK) and mmap with PROT_EXEC
// (MMAP_CHECK, MAY_EXEC). owner and group are the inode's.
func SquashFSAccesses(executable bool, owner, group uint32) []Access {
	base := Access{FSMagic: SquashFSMagic, FSName: "squashfs", FOwner: owner, FGroup: group}
	read := base
	read.Func, read.Mask = FuncFileCheck, MayRead
	if !executable {
		return []Access{read}
	}
	exec, mmap := base, base
	exec.Func, exec.Mask = FuncBprmCheck, MayExec
	mmap.Func, mmap.Mask = FuncMmapCheck, MayExec
	return []Access{exec, mmap, read}
}

// Requirement returns the strictest [Appraisal] among accesses: one that
// needs a signature beats one that accepts a digest, which beats none.
// Uncertain is set if it is set for any access.
func Requirement(rules []Rule, accesses []Access) Decision {
	best := Decision{Index: -1}
	rank := func(d Decision) int {
		switch {
		case d.Appraise && d.Type.RequiresSignature():
			return 2
		case d.Appraise:
			return 1
		}
		return 0
	}
	uncertain := false
	for _, a := range accesses {
		d := Appraisal(rules, a)
		uncertain = uncertain || d.Uncertain
		if rank(d) > rank(best) {
			best = d
		}
	}
	best.Uncertain = uncertain
	return best
}
