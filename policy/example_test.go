package policy_test

import (
	"fmt"
	"os"

	"github.com/imaforge/imaforge/policy"
)

func ExampleRender() {
	f := policy.Fragment{
		Name: "acme-apps",
		Path: "/etc/ima/policy.d/50-acme.policy",
		Key:  "acme",
		Generate: &policy.Generate{
			Hooks:    []string{"exec", "mmap"},
			Appraise: true,
			Measure:  true,
		},
	}
	data, warnings, err := f.Check(policy.V6_1)
	if err != nil {
		fmt.Println(err)
		return
	}
	os.Stdout.Write(data)
	fmt.Println(len(warnings), "warnings")
	// Output:
	// # imaforge policy fragment acme-apps
	// measure func=BPRM_CHECK fsmagic=0x73717368 template=ima-sig
	// measure func=MMAP_CHECK mask=MAY_EXEC fsmagic=0x73717368 template=ima-sig
	// appraise func=BPRM_CHECK fsmagic=0x73717368 appraise_type=imasig
	// appraise func=MMAP_CHECK mask=MAY_EXEC fsmagic=0x73717368 appraise_type=imasig
	// 0 warnings
}

func ExampleLint() {
	policyText := []byte("measure func=BPRM_CHECK\nappraise func=BPRM_CHECK gid=0 appraise_type=imasig\n")
	for _, d := range policy.Lint("50-acme.policy", policyText, policy.V5_15) {
		fmt.Println(d)
	}
	// Output:
	// 50-acme.policy:2:26: "gid=" is not accepted by Linux 5.15 (added in 5.16)
}
