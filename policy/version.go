package policy

import (
	"fmt"
	"strings"
)

// Version is a Linux LTS kernel series whose IMA policy grammar the linter
// knows. The zero value is not a valid version; use [DefaultVersion].
//
// The grammar of each series was read from security/integrity/ima/ima_policy.c
// (policy_tokens, ima_parse_rule, ima_validate_rule) and ima_template.c
// (builtin_templates) of that series; docs/policy.md lists what changed when.
type Version uint8

// The LTS series the linter models, oldest first.
const (
	V5_10 Version = iota + 1
	V5_15
	V6_1
	V6_6
	V6_12
)

// DefaultVersion is the kernel series assumed when none is given.
const DefaultVersion = V6_1

// Versions lists every supported series, oldest first.
var Versions = []Version{V5_10, V5_15, V6_1, V6_6, V6_12}

var versionNames = map[Version]string{
	V5_10: "5.10",
	V5_15: "5.15",
	V6_1:  "6.1",
	V6_6:  "6.6",
	V6_12: "6.12",
}

// String returns the series as "6.1".
func (v Version) String() string {
	if s, ok := versionNames[v]; ok {
		return s
	}
	return fmt.Sprintf("Version(%d)", uint8(v))
}

// Valid reports whether v is one of the supported series.
func (v Version) Valid() bool { _, ok := versionNames[v]; return ok }

// ParseVersion accepts "6.1", "v6.1", "linux-6.1" or a full release such as
// "6.1.0-18-amd64" or "6.6.30" and returns its LTS series. A release between
// two series (say 6.3) is mapped to the newest supported series not newer
// than it, which is what its grammar is closest to without accepting
// keywords it lacks; 5.10 is the oldest accepted.
func ParseVersion(s string) (Version, error) {
	t := strings.TrimPrefix(strings.TrimPrefix(strings.TrimSpace(s), "linux-"), "v")
	var major, minor int
	if n, _ := fmt.Sscanf(t, "%d.%d", &major, &minor); n != 2 {
		return 0, fmt.Errorf("kernel version %q: want MAJOR.MINOR such as 6.1", s)
	}
	key := major*1000 + minor
	var best Version
	for _, v := range Versions {
		var vmaj, vmin int
		fmt.Sscanf(v.String(), "%d.%d", &vmaj, &vmin)
		if vmaj*1000+vmin <= key {
			best = v
		}
	}
	if best == 0 {
		return 0, fmt.Errorf("kernel version %q: older than 5.10, the oldest supported series", s)
	}
	return best, nil
}

// Set implements flag.Value.
func (v *Version) Set(s string) error {
	p, err := ParseVersion(s)
	if err != nil {
		return err
	}
	*v = p
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (v Version) MarshalText() ([]byte, error) {
	if !v.Valid() {
		return nil, fmt.Errorf("invalid kernel version %d", uint8(v))
	}
	return []byte(v.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler (YAML, JSON, flags).
func (v *Version) UnmarshalText(b []byte) error { return v.Set(string(b)) }
