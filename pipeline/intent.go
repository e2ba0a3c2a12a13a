package pipeline

import (
	"errors"
	"fmt"
	"sort"

	"github.com/imaforge/imaforge/manifest"
	"github.com/imaforge/imaforge/rootfs"
)

// checkIntent looks for what the user cannot have meant, once the rules
// have given every regular file its key and before anything is read:
//
//   - a rule that decides no file: it matches none (a typo such as
//     /opt/tenat/** silently hands the tenant's files to a later rule), or
//     every file it matches was taken by an earlier rule (shadowed);
//   - a key no rule, policy fragment or image signature uses;
//   - a manifest without trust:, whose keys nothing checks (chain, dates,
//     revocation) before they sign.
//
// Each is a warning (logf); with strict, they fail the build together, each
// at its manifest position.
func checkIntent(m *manifest.Manifest, lay *layout, strict bool, logf func(string, ...any)) error {
	var errs []error
	report := func(p manifest.Pos, format string, args ...any) {
		err := m.Errorf(p, nil, format, args...)
		if strict {
			errs = append(errs, err)
			return
		}
		logf("warning: %v", err)
	}
	var paths []string
	for _, e := range lay.entries {
		if e.Type == rootfs.TypeReg {
			paths = append(paths, e.Path)
		}
	}
	for i := range m.Rules {
		r := &m.Rules[i]
		if lay.hits[r] > 0 {
			continue
		}
		matched := ""
		for _, p := range paths {
			if r.Match.Match(p) {
				matched = p
				break
			}
		}
		if matched == "" {
			report(r.Pos, "rule %d (match: %s) matches no file of the image", i+1, r.Match)
			continue
		}
		first, _ := m.Rule(matched)
		report(r.Pos, "rule %d (match: %s) is shadowed: every file it matches (%s, ...) is decided by an earlier rule (match: %s at line %d)",
			i+1, r.Match, matched, first.Match, first.Pos.Line)
	}
	used := map[string]bool{}
	for k := range lay.used {
		used[k] = true
	}
	if k := m.Image.SignatureKey; k != "" {
		used[k] = true
	}
	var names []string
	for n := range m.Keys {
		if !used[n] {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		report(m.Keys[n].Pos, "key %q is used by no rule, policy fragment or image signature", n)
	}
	if m.Trust == nil && len(m.Keys) > 0 {
		report(manifest.Pos{Line: 1, Col: 1}, "no trust: section: the keys' certificates are not checked against a root, their dates or CRLs before they sign")
	}
	if len(errs) > 0 {
		return fmt.Errorf("--strict: %w", errors.Join(errs...))
	}
	return nil
}
