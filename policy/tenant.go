package policy

import (
	"errors"
	"fmt"
)

// Tenant confines a policy fragment to one tenant's files. A tenant image
// mounted at run time brings a fragment that the device appends to the
// running policy (CONFIG_IMA_WRITE_POLICY: every later write of a signed
// policy file appends its rules after those already loaded). SquashFS has
// no filesystem UUID, so the tenant's files are named by their owner or
// group: fowner= and fgroup= with the ids the owner gave the tenant.
//
// Appended rules cannot override the rules before them (the kernel lets the
// first matching appraise or dont_appraise rule decide, and likewise for
// measure), but they do come before every fragment appended later: a
// dont_appraise, or any rule not confined to the tenant's files, would
// change what later tenants' rules, and any file the base policy leaves to
// them, get. So a tenant rule must
//   - be measure, appraise or audit (no dont_*, no hash);
//   - name func= with a hook on files (BPRM_CHECK, MMAP_CHECK,
//     MMAP_CHECK_REQPROT, FILE_CHECK): module, firmware, kexec, policy, key
//     and critical-data hooks are the device's, not a tenant's;
//   - have fowner= or fgroup= with the tenant's id, and no fowner=/fgroup=
//     naming another id or a range (< or >).
//
// Who may sign a tenant fragment is decided by the device's loader
// (load-policy.sh, written by `imaforge pki export`): the owner's policy
// key, not the tenant's (see docs/policy.md).
type Tenant struct {
	// FOwner is the uid the tenant's files have (fowner=).
	FOwner *uint32 `yaml:"fowner,omitempty" json:"fowner,omitempty"`
	// FGroup is the gid the tenant's files have (fgroup=).
	FGroup *uint32 `yaml:"fgroup,omitempty" json:"fgroup,omitempty"`
}

// ErrTenant is wrapped by errors about a tenant's ids.
var ErrTenant = errors.New("invalid tenant")

// Validate checks that t names at least one id.
func (t Tenant) Validate() error {
	if t.FOwner == nil && t.FGroup == nil {
		return fmt.Errorf("%w: give fowner, fgroup or both (the ids of the tenant's files)", ErrTenant)
	}
	return nil
}

func (t Tenant) String() string {
	s := ""
	if t.FOwner != nil {
		s = fmt.Sprintf("fowner=%d", *t.FOwner)
	}
	if t.FGroup != nil {
		if s != "" {
			s += " "
		}
		s += fmt.Sprintf("fgroup=%d", *t.FGroup)
	}
	return s
}

// tenantHooks are the hooks on a file's contents a tenant rule may name.
var tenantHooks = map[Func]bool{
	FuncBprmCheck: true, FuncMmapCheck: true, FuncMmapCheckReqprot: true, FuncFileCheck: true,
}

// LintTenant checks that every rule is confined to t's files (see
// [Tenant]) and returns an error diagnostic at each rule that is not. The
// rules come from [Parse] or [ParseFor], so their positions name the file.
func LintTenant(rules []Rule, t Tenant) []Diagnostic {
	var ds []Diagnostic
	bad := func(r *Rule, format string, args ...any) {
		pos := r.Pos
		if pos.Line < 1 {
			pos.Line = 1
		}
		if pos.Col < 1 {
			pos.Col = 1
		}
		ds = append(ds, Diagnostic{Pos: pos, Severity: SeverityError,
			Msg: "tenant fragment (" + t.String() + "): " + fmt.Sprintf(format, args...)})
	}
	if err := t.Validate(); err != nil {
		return []Diagnostic{{Pos: Pos{Line: 1, Col: 1}, Severity: SeverityError, Msg: err.Error()}}
	}
	idOK := func(c *IDCond, own *uint32) bool {
		return c == nil || own != nil && c.Op == OpEq && c.ID == *own
	}
	for i := range rules {
		r := &rules[i]
		switch r.Action {
		case ActionMeasure, ActionAppraise, ActionAudit:
		default:
			bad(r, "%s is not allowed: appended after the base policy it would exempt files from the rules of fragments loaded later", r.Action)
			continue
		}
		if !tenantHooks[r.Func] {
			if r.Func == FuncNone {
				bad(r, "no func=: the rule would apply to every hook, the device's own (modules, firmware, kexec, policy) included; name BPRM_CHECK, MMAP_CHECK, MMAP_CHECK_REQPROT or FILE_CHECK")
			} else {
				bad(r, "func=%s is not a hook on the tenant's files (want BPRM_CHECK, MMAP_CHECK, MMAP_CHECK_REQPROT or FILE_CHECK)", r.Func)
			}
			continue
		}
		if !idOK(r.FOwner, t.FOwner) {
			bad(r, "fowner%c%d reaches files that are not the tenant's", rune(r.FOwner.Op), r.FOwner.ID)
			continue
		}
		if !idOK(r.FGroup, t.FGroup) {
			bad(r, "fgroup%c%d reaches files that are not the tenant's", rune(r.FGroup.Op), r.FGroup.ID)
			continue
		}
		if r.FOwner == nil && r.FGroup == nil {
			bad(r, "no tenant condition: add %s so the rule only reaches the tenant's files", t)
		}
	}
	return ds
}
