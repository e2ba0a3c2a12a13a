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
	Unknown  Option = iota
	Enabled         // =y
	Module          // =m (tristate options only)
	Disabled        // "is not set"
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
	// Crypto holds CONFIG_CRYPTO_* options by name (CRYPTO_SHA512, without
	// the CONFIG_ prefix): appraise_algos= needs each algorithm built in, or
	// its module loadable when the policy is written. Absent entries are
	// Unknown: sha1 and sha256 (which IMA itself needs) are taken as
	// present, other algorithms get a warning.
	Crypto map[string]Option
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
	c.Crypto = map[string]Option{}
	set := func(name string, o Option) {
		if p := opts[name]; p != nil {
			*p = o
		} else if n, ok := strings.CutPrefix(name, "CONFIG_CRYPTO_"); ok {
			c.Crypto["CRYPTO_"+n] = o
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if name, ok := strings.CutPrefix(line, "# "); ok {
			if name, ok = strings.CutSuffix(name, " is not set"); ok {
				set(name, Disabled)
			}
			continue
		}
		name, val, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		switch val {
		case "y":
			set(name, Enabled)
		case "m":
			set(name, Module)
		default:
			set(name, Disabled)
		}
	}
	return c
}

// hashKconfig names the Kconfig options providing each hash algorithm
// (crypto/Kconfig); any one of them suffices.
var hashKconfig = map[string][]string{
	"md4": {"CRYPTO_MD4"}, "md5": {"CRYPTO_MD5"}, "sha1": {"CRYPTO_SHA1"},
	"rmd160": {"CRYPTO_RMD160"}, "sha224": {"CRYPTO_SHA256"}, "sha256": {"CRYPTO_SHA256"},
	"sha384": {"CRYPTO_SHA512"}, "sha512": {"CRYPTO_SHA512"},
	"rmd128": {"CRYPTO_RMD128"}, "rmd256": {"CRYPTO_RMD256"}, "rmd320": {"CRYPTO_RMD320"},
	"wp256": {"CRYPTO_WP512"}, "wp384": {"CRYPTO_WP512"}, "wp512": {"CRYPTO_WP512"},
	"tgr128": {"CRYPTO_TGR192"}, "tgr160": {"CRYPTO_TGR192"}, "tgr192": {"CRYPTO_TGR192"},
	"sm3":         {"CRYPTO_SM3_GENERIC", "CRYPTO_SM3"},
	"streebog256": {"CRYPTO_STREEBOG"}, "streebog512": {"CRYPTO_STREEBOG"},
	"sha3-256": {"CRYPTO_SHA3"}, "sha3-384": {"CRYPTO_SHA3"}, "sha3-512": {"CRYPTO_SHA3"},
}

// hashState returns how the configuration provides algorithm name: the
// best state among its Kconfig options, and the option to name in messages.
func (c Config) hashState(name string) (Option, string) {
	opts := hashKconfig[name]
	best, which := Unknown, ""
	rank := map[Option]int{Disabled: 1, Unknown: 0, Module: 2, Enabled: 3}
	for _, o := range opts {
		st, ok := c.Crypto[o]
		if !ok {
			continue
		}
		if which == "" || rank[st] > rank[best] {
			best, which = st, o
		}
	}
	if which == "" && len(opts) > 0 {
		which = opts[0]
	}
	return best, "CONFIG_" + which
}
