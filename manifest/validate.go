package manifest

import (
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/imaforge/imaforge/signer/keyref"
)

// Device numbers SquashFS can store (the kernel's new_encode_dev in 32 bits).
const (
	MaxMajor = 1<<12 - 1
	MaxMinor = 1<<20 - 1
)

// maxEpoch is the largest time SquashFS can store (32-bit seconds).
const maxEpoch = 1<<32 - 1

var keyNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// CleanImagePath checks an absolute path in the image and returns it
// cleaned: it must start with "/", contain no NUL byte and no ".."
// component.
func CleanImagePath(p string) (string, error) {
	switch {
	case p == "":
		return "", fmt.Errorf("empty path")
	case strings.IndexByte(p, 0) >= 0:
		return "", fmt.Errorf("path %q contains a NUL byte", p)
	case !strings.HasPrefix(p, "/"):
		return "", fmt.Errorf("path %q in the image must be absolute (start with /)", p)
	}
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return "", fmt.Errorf("path %q contains a .. component", p)
		}
	}
	return path.Clean(p), nil
}

// validate checks what the decoder cannot: required fields, references
// between fields, and paths; it fills defaults and resolves host paths.
// Each section has its own check; all of them run, and every error is
// collected in c (manifest check reports them all at once).
func validate(m *Manifest, c *errs) {
	v := &validator{m: m, c: c}
	v.version()
	v.image()
	v.keys()
	v.trust()
	v.sources()
	v.entries()
	v.overrides()
	v.rules()
	v.policy()
}

// validator holds the manifest being validated and its errors.
type validator struct {
	m *Manifest
	c *errs
}

func (v *validator) version() {
	m, c := v.m, v.c
	if !m.Has("version") {
		c.add(m.Pos, ErrMissing, "version: required (version: %d)", Version)
	} else if m.Version != Version {
		c.add(m.FieldPos("version"), ErrUnsupported, "version %d is not supported (this imaforge reads version %d)", m.Version, Version)
	}
}

// host resolves a host path against the manifest's directory.
func (v *validator) host(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(v.m.Dir, p)
}

// hostOpt is host for an optional path ("" stays "").
func (v *validator) hostOpt(p string) string {
	if p == "" {
		return ""
	}
	return v.host(p)
}

// keyRef checks that a field naming a key names one of keys:.
func (v *validator) keyRef(l *Located, label, field, name string) {
	m := v.m
	if name == "" {
		return
	}
	if _, ok := m.Keys[name]; !ok {
		msg := fmt.Sprintf("%s.%s: key %q is not defined in keys", label, field, name)
		if s := suggest(name, m.KeyNames()); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		} else if len(m.Keys) > 0 {
			msg += fmt.Sprintf(" (defined: %s)", strings.Join(m.KeyNames(), ", "))
		}
		v.c.add(l.FieldPos(field), ErrUndefinedKey, "%s", msg)
	}
}

// imagePath checks a required image path and cleans it in place.
func (v *validator) imagePath(l *Located, label, field string, p *string) {
	if *p == "" {
		v.c.add(l.FieldPos(field), ErrMissing, "%s.%s: required", label, field)
		return
	}
	cp, err := CleanImagePath(*p)
	if err != nil {
		v.c.add(l.FieldPos(field), ErrInvalid, "%s.%s: %v", label, field, err)
		return
	}
	*p = cp
}

// image checks image: the format, compressor, level, epoch and output (defaults filled).
func (v *validator) image() {
	m, c := v.m, v.c
	im := &m.Image
	if im.Compression == "" {
		im.Compression = DefaultCompression
	}
	if im.BlockSize == 0 {
		im.BlockSize = DefaultBlockSize
	}
	if im.Format == "" {
		im.Format = FormatSquashfs
	}
	if !slices.Contains(ImageFormats(), im.Format) {
		c.add(im.FieldPos("format"), ErrInvalid, "image.format: %q is not one of squashfs, tar, tar.gz, tar.zst", im.Format)
	}
	if im.Format.IsTar() {
		for _, f := range []string{"compression", "block_size", "verity"} {
			if im.Has(f) {
				c.add(im.FieldPos(f), ErrInvalid, "image.%s: applies to squashfs images only, not image.format %s", f, im.Format)
			}
		}
	}
	im.EVMXattrs.validate(c, im.FieldPos("evm_xattrs"))
	if im.Level != nil && im.Format.IsTar() {
		lo, hi, _ := im.Format.TarLevelRange()
		switch {
		case hi == 0:
			c.add(im.FieldPos("level"), ErrInvalid, "image.level: format tar is not compressed and takes no level")
		case *im.Level < lo || *im.Level > hi:
			c.add(im.FieldPos("level"), ErrInvalid, "image.level: %d is out of range for %s (%d..%d)", *im.Level, im.Format, lo, hi)
		}
	} else if im.Level != nil {
		if ci, ok := im.Compression.Info(); ok {
			if err := ci.CheckLevel(*im.Level); err != nil {
				c.add(im.FieldPos("level"), ErrInvalid, "image.level: %v", err)
			}
		}
	}
	if im.Epoch < 0 || im.Epoch > maxEpoch {
		c.add(im.FieldPos("epoch"), ErrInvalid, "image.epoch: %d is out of range (0..%d, SquashFS stores 32-bit times)", im.Epoch, int64(maxEpoch))
	}
	im.Output = v.hostOpt(im.Output)
	v.keyRef(&im.Located, "image", "signature_key", im.SignatureKey)

	if m.Hash == "" {
		m.Hash = DefaultHash
	}
}

// keys checks keys: names, required fields, key references; host paths resolved.
func (v *validator) keys() {
	m, c := v.m, v.c
	for _, name := range m.KeyNames() {
		k := m.Keys[name]
		if k == nil {
			c.add(m.FieldPos("keys"), ErrMissing, "keys.%s: cert and key required", name)
			continue
		}
		k.Name = name
		if !keyNameRE.MatchString(name) {
			c.add(k.Pos, ErrInvalid, "key name %q: use letters, digits, '.', '_' and '-'", name)
		}
		if k.Cert == "" {
			c.add(k.Pos, ErrMissing, "keys.%s.cert: required", name)
		}
		if k.Key == "" {
			c.add(k.Pos, ErrMissing, "keys.%s.key: required", name)
		}
		if k.PassphraseEnv != "" && k.PassphraseFile != "" {
			c.add(k.FieldPos("passphrase_file"), ErrInvalid, "keys.%s: passphrase_env and passphrase_file exclude each other", name)
		}
		if k.Key != "" {
			ref, err := k.Ref()
			switch {
			case err != nil:
				c.add(k.FieldPos("key"), ErrInvalid, "keys.%s.key: %v", name, err)
			case k.RelicConfig != "" && !ref.NeedsRelicConfig():
				c.add(k.FieldPos("relic_config"), ErrInvalid, "keys.%s: relic_config needs key: relic:NAME or remote:NAME", name)
			case k.RelicConfig == "" && ref.Scheme == keyref.Remote:
				c.add(k.FieldPos("key"), ErrMissing, "keys.%s: key: remote:NAME needs relic_config, a relic client configuration (docs/service.md)", name)
			}
		} else if k.RelicConfig != "" {
			c.add(k.FieldPos("relic_config"), ErrInvalid, "keys.%s: relic_config needs key: relic:NAME", name)
		}
		k.Cert = v.hostOpt(k.Cert)
		if k.Backend() == "file" {
			k.Key = v.hostOpt(k.Key)
		}
		k.PassphraseFile = v.hostOpt(k.PassphraseFile)
		k.RelicConfig = v.hostOpt(k.RelicConfig)
	}
}

// trust checks trust: roots required, the revocation mode; host paths resolved.
func (v *validator) trust() {
	m, c := v.m, v.c
	if t := m.Trust; t != nil {
		for _, l := range []*[]string{&t.Roots, &t.Intermediates, &t.CRLs} {
			for i := range *l {
				(*l)[i] = v.host((*l)[i])
			}
		}
		if len(t.Roots) == 0 {
			c.add(t.Pos, ErrMissing, "trust.roots: at least one root certificate required")
		}
		switch t.Revocation {
		case "", "required", "best-effort":
		default:
			c.add(t.Pos, ErrInvalid, "trust.revocation: %q: want required or best-effort", t.Revocation)
		}
	}
}

// sources checks sources: from required, to cleaned, the format.
func (v *validator) sources() {
	m, c := v.m, v.c
	for i := range m.Sources {
		s := &m.Sources[i]
		if s.From == "" {
			c.add(s.Pos, ErrMissing, "sources[%d].from: required", i)
		} else {
			s.From = v.host(s.From)
		}
		if s.To == "" {
			s.To = "/"
		}
		s.IntoDir = strings.HasSuffix(s.To, "/")
		v.imagePath(&s.Located, fmt.Sprintf("sources[%d]", i), "to", &s.To)
		switch s.Format {
		case "", "dir", "file", "tar":
		default:
			c.add(s.FieldPos("format"), ErrInvalid, "sources[%d].format: %q is not dir, file or tar", i, s.Format)
		}
	}
	if len(m.Sources) == 0 && len(m.Entries) == 0 && !m.Has("sources") && !m.Has("entries") {
		c.add(m.Pos, ErrMissing, "sources: at least one source (or declared entry) required")
	}
}

// entries checks entries: declared paths once each, with the fields their type needs.
func (v *validator) entries() {
	m, c := v.m, v.c
	entryAt := map[string]*Entry{}
	for i := range m.Entries {
		e := &m.Entries[i]
		v.imagePath(&e.Located, fmt.Sprintf("entries[%d]", i), "path", &e.Path)
		if e.Type == "" {
			c.add(e.Pos, ErrMissing, "entries[%d].type: required (dir, file, symlink, char, block, fifo or socket)", i)
		}
		if prev, dup := entryAt[e.Path]; dup && e.Path != "" {
			c.add(e.Pos, ErrDuplicate, "entry %s already declared at line %d", e.Path, prev.Pos.Line)
		}
		entryAt[e.Path] = e
		isDev := e.Type == TypeChar || e.Type == TypeBlock
		if isDev && (e.Major == nil || e.Minor == nil) {
			c.add(e.Pos, ErrMissing, "entry %s: a %s device needs major and minor", e.Path, e.Type)
		}
		if e.Major != nil && *e.Major > MaxMajor {
			c.add(e.FieldPos("major"), ErrInvalid, "entry %s: major %d is above %d", e.Path, *e.Major, MaxMajor)
		}
		if e.Minor != nil && *e.Minor > MaxMinor {
			c.add(e.FieldPos("minor"), ErrInvalid, "entry %s: minor %d is above %d", e.Path, *e.Minor, MaxMinor)
		}
		if !isDev && (e.Major != nil || e.Minor != nil) {
			c.add(e.FieldPos("major"), ErrInvalid, "entry %s: major and minor are for char and block devices", e.Path)
		}
		if e.Type == TypeSymlink && e.Target == "" {
			c.add(e.Pos, ErrMissing, "entry %s: a symlink needs a target", e.Path)
		}
		if e.Type != TypeSymlink && e.Target != "" {
			c.add(e.FieldPos("target"), ErrInvalid, "entry %s: target is for symlinks", e.Path)
		}
		if strings.IndexByte(e.Target, 0) >= 0 {
			c.add(e.FieldPos("target"), ErrInvalid, "entry %s: target contains a NUL byte", e.Path)
		}
		if e.Type != TypeFile && e.Content != nil {
			c.add(e.FieldPos("content"), ErrInvalid, "entry %s: content is for files", e.Path)
		}
		if e.Type == TypeSymlink && e.Mode != nil {
			c.add(e.FieldPos("mode"), ErrInvalid, "entry %s: a symlink has no mode", e.Path)
		}
	}
}

// overrides checks overrides: a match and something to set.
func (v *validator) overrides() {
	m, c := v.m, v.c
	for i := range m.Overrides {
		o := &m.Overrides[i]
		if o.Match == "" {
			c.add(o.Pos, ErrMissing, "overrides[%d].match: required", i)
		}
		if o.Mode == nil && o.UID == nil && o.GID == nil && len(o.Xattrs) == 0 {
			c.add(o.Pos, ErrMissing, "overrides[%d]: set at least one of mode, uid, gid, xattrs", i)
		}
	}
}

// rules checks rules: a match, a key (or sign: false), EVM only on signed files.
func (v *validator) rules() {
	m, c := v.m, v.c
	for i := range m.Rules {
		r := &m.Rules[i]
		if r.Match == "" {
			c.add(r.Pos, ErrMissing, "rules[%d].match: required", i)
		}
		switch {
		case r.Signed() && r.Key == "":
			c.add(r.Pos, ErrMissing, "rules[%d]: key required (or sign: false)", i)
		case !r.Signed() && r.Key != "":
			c.add(r.FieldPos("key"), ErrInvalid, "rules[%d]: key and sign: false exclude each other", i)
		}
		v.keyRef(&r.Located, fmt.Sprintf("rules[%d]", i), "key", r.Key)
		v.keyRef(&r.Located, fmt.Sprintf("rules[%d]", i), "evm_key", r.EVMKey)
		if (r.EVM || r.EVMKey != "") && !r.Signed() {
			field := "evm"
			if r.EVMKey != "" {
				field = "evm_key"
			}
			c.add(r.FieldPos(field), ErrInvalid, "rules[%d]: a portable EVM signature covers security.ima, so it needs a signed file (sign: false given)", i)
		}
	}
}

// policy checks policy: fragments named once, with a path, a key and rules.
func (v *validator) policy() {
	m, c := v.m, v.c
	names := map[string]int{}
	for i := range m.Policy {
		f := &m.Policy[i]
		if f.Name == "" {
			c.add(f.Pos, ErrMissing, "policy[%d].name: required", i)
		} else if l, dup := names[f.Name]; dup {
			c.add(f.FieldPos("name"), ErrDuplicate, "policy fragment %q already defined at line %d", f.Name, l)
		}
		names[f.Name] = f.Pos.Line
		v.imagePath(&f.Located, fmt.Sprintf("policy[%d]", i), "path", &f.Path)
		if f.Key == "" {
			c.add(f.Pos, ErrMissing, "policy[%d].key: required", i)
		}
		v.keyRef(&f.Located, fmt.Sprintf("policy[%d]", i), "key", f.Key)
		if f.Rules == "" && len(f.Presets) == 0 {
			c.add(f.Pos, ErrMissing, "policy[%d]: rules or presets required", i)
		}
		if t := f.Tenant; t != nil && t.FOwner == nil && t.FGroup == nil {
			c.add(t.Pos, ErrMissing, "policy[%d].tenant: fowner or fgroup required", i)
		}
	}
}
