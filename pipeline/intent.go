package pipeline

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/manifest"
	"github.com/imaforge/imaforge/policy"
	"github.com/imaforge/imaforge/rootfs"
	"github.com/imaforge/imaforge/verify"
)

// checkIntent reports intentWarnings: each is a warning (logf); with
// strict, they fail the build together, each at its manifest position.
// Build, MakePlan and Check call it, so the three print the same warnings.
func checkIntent(m *manifest.Manifest, lay *layout, strict bool, logf func(string, ...any)) error {
	ws := intentWarnings(m, lay)
	if strict && len(ws) > 0 {
		return fmt.Errorf("--strict: %w", errors.Join(ws...))
	}
	for _, w := range ws {
		logf("warning: %v", w)
	}
	return nil
}

// intentWarnings looks for what the user cannot have meant, once the rules
// have given every regular file its key and before anything is read:
//
//   - a rule that decides no file: it matches none (a typo such as
//     /opt/tenat/** silently hands the tenant's files to a later rule), or
//     every file it matches was taken by an earlier rule (shadowed);
//   - a key no rule, policy fragment or image signature uses;
//   - a manifest without trust:, whose keys nothing checks (chain, dates,
//     revocation) before they sign;
//   - a file of the image that the build's own policy fragments would make
//     the kernel refuse (verify.Predict: the prediction verify makes).
//
// Each is an error at its manifest position.
func intentWarnings(m *manifest.Manifest, lay *layout) []error {
	var errs []error
	report := func(p manifest.Pos, format string, args ...any) {
		errs = append(errs, m.Errorf(p, nil, format, args...))
	}
	for i := range m.Rules {
		r := &m.Rules[i]
		if lay.hits[r] > 0 {
			continue
		}
		// Searched in the entries, not a list of the regular files' paths
		// made first: with every rule hit (the usual case) that list was
		// all a million-file build allocated here (16 MiB of pointers).
		matched := ""
		for _, ref := range lay.entries {
			if e := lay.at(ref); e.Type == rootfs.TypeReg && r.Match.Match(e.Path) {
				matched = e.Path
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
	refusals(m, lay, report)
	return errs
}

// refusals reports, per rule of the build's policy fragments, the files
// of the image the kernel would refuse under them (verify.Predict).
func refusals(m *manifest.Manifest, lay *layout, report func(manifest.Pos, string, ...any)) {
	if len(lay.frags) == 0 {
		return
	}
	kernel := m.Kernel
	if kernel == "" {
		kernel = DefaultKernel
	}
	kv, err := policy.ParseVersion(kernel)
	if err != nil {
		return // renderPolicy refused it already
	}
	h, _ := imasig.ParseHash(string(m.Hash))
	pols := make([]verify.PolicyFile, len(lay.frags))
	byName := make(map[string]*manifest.PolicyFragment, len(lay.frags))
	isFrag := make(map[string]bool, len(lay.frags))
	for i, f := range lay.frags {
		pols[i] = verify.PolicyFile{Name: f.src.Name, Data: f.data}
		byName[f.src.Name] = f.src
		isFrag[f.src.Path] = true
	}
	var files []verify.PlannedFile
	for i := range lay.files {
		fs := &lay.files[i]
		e := lay.entry(fs)
		files = append(files, verify.PlannedFile{Path: e.Path, Mode: e.Mode, UID: e.UID, GID: e.GID,
			Signed: lay.rule(fs).key != "", Hash: h, Policy: isFrag[e.Path]})
	}
	type group struct {
		r     verify.Refusal
		count int
	}
	var order []string
	groups := map[string]*group{}
	for _, r := range verify.Predict(files, pols, kv) {
		g, ok := groups[r.Rule]
		if !ok {
			g = &group{r: r}
			groups[r.Rule] = g
			order = append(order, r.Rule)
		}
		g.count++
	}
	for _, rule := range order {
		g := groups[rule]
		pos := m.Pos
		name := g.r.Policy
		if pf, ok := byName[name]; ok {
			pos = pf.Pos
		}
		more := ""
		if g.count > 1 {
			more = fmt.Sprintf(" and %d more files", g.count-1)
		}
		report(pos, "policy fragment %q would make the kernel refuse %s%s of this image: %s", name, g.r.Path, more, strings.TrimPrefix(g.r.Message, "the kernel would refuse it: "))
	}
}
