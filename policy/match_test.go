package policy

import "testing"

func mustParse(t *testing.T, text string) []Rule {
	t.Helper()
	rules, err := ParseFor("t", []byte(text), V6_12)
	if err != nil {
		t.Fatal(err)
	}
	return rules
}

func TestAppraisal(t *testing.T) {
	rules := mustParse(t, `dont_appraise fsmagic=0x1021994
dont_appraise obj_type=var_log_t
appraise func=BPRM_CHECK fsmagic=0x73717368 appraise_type=imasig
appraise func=MMAP_CHECK mask=MAY_EXEC fsmagic=0x73717368 appraise_type=imasig
appraise func=FILE_CHECK mask=^MAY_READ fsname=squashfs euid=0
appraise func=MODULE_CHECK appraise_type=imasig|modsig appraise_algos=sha256,sha512
appraise fowner=0 fgroup>100
measure func=BPRM_CHECK
`)
	sq := Access{FSMagic: SquashFSMagic, FSName: "squashfs", FOwner: 1000, FGroup: 1000}
	with := func(a Access, f func(*Access)) Access { f(&a); return a }
	tests := []struct {
		name      string
		a         Access
		appraise  bool
		index     int
		typ       AppraiseType
		uncertain bool
	}{
		{"exec on squashfs", with(sq, func(a *Access) { a.Func, a.Mask = FuncBprmCheck, MayExec }), true, 2, AppraiseImaSig, true},
		{"exec on tmpfs", with(sq, func(a *Access) { a.Func, a.Mask, a.FSMagic = FuncBprmCheck, MayExec, 0x1021994 }), false, 0, AppraiseAny, false},
		{"exec on ext4", with(sq, func(a *Access) { a.Func, a.Mask, a.FSMagic = FuncBprmCheck, MayExec, 0xef53 }), false, -1, AppraiseAny, true},
		{"mmap exec", with(sq, func(a *Access) { a.Func, a.Mask = FuncMmapCheck, MayExec }), true, 3, AppraiseImaSig, true},
		{"mmap read only: mask= is exact", with(sq, func(a *Access) { a.Func, a.Mask = FuncMmapCheck, MayRead }), false, -1, AppraiseAny, true},
		{"read by euid 0: mask=^ is any bit", with(sq, func(a *Access) { a.Func, a.Mask, a.EUID = FuncFileCheck, MayRead|MayWrite, 0 }), true, 4, AppraiseAny, true},
		{"read by euid 1000", with(sq, func(a *Access) { a.Func, a.Mask, a.EUID = FuncFileCheck, MayRead, 1000 }), false, -1, AppraiseAny, true},
		{"read by setuid-capable uid 0 with euid 1000", with(sq, func(a *Access) {
			a.Func, a.Mask, a.UID, a.EUID, a.CapSetuid = FuncFileCheck, MayRead, 0, 1000, true
		}), true, 4, AppraiseAny, true},
		{"module", Access{Func: FuncModuleCheck, FOwner: 5}, true, 5, AppraiseImaSigModsig, true},
		{"root-owned file, fgroup>100", with(sq, func(a *Access) { a.Func, a.Mask, a.FOwner, a.FGroup, a.EUID = FuncFileCheck, MayWrite, 0, 101, 7 }), true, 6, AppraiseAny, true},
		{"root-owned file, fgroup 100", with(sq, func(a *Access) { a.Func, a.Mask, a.FOwner, a.FGroup, a.EUID = FuncFileCheck, MayWrite, 0, 100, 7 }), false, -1, AppraiseAny, true},
		{"POST_SETATTR ignores func and mask", with(sq, func(a *Access) { a.Func = FuncPostSetattr }), true, 2, AppraiseImaSig, true},
	}
	for _, tt := range tests {
		d := Appraisal(rules, tt.a)
		if d.Appraise != tt.appraise || d.Index != tt.index || d.Type != tt.typ || d.Uncertain != tt.uncertain {
			t.Errorf("%s: got %+v, want appraise=%v index=%d type=%q uncertain=%v", tt.name, d, tt.appraise, tt.index, tt.typ, tt.uncertain)
		}
	}
	if d := Appraisal(rules, Access{Func: FuncModuleCheck}); len(d.Algos) != 2 || d.Algos[1] != "sha512" {
		t.Errorf("algos = %v", d.Algos)
	}
	if m, i := Measured(rules, Access{Func: FuncBprmCheck}); !m || i != 7 {
		t.Errorf("Measured = %v, %d", m, i)
	}
}

func TestMatchKeyCheck(t *testing.T) {
	rules := mustParse(t, "measure func=KEY_CHECK keyrings=.ima|.evm uid=0\nmeasure func=CRITICAL_DATA label=selinux\n")
	for _, tt := range []struct {
		a    Access
		want int
	}{
		{Access{Func: FuncKeyCheck, Data: ".ima"}, 0},
		{Access{Func: FuncKeyCheck, Data: ".builtin_trusted_keys"}, -1},
		{Access{Func: FuncKeyCheck, Data: ".evm", UID: 5}, -1},
		{Access{Func: FuncCriticalData, Data: "selinux"}, 1},
		{Access{Func: FuncCriticalData, Data: "kernel_info"}, -1},
	} {
		if _, i := Measured(rules, tt.a); i != tt.want {
			t.Errorf("%+v: rule %d, want %d", tt.a, i, tt.want)
		}
	}
}

func TestRequirement(t *testing.T) {
	rules := mustParse(t, "appraise func=BPRM_CHECK fsmagic=0x73717368 appraise_type=imasig\nappraise func=FILE_CHECK mask=MAY_READ fowner=0\n")
	tests := []struct {
		exec     bool
		owner    uint32
		appraise bool
		sig      bool
		index    int
	}{
		{true, 0, true, true, 0},
		{true, 1000, true, true, 0},
		{false, 0, true, false, 1},
		{false, 1000, false, false, -1},
	}
	for _, tt := range tests {
		d := Requirement(rules, SquashFSAccesses(tt.exec, tt.owner, 0))
		if d.Appraise != tt.appraise || d.Type.RequiresSignature() != tt.sig || d.Index != tt.index || d.Uncertain {
			t.Errorf("exec=%v owner=%d: %+v", tt.exec, tt.owner, d)
		}
	}
}
