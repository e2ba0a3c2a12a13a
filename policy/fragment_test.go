package policy

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func u32(v uint32) *uint32 { return &v }
func ip(v int) *int        { return &v }

// TestGenerateGolden renders generated fragments and compares them with
// testdata/policy/fragments/*.policy (reviewed by hand; -update rewrites).
func TestGenerateGolden(t *testing.T) {
	tests := []struct {
		name string
		g    Generate
		min  Version // oldest series the result lints clean on
	}{
		{"exec-mmap-squashfs", Generate{Hooks: []string{"mmap", "exec"}, Appraise: true, Measure: true}, V5_10},
		{"all-hooks", Generate{Hooks: []string{"policy", "kexec", "firmware", "module", "read", "mmap", "exec"},
			Appraise: true, Measure: true, AppraiseType: "imasig|modsig", Template: "ima-modsig", PCR: ip(11)}, V5_10},
		{"fsname-owner-algos", Generate{Hooks: []string{"exec", "read"}, Appraise: true, Match: "fsname",
			FOwner: u32(0), AppraiseAlgos: []string{"sha256", "sha512"}}, V5_15},
		{"fsuuid-measure", Generate{Hooks: []string{"read"}, Measure: true, FSUUID: "8bcbe394-4f13-4144-be8e-5aa9ea2ce2f6", Template: "ima-ng"}, V5_10},
		{"any-fs", Generate{Hooks: []string{"exec"}, Appraise: true, Filesystem: "any"}, V5_10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := Fragment{Name: tt.name, Path: "/etc/ima/" + tt.name + ".policy", Key: "k", Generate: &tt.g}
			data, err := Render(f)
			if err != nil {
				t.Fatal(err)
			}
			again, _ := Render(f)
			if !bytes.Equal(data, again) {
				t.Fatal("Render is not deterministic")
			}
			golden := filepath.Join(testdata, "fragments", tt.name+".policy")
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(data, want) {
				t.Errorf("got\n%s\nwant\n%s", data, want)
			}
			for _, v := range Versions {
				_, _, err := f.Check(v)
				if (err == nil) != (v >= tt.min) {
					t.Errorf("Check(%s) = %v, want ok=%v", v, err, v >= tt.min)
				}
			}
		})
	}
}

func TestFragmentErrors(t *testing.T) {
	ok := Fragment{Name: "a", Path: "/etc/ima/a.policy", Key: "k", Rules: []string{"measure func=BPRM_CHECK"}}
	tests := []struct {
		name string
		mod  func(*Fragment)
		want string
	}{
		{"no name", func(f *Fragment) { f.Name = "" }, "name is missing"},
		{"relative path", func(f *Fragment) { f.Path = "etc/ima/a" }, "absolute"},
		{"unclean path", func(f *Fragment) { f.Path = "/etc/../a" }, "clean"},
		{"no key", func(f *Fragment) { f.Key = "" }, "key is missing"},
		{"bad generate", func(f *Fragment) { f.Generate = &Generate{} }, "appraise: true"},
		{"bad preset", func(f *Fragment) { f.Presets = []string{"appraise exec fs=zfs"} }, `unknown filesystem "zfs"`},
		{"bad preset word", func(f *Fragment) { f.Presets = []string{"appraise exe"} }, `"exe": unknown word`},
		{"bad preset pcr", func(f *Fragment) { f.Presets = []string{"measure exec pcr=64"} }, "PCR index"},
		{"none", func(f *Fragment) { f.Rules = nil }, "no rules"},
		{"newline", func(f *Fragment) { f.Rules = []string{"measure\nappraise"} }, "line break"},
		{"no action", func(f *Fragment) { f.Rules = nil; f.Generate = &Generate{Hooks: []string{"exec"}} }, "appraise: true"},
		{"bad hook", func(f *Fragment) { f.Rules = nil; f.Generate = &Generate{Hooks: []string{"exe"}, Appraise: true} }, `unknown hook "exe"`},
		{"bad fs", func(f *Fragment) {
			f.Rules = nil
			f.Generate = &Generate{Hooks: []string{"exec"}, Appraise: true, Filesystem: "zfs"}
		}, `unknown filesystem "zfs"`},
		{"bad uuid", func(f *Fragment) {
			f.Rules = nil
			f.Generate = &Generate{Hooks: []string{"exec"}, Appraise: true, FSUUID: "nope"}
		}, "not a UUID"},
	}
	for _, tt := range tests {
		f := ok
		tt.mod(&f)
		_, err := Render(f)
		if err == nil || !errors.Is(err, ErrFragment) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want ErrFragment containing %q", tt.name, err, tt.want)
		}
	}
}

func TestFragmentCheckWritten(t *testing.T) {
	f := Fragment{Name: "tenant", Path: "/etc/ima/policy.d/60-tenant.policy", Key: "owner", Rules: []string{
		"# tenant rules",
		"  measure func=BPRM_CHECK template=ima-sig",
		"",
		"appraise func=BPRM_CHECK fsmagic=0x73717368 appraise_type=imasig appraise_flag=check_blacklist",
	}}
	data, warnings, err := f.Check(V6_6)
	if err != nil || len(warnings) != 1 || !strings.HasPrefix(warnings[0].String(), "60-tenant.policy:5:66: warning: appraise_flag=") {
		t.Fatalf("Check(6.6) = %v, %v", warnings, err)
	}
	if !bytes.HasPrefix(data, []byte("# imaforge policy fragment tenant\n# tenant rules\nmeasure func=BPRM_CHECK")) {
		t.Errorf("data = %q", data)
	}
	_, _, err = f.Check(V6_1)
	if !errors.Is(err, ErrSyntax) || !strings.Contains(err.Error(), "60-tenant.policy:5:66: appraise_flag=check_blacklist is not allowed with func=BPRM_CHECK on Linux 6.1") {
		t.Errorf("Check(6.1) = %v", err)
	}
}

func TestPresets(t *testing.T) {
	g, err := ParsePreset("appraise measure exec mmap")
	if err != nil {
		t.Fatal(err)
	}
	named, err := ParsePreset("squashfs-exec")
	if err != nil {
		t.Fatal(err)
	}
	want, _ := Render(Fragment{Name: "x", Path: "/x", Key: "k", Generate: &Generate{Hooks: []string{"exec", "mmap"}, Appraise: true, Measure: true}})
	for _, gen := range []*Generate{g, named} {
		got, err := Render(Fragment{Name: "x", Path: "/x", Key: "k", Generate: gen})
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("preset renders\n%s\nwant\n%s (%v)", got, want, err)
		}
	}
	g, err = ParsePreset("appraise kexec module appraise_type=imasig|modsig appraise_algos=sha256,sha512 fowner=0 fs=erofs match=fsname pcr=9 template=ima-modsig measure")
	if err != nil {
		t.Fatal(err)
	}
	if g.AppraiseType != "imasig|modsig" || len(g.AppraiseAlgos) != 2 || *g.FOwner != 0 || g.Filesystem != "erofs" || g.Match != "fsname" || *g.PCR != 9 || g.Template != "ima-modsig" || !g.Measure {
		t.Errorf("ParsePreset: %+v", g)
	}
	for name := range Presets() {
		f := Fragment{Name: name, Path: "/etc/ima/" + name, Key: "k", Presets: []string{name}}
		if _, _, err := f.Check(V5_10); err != nil {
			t.Errorf("preset %s: %v", name, err)
		}
	}
	// Written rules come first, then presets in order, then generate.
	f := Fragment{Name: "mix", Path: "/etc/ima/mix.policy", Key: "k",
		Rules:    []string{"dont_appraise fsmagic=0x1021994", ""},
		Presets:  []string{"signed-policy"},
		Generate: &Generate{Hooks: []string{"exec"}, Appraise: true}}
	data, _, err := f.Check(V6_1)
	if err != nil {
		t.Fatal(err)
	}
	wantMix := "# imaforge policy fragment mix\ndont_appraise fsmagic=0x1021994\nappraise func=POLICY_CHECK appraise_type=imasig\nappraise func=BPRM_CHECK fsmagic=0x73717368 appraise_type=imasig\n"
	if string(data) != wantMix {
		t.Errorf("got %q\nwant %q", data, wantMix)
	}
}

func TestOrigin(t *testing.T) {
	f := Fragment{Name: "o", Path: "/o", Key: "k",
		Rules:    []string{"# c", "measure func=BPRM_CHECK", "", " "},
		Presets:  []string{"appraise exec mmap", "signed-policy"},
		Generate: &Generate{Hooks: []string{"read"}, Measure: true}}
	data, err := Render(f)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		kind  string
		index int
	}{{"header", 0}, {"rules", 0}, {"rules", 1}, {"presets", 0}, {"presets", 0}, {"presets", 1}, {"generate", 0}}
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d lines:\n%s", len(lines), data)
	}
	for i, w := range want {
		kind, index, ok := f.Origin(i + 1)
		if !ok || kind != w.kind || index != w.index {
			t.Errorf("line %d %q: Origin = %s %d %v, want %s %d", i+1, lines[i], kind, index, ok, w.kind, w.index)
		}
	}
	if _, _, ok := f.Origin(len(want) + 1); ok {
		t.Error("Origin past the end")
	}
}
