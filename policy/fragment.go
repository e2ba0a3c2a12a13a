package policy

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"
)

// SquashFSMagic is SQUASHFS_MAGIC from include/uapi/linux/magic.h, the
// superblock magic that fsmagic= compares with.
const SquashFSMagic = 0x73717368

// filesystems maps a filesystem name to its superblock magic
// (include/uapi/linux/magic.h).
var filesystems = map[string]uint64{
	"squashfs": SquashFSMagic,
	"erofs":    0xe0f5e1e2,
	"ext4":     0xef53,
	"btrfs":    0x9123683e,
	"xfs":      0x58465342,
	"tmpfs":    0x01021994,
	"ramfs":    0x858458f6,
	"overlay":  0x794c7630,
	"f2fs":     0xf2f52010,
	"vfat":     0x4d44,
}

// Fragment is one signed policy fragment of a manifest's policy: section.
// Its rules are written out (Rules), generated from short options (Presets,
// Generate), or both; they are rendered in that order: written rules first,
// then each preset, then Generate. Order matters to the kernel, which lets
// the first matching appraise or dont_appraise rule decide.
type Fragment struct {
	// Name identifies the fragment in messages and the build record.
	Name string `yaml:"name" json:"name"`
	// Path is where the fragment lands in the image, e.g.
	// /etc/ima/policy.d/50-acme.policy.
	Path string `yaml:"path" json:"path"`
	// Key names the manifest key that signs the fragment.
	Key string `yaml:"key" json:"key"`
	// Rules are policy lines as written; comments (#) and blank lines are
	// kept (trailing blank lines are dropped).
	Rules []string `yaml:"rules,omitempty" json:"rules,omitempty"`
	// Presets are generated rule sets, each a preset string (see
	// [ParsePreset]): "appraise measure exec mmap", "secure-boot".
	Presets []string `yaml:"presets,omitempty" json:"presets,omitempty"`
	// Generate makes rules from options given as fields.
	Generate *Generate `yaml:"generate,omitempty" json:"generate,omitempty"`
	// Tenant, when set, makes this a tenant fragment: every rule must be
	// confined to the tenant's files ([LintTenant]).
	Tenant *Tenant `yaml:"tenant,omitempty" json:"tenant,omitempty"`
}

// Generate describes rules by intent, for example "appraise and measure
// every executable and mmapped file on this SquashFS with signatures":
//
//	generate:
//	  hooks: [exec, mmap]
//	  appraise: true
//	  measure: true
//
// which gives
//
//	measure func=BPRM_CHECK fsmagic=0x73717368 template=ima-sig
//	measure func=MMAP_CHECK mask=MAY_EXEC fsmagic=0x73717368 template=ima-sig
//	appraise func=BPRM_CHECK fsmagic=0x73717368 appraise_type=imasig
//	appraise func=MMAP_CHECK mask=MAY_EXEC fsmagic=0x73717368 appraise_type=imasig
//
// docs/policy.md describes each option.
type Generate struct {
	// Hooks: exec (BPRM_CHECK), mmap (MMAP_CHECK mask=MAY_EXEC), read
	// (FILE_CHECK mask=^MAY_READ), module (MODULE_CHECK), firmware
	// (FIRMWARE_CHECK), kexec (KEXEC_KERNEL_CHECK and KEXEC_INITRAMFS_CHECK),
	// policy (POLICY_CHECK). Rules follow this order whatever the order given.
	Hooks []string `yaml:"hooks" json:"hooks"`
	// Appraise adds appraise rules; Measure adds measure rules (before them).
	Appraise bool `yaml:"appraise" json:"appraise"`
	Measure  bool `yaml:"measure" json:"measure"`
	// Filesystem restricts file hooks to one filesystem type: squashfs (the
	// default), erofs, ext4, ..., or "any" for no restriction. module,
	// firmware, kexec and policy rules are never restricted.
	Filesystem string `yaml:"filesystem,omitempty" json:"filesystem,omitempty"`
	// Match selects how: fsmagic (the default) or fsname.
	Match string `yaml:"match,omitempty" json:"match,omitempty"`
	// FSUUID restricts file hooks to one filesystem instance instead
	// (SquashFS has no UUID, so this is for other filesystems).
	FSUUID string `yaml:"fsuuid,omitempty" json:"fsuuid,omitempty"`
	// FOwner restricts file hooks to files owned by this uid.
	FOwner *uint32 `yaml:"fowner,omitempty" json:"fowner,omitempty"`
	// AppraiseType: imasig (the default) or imasig|modsig (module and kexec
	// hooks only; others keep imasig).
	AppraiseType string `yaml:"appraise_type,omitempty" json:"appraise_type,omitempty"`
	// AppraiseAlgos limits the accepted signature hash algorithms
	// (appraise_algos=, Linux 5.15 and later).
	AppraiseAlgos []string `yaml:"appraise_algos,omitempty" json:"appraise_algos,omitempty"`
	// Template is the measurement template: ima-sig (the default) records
	// each file's signature in the measurement list.
	Template string `yaml:"template,omitempty" json:"template,omitempty"`
	// PCR extends measurements into this PCR instead of the default (10).
	PCR *int `yaml:"pcr,omitempty" json:"pcr,omitempty"`
}

var hookOrder = []struct {
	name  string
	funcs []Func
	mask  Mask
	any   bool // mask=^
	file  bool // subject to the filesystem restriction
}{
	{"exec", []Func{FuncBprmCheck}, 0, false, true},
	{"mmap", []Func{FuncMmapCheck}, MayExec, false, true},
	{"read", []Func{FuncFileCheck}, MayRead, true, true},
	{"module", []Func{FuncModuleCheck}, 0, false, false},
	{"firmware", []Func{FuncFirmwareCheck}, 0, false, false},
	{"kexec", []Func{FuncKexecKernelCheck, FuncKexecInitramfsCheck}, 0, false, false},
	{"policy", []Func{FuncPolicyCheck}, 0, false, false},
}

// ErrFragment is wrapped by errors about a fragment's definition.
var ErrFragment = errors.New("invalid policy fragment")

func (f *Fragment) errorf(format string, args ...any) error {
	name := f.Name
	if name == "" {
		name = "(unnamed)"
	}
	return fmt.Errorf("policy fragment %s: %w: %s", name, ErrFragment, fmt.Sprintf(format, args...))
}

// Validate checks the fragment's fields (not its rules; see [Fragment.Check]).
func (f *Fragment) Validate() error {
	switch {
	case f.Name == "":
		return f.errorf("name is missing")
	case !strings.HasPrefix(f.Path, "/") || path.Clean(f.Path) != f.Path || f.Path == "/":
		return f.errorf("path %q must be an absolute, clean file path in the image", f.Path)
	case f.Key == "":
		return f.errorf("key is missing: name the key that signs the fragment")
	case len(f.Rules) == 0 && len(f.Presets) == 0 && f.Generate == nil:
		return f.errorf("no rules: give rules, presets or generate")
	}
	for i, r := range f.Rules {
		if strings.ContainsAny(r, "\n\r\x00") {
			return f.errorf("rule %d contains a line break or NUL", i+1)
		}
	}
	return nil
}

// GeneratedRules returns the rules g describes, in a fixed order.
func (g *Generate) GeneratedRules() ([]Rule, error) {
	if !g.Appraise && !g.Measure {
		return nil, fmt.Errorf("%w: generate needs appraise: true, measure: true or both", ErrFragment)
	}
	if len(g.Hooks) == 0 {
		return nil, fmt.Errorf("%w: generate needs hooks (exec, mmap, read, module, firmware, kexec, policy)", ErrFragment)
	}
	want := map[string]bool{}
	for _, h := range g.Hooks {
		found := false
		for _, o := range hookOrder {
			found = found || o.name == h
		}
		if !found {
			return nil, fmt.Errorf("%w: unknown hook %q (want exec, mmap, read, module, firmware, kexec or policy)", ErrFragment, h)
		}
		want[h] = true
	}
	var base Rule // the filesystem and owner conditions of file hooks
	fs := g.Filesystem
	if fs == "" {
		fs = "squashfs"
	}
	if g.FSUUID != "" {
		u, trailing, ok := parseUUID(g.FSUUID)
		if !ok || trailing {
			return nil, fmt.Errorf("%w: fsuuid %q is not a UUID", ErrFragment, g.FSUUID)
		}
		base.FSUUID = &u
	} else if fs != "any" {
		magic, ok := filesystems[fs]
		if !ok {
			names := make([]string, 0, len(filesystems))
			for n := range filesystems {
				names = append(names, n)
			}
			sort.Strings(names)
			return nil, fmt.Errorf("%w: unknown filesystem %q (want any, %s)", ErrFragment, fs, strings.Join(names, ", "))
		}
		switch g.Match {
		case "", "fsmagic":
			base.FSMagic = &magic
		case "fsname":
			base.FSName = fs
		default:
			return nil, fmt.Errorf("%w: match %q: want fsmagic or fsname", ErrFragment, g.Match)
		}
	}
	if g.FOwner != nil {
		base.FOwner = &IDCond{Op: OpEq, ID: *g.FOwner}
	}
	at := AppraiseImaSig
	switch g.AppraiseType {
	case "", "imasig":
	case "imasig|modsig":
		at = AppraiseImaSigModsig
	default:
		return nil, fmt.Errorf("%w: appraise_type %q: want imasig or imasig|modsig", ErrFragment, g.AppraiseType)
	}
	tmpl := g.Template
	if tmpl == "" {
		tmpl = "ima-sig"
	}
	var rules []Rule
	for _, action := range []Action{ActionMeasure, ActionAppraise} {
		if action == ActionMeasure && !g.Measure || action == ActionAppraise && !g.Appraise {
			continue
		}
		for _, o := range hookOrder {
			if !want[o.name] {
				continue
			}
			for _, fn := range o.funcs {
				r := Rule{Action: action, Func: fn, Mask: o.mask, MaskAny: o.any}
				if o.file {
					r.FSMagic, r.FSName, r.FSUUID, r.FOwner = base.FSMagic, base.FSName, base.FSUUID, base.FOwner
				}
				if action == ActionMeasure {
					r.Template = tmpl
					r.PCR = g.PCR
				} else {
					r.AppraiseType = AppraiseImaSig
					if at == AppraiseImaSigModsig && (fn == FuncModuleCheck || fn == FuncKexecKernelCheck || fn == FuncKexecInitramfsCheck) {
						r.AppraiseType = at
					}
					r.AppraiseAlgos = g.AppraiseAlgos
				}
				rules = append(rules, r)
			}
		}
	}
	return rules, nil
}

// Render returns the fragment's policy text: a header comment naming the
// fragment, then one rule per line, each ending in a newline. The bytes
// depend on the fragment only. Written rules are kept as written, trimmed of
// surrounding blanks; generated rules are in [Rule.String] form. Render
// checks the fields ([Fragment.Validate]) but not the rules against a
// kernel: use [Fragment.Check] for that.
func Render(f Fragment) ([]byte, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "# imaforge policy fragment %s\n", strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return '?'
		}
		return r
	}, f.Name))
	lines := f.Rules
	for len(lines) > 0 && strings.Trim(lines[len(lines)-1], " \t") == "" {
		lines = lines[:len(lines)-1]
	}
	for _, r := range lines {
		b.WriteString(strings.Trim(r, " \t"))
		b.WriteByte('\n')
	}
	var gens []*Generate
	for _, p := range f.Presets {
		g, err := ParsePreset(p)
		if err != nil {
			return nil, fmt.Errorf("policy fragment %s: %w", f.Name, err)
		}
		gens = append(gens, g)
	}
	if f.Generate != nil {
		gens = append(gens, f.Generate)
	}
	for _, g := range gens {
		rules, err := g.GeneratedRules()
		if err != nil {
			return nil, fmt.Errorf("policy fragment %s: %w", f.Name, err)
		}
		for i := range rules {
			b.WriteString(rules[i].String())
			b.WriteByte('\n')
		}
	}
	return b.Bytes(), nil
}

// Check renders the fragment and lints it for kernel series v. It returns
// the bytes and the warnings; when the kernel would reject the fragment,
// the error is an [ErrorList] whose positions name the fragment
// (NAME.policy:line:col, line 1 being the header).
func (f Fragment) Check(v Version) (data []byte, warnings []Diagnostic, err error) {
	return f.CheckTarget(Target{Version: v})
}

// CheckTarget is [Fragment.Check] for a kernel whose build options are
// (partly) known.
func (f Fragment) CheckTarget(t Target) (data []byte, warnings []Diagnostic, err error) {
	v := t.Version
	data, err = Render(f)
	if err != nil {
		return nil, nil, err
	}
	name := path.Base(f.Path)
	rules, ds := check(name, data, t)
	if f.Tenant != nil {
		ds = append(ds, LintTenant(rules, *f.Tenant)...)
	}
	for _, d := range ds {
		if d.Severity == SeverityWarning {
			warnings = append(warnings, d)
		}
	}
	if err := Errors(ds); err != nil {
		return nil, warnings, fmt.Errorf("policy fragment %s for Linux %s: %w", f.Name, v, err)
	}
	return data, warnings, nil
}

// Origin tells where line of the rendered fragment (1-based, as in the
// positions [Fragment.Check] reports) comes from, so a caller can point at
// the manifest: kind is "header" (line 1), "rules" (index into f.Rules),
// "presets" (index into f.Presets) or "generate" (index of the generated
// rule); ok is false past the end or when the fragment does not render.
func (f Fragment) Origin(line int) (kind string, index int, ok bool) {
	if line == 1 {
		return "header", 0, true
	}
	n := line - 2
	written := f.Rules
	for len(written) > 0 && strings.Trim(written[len(written)-1], " \t") == "" {
		written = written[:len(written)-1]
	}
	if n >= 0 && n < len(written) {
		return "rules", n, true
	}
	n -= len(written)
	for i, p := range f.Presets {
		g, err := ParsePreset(p)
		if err != nil {
			return "", 0, false
		}
		rules, err := g.GeneratedRules()
		if err != nil {
			return "", 0, false
		}
		if n >= 0 && n < len(rules) {
			return "presets", i, true
		}
		n -= len(rules)
	}
	if f.Generate != nil {
		rules, err := f.Generate.GeneratedRules()
		if err == nil && n >= 0 && n < len(rules) {
			return "generate", n, true
		}
	}
	return "", 0, false
}
