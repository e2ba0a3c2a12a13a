package manifest

import (
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/imaforge/imaforge/imasig"
)

// DefaultEVMProfile is image.evm_xattrs when the manifest names none.
const DefaultEVMProfile = "debian-6.1"

// EVMXattrList is image.evm_xattrs: the target kernel's EVM-protected
// xattrs, in the order its evm_config_default_xattrnames lists them
// (security/integrity/evm/evm_main.c), which is the order a portable EVM
// signature hashes them. In YAML it is the name of a known configuration
// (imasig.EVMProfiles: debian-6.1, evmctl, all) or a list of xattr names,
// each one the kernel's EVM can protect (imasig.EVMXattrsAll), in that
// order, security.ima and security.capability among them.
type EVMXattrList struct {
	// Profile is the configuration named; empty for a written list.
	Profile string
	// Names is the list: the profile's, or the one written. Validation
	// fills it.
	Names imasig.EVMXattrs

	pos     Pos   // the scalar or the list
	namePos []Pos // each written name
	list    bool
}

// String is the profile name, or the names joined by commas.
func (l EVMXattrList) String() string {
	if l.Profile != "" {
		return l.Profile
	}
	return strings.Join(l.Names, ",")
}

func (l *EVMXattrList) decodeNode(d *decoder, n *yaml.Node) {
	*l = EVMXattrList{pos: pos(n)}
	switch n.Kind {
	case yaml.ScalarNode:
		l.Profile = n.Value
	case yaml.SequenceNode:
		l.list = true
		for i, c := range n.Content {
			if !d.plain(c) {
				continue
			}
			if c.Kind != yaml.ScalarNode {
				d.errs.add(pos(c), ErrType, "image.evm_xattrs[%d] must be an xattr name, not %s", i, kindName(c))
				continue
			}
			l.Names = append(l.Names, c.Value)
			l.namePos = append(l.namePos, pos(c))
		}
	default:
		d.errs.add(pos(n), ErrType, "image.evm_xattrs must be a name (%s) or a list of xattr names, not %s", profileNames(), kindName(n))
	}
}

func profileNames() string {
	var ns []string
	for n := range imasig.EVMProfiles {
		ns = append(ns, n)
	}
	slices.Sort(ns)
	return strings.Join(ns, ", ")
}

// validate fills Names and reports, at the manifest line of the name, a
// profile that is not known, a name the kernel's EVM cannot protect, a
// name given twice or out of the kernel's order, and a list without
// security.ima (a portable signature needs it) or security.capability
// (which every kernel protects).
func (l *EVMXattrList) validate(c *errs, at Pos) {
	if l.pos.Line == 0 {
		l.pos = at
	}
	if !l.list {
		if l.Profile == "" {
			l.Profile = DefaultEVMProfile
		}
		names, ok := imasig.EVMProfiles[l.Profile]
		if !ok {
			c.add(l.pos, ErrInvalid, "image.evm_xattrs: %q is not one of %s, or a list of xattr names", l.Profile, profileNames())
			return
		}
		l.Names = names
		return
	}
	order := strings.Join(imasig.EVMXattrsAll, ", ")
	last := -1
	for i, name := range l.Names {
		k := slices.Index(imasig.EVMXattrsAll, name)
		switch {
		case k < 0:
			c.add(l.namePos[i], ErrInvalid, "image.evm_xattrs[%d]: %q is not an xattr the kernel's EVM protects (%s)", i, name, order)
		case slices.Index(l.Names, name) < i:
			c.add(l.namePos[i], ErrDuplicate, "image.evm_xattrs[%d]: %q is listed twice", i, name)
		case k < last:
			c.add(l.namePos[i], ErrInvalid, "image.evm_xattrs[%d]: %q is out of the kernel's order (%s)", i, name, order)
		default:
			last = k
		}
	}
	for _, need := range []struct{ name, why string }{
		{imasig.XattrName, "a portable EVM signature covers it (CONFIG_IMA_APPRAISE)"},
		{imasig.XattrCapability, "every kernel's EVM protects it"},
	} {
		if !slices.Contains(l.Names, need.name) {
			c.add(l.pos, ErrInvalid, "image.evm_xattrs: the list lacks %s: %s", need.name, need.why)
		}
	}
}
