package policy

import (
	"bufio"
	"bytes"
	"strings"
)

// Option is the state of a kernel build option the policy grammar depends on.
type Option uint8

// Option states.
const (
	// Unknown: the linter does not know; see each Config field for what it assumes.
	Unknown Option = iota
	Enabled
	Disabled
)

// Config is what the linter knows of the kernel's build configuration
// (Kconfig), beyond its version.
type Config struct {
	// Modsig is CONFIG_IMA_APPRAISE_MODSIG, needed by
	// appraise_type=imasig|modsig and, before 6.6, appraise_flag=. It
	// defaults to off upstream and is off in Debian's kernels, so Unknown
	// gives a warning on such rules.
	Modsig Option
	// AsymmetricKeys is CONFIG_IMA_MEASURE_ASYMMETRIC_KEYS, needed by
	// func=KEY_CHECK and keyrings=. It defaults to on when the kernel has
	// X.509 support, so Unknown is taken as Enabled.
	AsymmetricKeys Option
}

// Target is the kernel a policy is meant for.
type Target struct {
	Version Version
	Config  Config
}

// ParseKconfig reads the options Config needs from a kernel .config (such
// as /boot/config-$(uname -r)): "CONFIG_X=y" enables, "# CONFIG_X is not
// set" disables; options absent from the file stay Unknown.
func ParseKconfig(data []byte) Config {
	var c Config
	opts := map[string]*Option{
		"CONFIG_IMA_APPRAISE_MODSIG":         &c.Modsig,
		"CONFIG_IMA_MEASURE_ASYMMETRIC_KEYS": &c.AsymmetricKeys,
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if name, ok := strings.CutPrefix(line, "# "); ok {
			if name, ok = strings.CutSuffix(name, " is not set"); ok {
				if o := opts[name]; o != nil {
					*o = Disabled
				}
			}
			continue
		}
		name, val, ok := strings.Cut(line, "=")
		if o := opts[name]; ok && o != nil {
			if val == "y" {
				*o = Enabled
			} else {
				*o = Disabled
			}
		}
	}
	return c
}
