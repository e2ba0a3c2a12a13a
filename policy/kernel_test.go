package policy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestKernelVerdicts compares the linter with a real kernel. Every rule of
// testdata/policy/kernel/rules.txt was written to
// /sys/kernel/security/ima/policy of Debian's 6.1.0-56 kernel under qemu
// (testdata/policy/kernel/run.sh records how), and the kernel's answer
// (OK or EINVAL) is in debian-6.1.0-56.txt. With that kernel's .config, a
// rule the linter finds errors in must have got EINVAL, and a rule it
// accepts without warnings must have been accepted. Rules with warnings only
// (LSM labels, hash algorithms built as modules) depend on the running
// system and may go either way.
func TestKernelVerdicts(t *testing.T) {
	dir := filepath.Join(testdata, "kernel")
	cfg, err := os.ReadFile(filepath.Join(dir, "debian-6.1.0-56.config"))
	if err != nil {
		t.Fatal(err)
	}
	target := Target{Version: V6_1, Config: ParseKconfig(cfg)}
	if target.Config.Modsig != Disabled || target.Config.Crypto["CRYPTO_SHA512"] != Module {
		t.Fatalf("config not read: %+v", target.Config)
	}
	data, err := os.ReadFile(filepath.Join(dir, "debian-6.1.0-56.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var definite, either, rejected int
	for i, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		verdict, rule, ok := strings.Cut(line, "\t")
		if !ok || verdict != "OK" && verdict != "EINVAL" {
			t.Fatalf("line %d: %q", i+1, line)
		}
		ds := LintTarget("k", []byte(rule+"\n"), target)
		switch {
		case Errors(ds) != nil:
			definite++
			rejected++
			if verdict != "EINVAL" {
				t.Errorf("the kernel accepts %q, the linter says:\n%v", rule, Errors(ds))
			}
		case len(ds) == 0:
			definite++
			if verdict != "OK" {
				t.Errorf("the kernel rejects %q, the linter accepts it", rule)
			}
		default:
			either++
		}
	}
	if definite < 150 || rejected < 60 {
		t.Errorf("only %d definite verdicts (%d rejections) compared", definite, rejected)
	}
	t.Logf("%d rules agree with the kernel, %d depend on the running system", definite, either)
}
