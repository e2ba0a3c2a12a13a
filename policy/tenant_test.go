package policy

import (
	"errors"
	"strings"
	"testing"
)

// TestLintTenant: each rule of a tenant fragment must be confined to the
// tenant's files; the table has one rule that passes or fails per row, and
// a failing rule names the reason at the rule's line.
func TestLintTenant(t *testing.T) {
	owner := Tenant{FOwner: u32(2001)}
	both := Tenant{FOwner: u32(2001), FGroup: u32(3001)}
	group := Tenant{FGroup: u32(3001)}
	tests := []struct {
		tenant Tenant
		rule   string
		want   string // "" passes
	}{
		{owner, "appraise func=BPRM_CHECK fsmagic=0x73717368 fowner=2001 appraise_type=imasig", ""},
		{owner, "measure func=MMAP_CHECK mask=MAY_EXEC fowner=2001 template=ima-sig", ""},
		{owner, "audit func=FILE_CHECK mask=^MAY_READ fowner=2001", ""},
		{owner, "appraise func=MMAP_CHECK_REQPROT fowner=2001 appraise_type=imasig", ""},
		{group, "appraise func=BPRM_CHECK fgroup=3001 appraise_type=imasig", ""},
		{both, "appraise func=BPRM_CHECK fowner=2001 fgroup=3001 appraise_type=imasig", ""},
		{both, "appraise func=BPRM_CHECK fgroup=3001 appraise_type=imasig", ""},
		{owner, "dont_appraise fsmagic=0x73717368", "dont_appraise is not allowed"},
		{owner, "dont_appraise func=BPRM_CHECK fowner=2001", "dont_appraise is not allowed"},
		{owner, "dont_measure fowner=2001", "dont_measure is not allowed"},
		{owner, "hash func=FILE_CHECK fowner=2001", "hash is not allowed"},
		{owner, "appraise fowner=2001 appraise_type=imasig", "no func="},
		{owner, "appraise func=POLICY_CHECK fowner=2001 appraise_type=imasig", "func=POLICY_CHECK"},
		{owner, "appraise func=MODULE_CHECK fowner=2001 appraise_type=imasig", "func=MODULE_CHECK"},
		{owner, "appraise func=BPRM_CHECK fsmagic=0x73717368 appraise_type=imasig", "no tenant condition"},
		{owner, "appraise func=BPRM_CHECK uid=2001 appraise_type=imasig", "no tenant condition"},
		{owner, "appraise func=BPRM_CHECK fowner=2002 appraise_type=imasig", "fowner=2002"},
		{owner, "appraise func=BPRM_CHECK fowner>1000 appraise_type=imasig", "fowner>1000"},
		{owner, "appraise func=BPRM_CHECK fowner<2002 appraise_type=imasig", "fowner<2002"},
		{owner, "appraise func=BPRM_CHECK fowner=2001 fgroup=0 appraise_type=imasig", "fgroup=0"},
		{group, "appraise func=BPRM_CHECK fowner=2001 fgroup=3001 appraise_type=imasig", "fowner=2001"},
		{Tenant{}, "appraise func=BPRM_CHECK fowner=2001 appraise_type=imasig", "fowner, fgroup or both"},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			data := []byte("# tenant\n\n" + tt.rule + "\n")
			rules, err := ParseFor("t.policy", data, V6_12)
			if err != nil {
				t.Fatalf("the kernel grammar refuses the row itself: %v", err)
			}
			ds := LintTenant(rules, tt.tenant)
			if tt.want == "" {
				if len(ds) != 0 {
					t.Fatalf("confined rule refused: %v", ds)
				}
				return
			}
			if len(ds) != 1 {
				t.Fatalf("got %d diagnostics %v, want 1 with %q", len(ds), ds, tt.want)
			}
			d := ds[0]
			if d.Severity != SeverityError || !strings.Contains(d.Msg, tt.want) {
				t.Errorf("diagnostic %v, want an error with %q", d, tt.want)
			}
			if tt.tenant.Validate() == nil && d.Pos != (Pos{File: "t.policy", Line: 3, Col: 1}) {
				t.Errorf("position %v, want t.policy:3:1", d.Pos)
			}
		})
	}
}

// TestFragmentTenantCheck: Fragment.Check adds the tenant lint to the
// kernel's grammar, so a build fails on either, with an ErrorList.
func TestFragmentTenantCheck(t *testing.T) {
	f := Fragment{Name: "acme", Path: "/opt/acme/acme.policy", Key: "owner",
		Tenant: &Tenant{FOwner: u32(2001)},
		Rules: []string{
			"appraise func=BPRM_CHECK fowner=2001 appraise_type=imasig",
			"dont_appraise fsmagic=0x73717368",
		}}
	_, _, err := f.Check(V6_1)
	var l ErrorList
	if !errors.As(err, &l) || len(l) != 1 || l[0].Pos.Line != 3 || !strings.Contains(l[0].Msg, "dont_appraise") {
		t.Fatalf("Check: %v, want one error at acme.policy:3", err)
	}
	if kind, i, ok := f.Origin(l[0].Pos.Line); !ok || kind != "rules" || i != 1 {
		t.Errorf("Origin(%d) = %s %d %v, want rules 1", l[0].Pos.Line, kind, i, ok)
	}
	f.Rules = f.Rules[:1]
	if _, _, err := f.Check(V6_1); err != nil {
		t.Errorf("confined fragment: %v", err)
	}
	f.Tenant = nil
	f.Rules = []string{"dont_appraise fsmagic=0x73717368"}
	if _, _, err := f.Check(V6_1); err != nil {
		t.Errorf("a fragment that is not a tenant's is not confined: %v", err)
	}
}

// FuzzLintTenant: the tenant lint never panics, gives every diagnostic a
// position, and never passes a rule that lacks the tenant's id or is not an
// appraise, measure or audit rule.
func FuzzLintTenant(f *testing.F) {
	f.Add([]byte("appraise func=BPRM_CHECK fowner=2001 appraise_type=imasig\n"), uint32(2001))
	f.Add([]byte("dont_appraise fsmagic=0x73717368\nmeasure func=FILE_CHECK fgroup=7\n"), uint32(7))
	f.Fuzz(func(t *testing.T, data []byte, id uint32) {
		rules, _ := ParseFor("fuzz", data, V6_1)
		ten := Tenant{FOwner: &id, FGroup: &id}
		ds := LintTenant(rules, ten)
		bad := map[int]bool{}
		for _, d := range ds {
			if d.Pos.Line < 1 || d.Pos.Col < 1 || d.Severity != SeverityError {
				t.Fatalf("diagnostic %v", d)
			}
			bad[d.Pos.Line] = true
		}
		for _, r := range rules {
			if bad[r.Pos.Line] {
				continue
			}
			mine := func(c *IDCond) bool { return c != nil && c.Op == OpEq && c.ID == id }
			if !mine(r.FOwner) && !mine(r.FGroup) || r.Action&(ActionMeasure|ActionAppraise|ActionAudit) == 0 {
				t.Fatalf("passed %q", r.String())
			}
		}
	})
}
