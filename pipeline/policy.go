package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/imaforge/imaforge/manifest"
	"github.com/imaforge/imaforge/pki"
	"github.com/imaforge/imaforge/policy"
	"github.com/imaforge/imaforge/rootfs"
)

// DefaultKernel is the kernel series policy fragments are linted for when
// the manifest names none.
const DefaultKernel = "6.1"

// fragment is a rendered, linted policy fragment on its way into the image.
type fragment struct {
	src   *manifest.PolicyFragment
	data  []byte
	entry rootfs.Entry
	sig   []byte // its security.ima value, once sealed (sealer.sealAppend)
}

// renderPolicy renders every policy fragment of the manifest and lints it
// for the manifest's target kernel; a rule the kernel would reject at run
// time fails the build now. Each fragment becomes a regular file of the
// image, owned by root, mode 0444, signed by the fragment's key.
func renderPolicy(m *manifest.Manifest, tree *rootfs.Tree, logf func(string, ...any)) ([]*fragment, error) {
	if len(m.Policy) == 0 {
		return nil, nil
	}
	kernel := m.Kernel
	if kernel == "" {
		kernel = DefaultKernel
	}
	v, err := policy.ParseVersion(kernel)
	if err != nil {
		return nil, m.Errorf(m.FieldPos("kernel"), err, "kernel")
	}
	var out []*fragment
	var errs []error // every fragment's error, not the first one's only
	for i := range m.Policy {
		pf := &m.Policy[i]
		f := policy.Fragment{Name: pf.Name, Path: pf.Path, Key: pf.Key, Presets: pf.Presets}
		if pf.Rules != "" {
			f.Rules = strings.Split(strings.TrimRight(pf.Rules, "\n"), "\n")
		}
		if t := pf.Tenant; t != nil {
			f.Tenant = &policy.Tenant{FOwner: t.FOwner, FGroup: t.FGroup}
		}
		data, warnings, err := f.Check(v)
		if err != nil {
			errs = append(errs, fragmentError(m, pf, f, kernel, err))
			continue
		}
		for _, w := range warnings {
			if p, ok := rulePos(pf, f, w.Pos); ok {
				logf("%s:%s: warning: policy fragment %q: %s", m.File, p, pf.Name, w.Msg)
				continue
			}
			logf("warning: policy fragment %q: %s", pf.Name, w)
		}
		if e, ok := tree.Lookup(pf.Path); ok {
			errs = append(errs, m.Errorf(pf.FieldPos("path"), nil,
				"policy fragment %q: %s is also provided by %s", pf.Name, pf.Path, e.Origin()))
			continue
		}
		out = append(out, &fragment{
			src:  pf,
			data: data,
			entry: rootfs.Entry{
				Path:    pf.Path,
				Type:    rootfs.TypeReg,
				Mode:    0o444,
				Size:    int64(len(data)),
				Content: bytesContent(data),
			},
		})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// fragmentErrorPos is the manifest position of the field the first error
// of a fragment's lint comes from: its rules, its presets, its tenant, or
// the fragment itself.
func fragmentErrorPos(pf *manifest.PolicyFragment, f policy.Fragment, err error) manifest.Pos {
	var l policy.ErrorList
	if errors.As(err, &l) && len(l) > 0 {
		if kind, _, ok := f.Origin(l[0].Pos.Line); ok && (kind == "rules" || kind == "presets") {
			return pf.FieldPos(kind)
		}
	}
	if errors.Is(err, policy.ErrTenant) && pf.Tenant != nil {
		return pf.Tenant.Pos
	}
	return pf.Pos
}

// checkTenantSigners refuses a tenant fragment signed by a key whose
// certificate has a tenant scope: tenant rules are the owner's word about
// the tenant, so the owner's policy key (an IMA certificate without a
// scope) signs them, never the tenant's own key. The device's loader
// (load-policy.sh) refuses other signers too.
func checkTenantSigners(m *manifest.Manifest, keys map[string]Key) error {
	for i := range m.Policy {
		pf := &m.Policy[i]
		k, ok := keys[pf.Key]
		if pf.Tenant == nil || !ok {
			continue
		}
		scope, err := pki.ParseScope(k.Cert())
		if err != nil {
			return keyError(m, pf.Key, err)
		}
		if scope != nil {
			return m.Errorf(pf.FieldPos("key"), pki.ErrOutOfScope,
				"policy fragment %q is a tenant fragment, and key %q has a tenant scope (%s): the owner's policy key (a certificate without a scope) signs tenant rules",
				pf.Name, pf.Key, scope)
		}
	}
	return nil
}

type bytesContent []byte

func (b bytesContent) Open() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(b)), nil
}

// policyFiles returns each fragment and its detached signature (the raw
// security.ima value, evmctl's --sigfile convention) by file name, for
// IMAGE.policy/ (installation on a read-write filesystem); nil without
// fragments.
func policyFiles(frags []*fragment) map[string][]byte {
	if len(frags) == 0 {
		return nil
	}
	out := make(map[string][]byte, 2*len(frags))
	for _, fr := range frags {
		name := path.Base(fr.src.Path)
		out[name] = fr.data
		out[name+".sig"] = fr.sig
	}
	return out
}

// fragmentError reports the rules the kernel would reject at their line and
// column in the manifest (a `rules: |` block), one error each; what does not
// come from a written rule (a preset's rule, the tenant) is placed by
// fragmentErrorPos.
func fragmentError(m *manifest.Manifest, pf *manifest.PolicyFragment, f policy.Fragment, kernel string, err error) error {
	var list policy.ErrorList
	if !errors.As(err, &list) {
		return m.Errorf(fragmentErrorPos(pf, f, err), err, "policy fragment %q (linted for kernel %s)", pf.Name, kernel)
	}
	var errs []error
	for _, e := range list {
		if p, ok := rulePos(pf, f, e.Pos); ok {
			// e's own position is in the rendered fragment, which was
			// never written: only its message is kept.
			errs = append(errs, m.Errorf(p, fmt.Errorf("%w: %s", policy.ErrSyntax, e.Msg), "policy fragment %q: kernel %s", pf.Name, kernel))
			continue
		}
		errs = append(errs, m.Errorf(fragmentErrorPos(pf, f, policy.ErrorList{e}), e, "policy fragment %q (linted for kernel %s)", pf.Name, kernel))
	}
	return errors.Join(errs...)
}

// rulePos maps a position in the rendered fragment to the manifest: a line
// that comes from the fragment's rules text is found in its `rules: |`
// block (Render trims each rule, so the rule's leading blanks are added
// back to the column).
func rulePos(pf *manifest.PolicyFragment, f policy.Fragment, p policy.Pos) (manifest.Pos, bool) {
	kind, i, ok := f.Origin(p.Line)
	if !ok || kind != "rules" {
		return manifest.Pos{}, false
	}
	lp, ok := pf.LinePos("rules", i)
	if !ok {
		return manifest.Pos{}, false
	}
	r := f.Rules[i]
	lead := len(r) - len(strings.TrimLeft(r, " \t"))
	col := p.Col
	if col < 1 {
		col = 1
	}
	return manifest.Pos{Line: lp.Line, Col: lp.Col + lead + col - 1}, true
}
