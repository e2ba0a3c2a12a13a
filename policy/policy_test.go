package policy

import (
	"bytes"
	"errors"
	flagpkg "flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flagpkg.Bool("update", false, "rewrite testdata/policy/broken/*.golden")

const testdata = "../testdata/policy"

// header reads the "# kernels: A-B" and "# rejected-before: X" lines.
func header(t *testing.T, data []byte) (accept []Version, rejectBefore Version) {
	t.Helper()
	for _, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, "#") {
			break
		}
		if v, ok := strings.CutPrefix(line, "# kernels: "); ok {
			if v == "none" {
				continue
			}
			lo, hi, _ := strings.Cut(v, "-")
			from, err := ParseVersion(lo)
			if err != nil {
				t.Fatal(err)
			}
			to := V6_12
			if hi != "" {
				if to, err = ParseVersion(hi); err != nil {
					t.Fatal(err)
				}
			}
			for _, x := range Versions {
				if x >= from && x <= to {
					accept = append(accept, x)
				}
			}
		}
		if v, ok := strings.CutPrefix(line, "# rejected-before: "); ok {
			var err error
			if rejectBefore, err = ParseVersion(v); err != nil {
				t.Fatal(err)
			}
		}
	}
	return accept, rejectBefore
}

// TestKernelPolicies: every built-in policy and every example of
// Documentation/ABI/testing/ima_policy lints clean on the series it exists
// in, and is rejected on older ones.
func TestKernelPolicies(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(testdata, "builtin", "*.policy"))
	docs, _ := filepath.Glob(filepath.Join(testdata, "doc", "*.policy"))
	files = append(files, docs...)
	if len(files) < 10 {
		t.Fatalf("only %d policy files found", len(files))
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		accept, rejectBefore := header(t, data)
		t.Run(filepath.Base(filepath.Dir(f))+"/"+filepath.Base(f), func(t *testing.T) {
			for _, v := range Versions {
				ds := Lint(f, data, v)
				errs := Errors(ds)
				ok := false
				for _, a := range accept {
					ok = ok || a == v
				}
				switch {
				case ok && errs != nil:
					t.Errorf("Linux %s rejects it:\n%v", v, errs)
				case !ok && (rejectBefore == 0 || v < rejectBefore) && errs == nil:
					t.Errorf("Linux %s accepts it, want an error", v)
				}
				if ok {
					rules, err := ParseFor(f, data, v)
					if err != nil || len(rules) == 0 {
						t.Fatalf("ParseFor(%s): %d rules, %v", v, len(rules), err)
					}
				}
			}
		})
	}
}

// TestDocSigv3Template pins the finding that the documented
// "template=ima-sigv3" example is rejected: the column is that of template=.
func TestDocSigv3Template(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(testdata, "doc", "verity_sigv3_template.policy"))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []Version{V6_1, V6_6, V6_12} {
		ds := Lint("x", data, v)
		if len(ds) != 1 || ds[0].Pos.Line != 5 || ds[0].Pos.Col != 44 || !strings.Contains(ds[0].Msg, "template=ima-sigv3") {
			t.Errorf("Linux %s: %v, want one error at 5:44 about template=ima-sigv3", v, ds)
		}
	}
}

// TestBroken compares the lint output for each broken policy with its golden
// file (Linux 6.1, the default series).
func TestBroken(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(testdata, "broken", "*.policy"))
	if len(files) == 0 {
		t.Fatal("no broken policies")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var b bytes.Buffer
			name := filepath.Base(f)
			ds := Lint(name, data, DefaultVersion)
			for _, d := range ds {
				b.WriteString(d.String())
				b.WriteByte('\n')
			}
			golden := strings.TrimSuffix(f, ".policy") + ".golden"
			if *update {
				if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got := b.String(); got != string(want) {
				t.Errorf("lint output differs from %s:\n--- got\n%s--- want\n%s", golden, got, want)
			}
			if Errors(ds) == nil {
				t.Errorf("no error reported")
			}
			// Every non-comment line of the syntax and options corpora is broken.
			if name == "syntax.policy" || name == "options.policy" {
				bad := map[int]bool{}
				for _, d := range ds {
					if d.Severity == SeverityError {
						bad[d.Pos.Line] = true
					}
				}
				for i, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
					if !strings.HasPrefix(line, "#") && !bad[i+1] {
						t.Errorf("line %d %q: no error", i+1, line)
					}
				}
			}
		})
	}
}

// TestVersions: keywords and values that one series accepts and an older
// one rejects, with the column of the offending token.
func TestVersions(t *testing.T) {
	tests := []struct {
		rule  string
		from  Version // first series that accepts it
		col   int     // column of the error before that
		until Version // last series that accepts it (0: all newer)
	}{
		{"measure func=FILE_CHECK gid=0", V6_1, 25, 0},
		{"measure func=FILE_CHECK egid>1000", V6_1, 25, 0},
		{"appraise func=BPRM_CHECK fgroup<100 appraise_type=imasig", V6_1, 26, 0},
		{"measure func=KEY_CHECK keyrings=.ima gid=0", V6_1, 38, 0},
		{"measure func=KEXEC_CMDLINE fgroup=0", V6_1, 28, 0},
		{"measure func=CRITICAL_DATA label=selinux", V5_15, 9, 0},
		{"appraise func=SETXATTR_CHECK appraise_algos=sha256", V5_15, 10, 0},
		{"appraise func=BPRM_CHECK appraise_algos=sha256,sha512", V5_15, 26, 0},
		{"appraise func=SETXATTR_CHECK appraise_algos=sha3-256", V6_12, 30, 0},
		{"measure func=BPRM_CHECK template=evm-sig", V5_15, 25, 0},
		{"measure func=BPRM_CHECK template=ima-sigv2", V6_1, 25, 0},
		{"measure func=BPRM_CHECK template=d-ngv2|n-ng|sig", V6_1, 25, 0},
		{"measure func=FILE_CHECK digest_type=verity", V6_1, 25, 0},
		{"appraise func=BPRM_CHECK digest_type=verity appraise_type=sigv3", V6_1, 26, 0},
		{"appraise func=MMAP_CHECK_REQPROT mask=MAY_EXEC appraise_type=imasig", V6_6, 10, 0},
		// 6.6 makes appraise_flag= a no-op, so check_blacklist no longer needs modsig.
		{"appraise func=MODULE_CHECK appraise_flag=check_blacklist appraise_type=imasig", V6_6, 28, 0},
		{"appraise func=FIRMWARE_CHECK appraise_flag=anything appraise_type=imasig", V6_6, 30, 0},
		// Before 6.6 check_blacklist was a module-signature flag.
		{"appraise func=FIRMWARE_CHECK appraise_flag=check_blacklist appraise_type=imasig|modsig", 0, 0, 0},
		{"appraise func=MODULE_CHECK appraise_flag=check_blacklist appraise_type=imasig|modsig", V5_10, 0, 0},
	}
	for _, tt := range tests {
		for _, v := range Versions {
			ds := Lint("t", []byte(tt.rule+"\n"), v)
			err := Errors(ds)
			accepted := tt.from != 0 && v >= tt.from && (tt.until == 0 || v <= tt.until)
			if accepted && err != nil {
				t.Errorf("Linux %s rejects %q: %v", v, tt.rule, err)
			}
			if !accepted && err == nil {
				t.Errorf("Linux %s accepts %q, want an error", v, tt.rule)
			}
			if !accepted && err != nil && tt.col != 0 {
				found := false
				for _, d := range ds {
					found = found || d.Severity == SeverityError && d.Pos.Line == 1 && d.Pos.Col == tt.col
				}
				if !found {
					t.Errorf("Linux %s, %q: %v, want an error at column %d", v, tt.rule, err, tt.col)
				}
			}
		}
	}
}

// TestNumbers checks the kstrtoul/kstrtoint corner cases the kernel has.
func TestNumbers(t *testing.T) {
	tests := []struct {
		rule string
		ok   bool
	}{
		{"dont_measure fsmagic=0x73717368", true},
		{"dont_measure fsmagic=73717368", true},
		{"dont_measure fsmagic=0X73717368", true},
		{"dont_measure fsmagic=+0x10", true},
		{"dont_measure fsmagic=0x", false},
		{"dont_measure fsmagic=-1", false},
		{"dont_measure fsmagic=0xffffffffffffffff", true},
		{"dont_measure fsmagic=0x10000000000000000", false},
		{"measure uid=+7", true},
		{"measure uid=0x7", false},
		{"measure uid=4294967294", true},
		{"measure uid=4294967296", false},
		{"measure pcr=+10", true},
		{"measure pcr=63", true},
		{"measure pcr=-0", true},
		{"measure fsuuid=8BCBE394-4F13-4144-BE8E-5AA9EA2CE2F6", true},
		{"measure fsuuid=8bcbe394-4f13-4144-be8e-5aa9ea2ce2f6xyz", true}, // uuid_parse reads 36 characters
		{"measure fsuuid=8bcbe3944f134144be8e5aa9ea2ce2f6", false},
		{"measure func=PATH_CHECK", true},
		{"measure func=FILE_MMAP mask=^MAY_EXEC", true},
		{"measure func=file_check", false},
		{"  \t measure\t\tfunc=BPRM_CHECK   ", true},
	}
	for _, tt := range tests {
		_, err := ParseRule(tt.rule, V6_1)
		if (err == nil) != tt.ok {
			t.Errorf("%q: err = %v, want ok=%v", tt.rule, err, tt.ok)
		}
	}
}

// TestRoundTrip: String renders every accepted rule so that it parses back
// to the same rule and the same text.
func TestRoundTrip(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(testdata, "*", "*.policy"))
	n := 0
	for _, f := range files {
		data, _ := os.ReadFile(f)
		for _, v := range Versions {
			rules, err := ParseFor(f, data, v)
			if err != nil {
				continue
			}
			for _, r := range rules {
				s := r.String()
				r2, err := ParseRule(s, v)
				if err != nil {
					t.Errorf("%s (Linux %s): %q does not parse back: %v", r.Pos, v, s, err)
					continue
				}
				r.Pos, r2.Pos = Pos{}, Pos{}
				if !reflect.DeepEqual(r, r2) || r2.String() != s {
					t.Errorf("%s: round trip changed %q into %q", f, s, r2.String())
				}
				n++
			}
		}
	}
	if n < 100 {
		t.Errorf("only %d rules round-tripped", n)
	}
}

func TestCanonical(t *testing.T) {
	r, err := ParseRule("measure template=ima-sig mask=^MAY_READ  euid>5 func=PATH_CHECK fsmagic=0X1021994 fsuuid=8BCBE394-4F13-4144-BE8E-5AA9EA2CE2F6", V6_1)
	if err != nil {
		t.Fatal(err)
	}
	want := "measure func=FILE_CHECK mask=^MAY_READ fsmagic=0x1021994 fsuuid=8bcbe394-4f13-4144-be8e-5aa9ea2ce2f6 euid>5 template=ima-sig"
	if got := r.String(); got != want {
		t.Errorf("String() = %q\nwant       %q", got, want)
	}
}

func TestErrorsWrap(t *testing.T) {
	_, err := Parse("fragment.policy", []byte("measure func=BPRM_CHECK\nappraise func=NOPE\nmeasure bogus\n"))
	if !errors.Is(err, ErrSyntax) {
		t.Fatalf("errors.Is(%v, ErrSyntax) = false", err)
	}
	var l ErrorList
	if !errors.As(err, &l) || len(l) != 2 {
		t.Fatalf("want an ErrorList of 2, got %#v", err)
	}
	if got := l[0].Error(); !strings.HasPrefix(got, "fragment.policy:2:10: unknown func=NOPE") {
		t.Errorf("first error %q", got)
	}
	if got := l[1].Error(); got != `fragment.policy:3:9: unknown keyword "bogus"` {
		t.Errorf("second error %q", got)
	}
}

func TestParseVersion(t *testing.T) {
	for in, want := range map[string]Version{
		"6.1": V6_1, "v6.6": V6_6, "6.1.0-18-amd64": V6_1, "6.3": V6_1, "6.12.7": V6_12,
		"6.19": V6_12, "5.10.200": V5_10, "5.16": V5_15, "linux-5.15": V5_15,
	} {
		got, err := ParseVersion(in)
		if err != nil || got != want {
			t.Errorf("ParseVersion(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "5.4", "six", "4.19"} {
		if _, err := ParseVersion(bad); err == nil {
			t.Errorf("ParseVersion(%q) succeeded", bad)
		}
	}
}

func TestKconfig(t *testing.T) {
	c := ParseKconfig([]byte("CONFIG_IMA=y\n# CONFIG_IMA_APPRAISE_MODSIG is not set\nCONFIG_IMA_MEASURE_ASYMMETRIC_KEYS=y\n"))
	if c.Modsig != Disabled || c.AsymmetricKeys != Enabled {
		t.Fatalf("ParseKconfig = %+v", c)
	}
	rule := []byte("appraise func=MODULE_CHECK appraise_type=imasig|modsig\nmeasure func=KEY_CHECK keyrings=.ima\n")
	for _, tt := range []struct {
		cfg        Config
		errs, warn int
	}{
		{Config{}, 0, 1},
		{Config{Modsig: Enabled}, 0, 0},
		{c, 1, 0},
		{Config{Modsig: Enabled, AsymmetricKeys: Disabled}, 2, 0}, // func=KEY_CHECK and keyrings=
	} {
		var errs, warn int
		for _, d := range LintTarget("k", rule, Target{V6_1, tt.cfg}) {
			if d.Severity == SeverityError {
				errs++
			} else {
				warn++
			}
		}
		if errs != tt.errs || warn != tt.warn {
			t.Errorf("%+v: %d errors, %d warnings; want %d, %d", tt.cfg, errs, warn, tt.errs, tt.warn)
		}
	}
}
