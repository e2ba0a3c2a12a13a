package policy

import (
	"fmt"
	"strconv"
	"strings"
)

// namedPresets are preset strings with a name.
var namedPresets = map[string]string{
	// Signed executables and executable mappings on SquashFS, measured with
	// their signatures: the rules FACTS.md tested under qemu.
	"squashfs-exec": "appraise measure exec mmap",
	// Also every file read from SquashFS.
	"squashfs-all": "appraise measure exec mmap read",
	// The kernel's ima_policy=secure_boot rules, for a fragment that
	// replaces the built-in policy and must keep them.
	"secure-boot": "appraise module firmware kexec policy fs=any",
	// Signed policy files only: later fragments must be signed too.
	"signed-policy": "appraise policy fs=any",
}

// ParsePreset reads a preset string: either a name (squashfs-exec,
// squashfs-all, secure-boot, signed-policy) or space-separated words
// describing a [Generate]:
//
//	appraise, measure                 which actions (at least one)
//	exec mmap read module firmware kexec policy
//	                                  the hooks
//	fs=squashfs|erofs|...|any         filesystem of the file hooks (default squashfs)
//	match=fsmagic|fsname              how the filesystem is selected
//	fsuuid=UUID                       one filesystem instance instead
//	fowner=UID                        files owned by UID only
//	appraise_type=imasig|modsig       for module and kexec hooks (default imasig)
//	appraise_algos=sha256,sha512      accepted signature hashes
//	template=NAME                     measurement template (default ima-sig)
//	pcr=N                             measurement PCR
//
// For example "appraise measure exec mmap" appraises and measures every
// executable and executable mapping on SquashFS, requiring signatures.
func ParsePreset(s string) (*Generate, error) {
	if named, ok := namedPresets[strings.TrimSpace(s)]; ok {
		s = named
	}
	g := &Generate{}
	for _, w := range strings.Fields(s) {
		k, v, hasValue := strings.Cut(w, "=")
		bad := func(why string) error {
			return fmt.Errorf("%w: preset %q: %q: %s", ErrFragment, s, w, why)
		}
		if !hasValue {
			switch w {
			case "appraise":
				g.Appraise = true
			case "measure":
				g.Measure = true
			case "exec", "mmap", "read", "module", "firmware", "kexec", "policy":
				g.Hooks = append(g.Hooks, w)
			default:
				return nil, bad("unknown word (want appraise, measure, a hook or option=value)")
			}
			continue
		}
		switch k {
		case "fs":
			g.Filesystem = v
		case "match":
			g.Match = v
		case "fsuuid":
			g.FSUUID = v
		case "fowner":
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil || n == 1<<32-1 {
				return nil, bad("want a decimal uid")
			}
			u := uint32(n)
			g.FOwner = &u
		case "appraise_type":
			g.AppraiseType = v
		case "appraise_algos":
			g.AppraiseAlgos = strings.Split(v, ",")
		case "template":
			g.Template = v
		case "pcr":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > 63 {
				return nil, bad("want a PCR index from 0 to 63")
			}
			g.PCR = &n
		default:
			return nil, bad("unknown option")
		}
	}
	if _, err := g.GeneratedRules(); err != nil {
		return nil, fmt.Errorf("preset %q: %w", s, err)
	}
	return g, nil
}

// Presets returns the named presets and the preset string each stands for.
func Presets() map[string]string {
	out := make(map[string]string, len(namedPresets))
	for k, v := range namedPresets {
		out[k] = v
	}
	return out
}
