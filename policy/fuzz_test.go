package policy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzLint: the linter never panics, and every rule it accepts renders to
// text that parses back to the same text on the same kernel series.
// Seeds are the policy files under testdata/policy; crashers found by
// `go test -fuzz FuzzLint` are kept in testdata/fuzz/FuzzLint.
func FuzzLint(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join(testdata, "*", "*.policy"))
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			f.Add([]byte(line), uint8(V6_1))
		}
		f.Add(data, uint8(V5_10))
	}
	if rules, err := os.ReadFile(filepath.Join(testdata, "kernel", "rules.txt")); err == nil {
		for _, line := range strings.Split(string(rules), "\n") {
			f.Add([]byte(line), uint8(V6_6))
		}
	}
	f.Fuzz(func(t *testing.T, data []byte, vb uint8) {
		v := Versions[int(vb)%len(Versions)]
		ds := Lint("fuzz", data, v)
		for _, d := range ds {
			if d.Pos.Line < 1 || d.Pos.Col < 1 {
				t.Fatalf("diagnostic without a position: %v", d)
			}
		}
		rules, err := ParseFor("fuzz", data, v)
		if (err == nil) != (Errors(ds) == nil) {
			t.Fatalf("ParseFor and Lint disagree: %v vs %v", err, ds)
		}
		for _, r := range rules {
			s := r.String()
			r2, err := ParseRule(s, v)
			if err != nil {
				t.Fatalf("Linux %s: accepted rule renders as %q, which fails: %v", v, s, err)
			}
			if s2 := r2.String(); s2 != s {
				t.Fatalf("Linux %s: round trip %q -> %q", v, s, s2)
			}
		}
	})
}
