package manifest

import (
	"crypto"
	"sort"

	"github.com/imaforge/imaforge/signer/keyref"
)

// Version is the manifest format version this package reads.
const Version = 1

// Located records where a YAML mapping and each of its keys' values start
// in the manifest. Every manifest struct embeds it.
type Located struct {
	// Pos is where the mapping starts.
	Pos    Pos
	fields map[string]Pos
	lines  map[string][]Pos // the lines of literal block values ("rules: |")
}

// LinePos returns the position in the manifest of line i (0-based) of the
// named key's value, where the value is a literal block scalar (`key: |`):
// its line and the column of its first character after the block's
// indentation. For any other value it returns FieldPos(yamlKey) and false.
func (l *Located) LinePos(yamlKey string, i int) (Pos, bool) {
	if ls := l.lines[yamlKey]; i >= 0 && i < len(ls) {
		return ls[i], true
	}
	return l.FieldPos(yamlKey), false
}

// FieldPos returns the position of the value of the named YAML key, or the
// position of the mapping when the key is absent.
func (l *Located) FieldPos(yamlKey string) Pos {
	if p, ok := l.fields[yamlKey]; ok {
		return p
	}
	return l.Pos
}

// Has reports whether the YAML key was written in the manifest (even with an
// empty or null value).
func (l *Located) Has(yamlKey string) bool {
	_, ok := l.fields[yamlKey]
	return ok
}

func (l *Located) setField(key string, p Pos) {
	if l.fields == nil {
		l.fields = make(map[string]Pos)
	}
	l.fields[key] = p
}

// Manifest is a parsed and validated version 1 manifest. Paths on the build
// host (sources, keys, certificates, trust files, the output) are absolute,
// resolved against the manifest's directory; paths in the image are absolute
// and clean.
type Manifest struct {
	Located `yaml:"-"`

	Version int   `yaml:"version"`
	Image   Image `yaml:"image"`
	// Hash is the digest algorithm of the file signatures.
	Hash Hash `yaml:"hash"`
	// Kernel is the target kernel version ("6.1"), used by the policy linter.
	Kernel string `yaml:"kernel"`
	// Keys maps a key name (the role the rules refer to) to its key.
	Keys map[string]*Key `yaml:"keys"`
	// Trust is the store the keys' certificates are checked against before
	// signing (issue 5); nil when the manifest has none.
	Trust *Trust `yaml:"trust"`
	// Sources are applied in order; a later source wins for the same path.
	Sources []Source `yaml:"sources"`
	// Exclude drops source paths matching any of the patterns.
	Exclude []Pattern `yaml:"exclude"`
	// Entries are declared entries that need no file on the build host.
	Entries []Entry `yaml:"entries"`
	// Overrides set mode, owner or xattrs on every path matching a pattern.
	Overrides []Override `yaml:"overrides"`
	// Rules assign a key to each regular file; the first match wins.
	Rules []Rule `yaml:"rules"`
	// Policy is the list of IMA policy fragments written into the image.
	Policy []PolicyFragment `yaml:"policy"`

	// File is the name the manifest was loaded from, as given.
	File string `yaml:"-"`
	// Dir is the absolute directory relative host paths were resolved against.
	Dir string `yaml:"-"`
	// Digest is the SHA-256 of the manifest file's bytes.
	Digest [32]byte `yaml:"-"`
}

// KeyNames returns the names of the manifest's keys, sorted.
func (m *Manifest) KeyNames() []string {
	names := make([]string, 0, len(m.Keys))
	for n := range m.Keys {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Image holds the options of the image file itself.
type Image struct {
	Located `yaml:"-"`

	// Output is the image path on the build host (absolute); empty when the
	// manifest leaves it to the command line.
	Output string `yaml:"output"`
	// Format is the output format: squashfs (the default), or a POSIX pax
	// archive tar, tar.gz or tar.zst that installs with its xattrs.
	Format ImageFormat `yaml:"format"`
	// EVMXattrs is the target kernel's list of EVM-protected xattrs: a
	// known configuration (debian-6.1, the default; evmctl; all) or a
	// written list (EVMXattrList).
	EVMXattrs   EVMXattrList `yaml:"evm_xattrs"`
	Compression Compression  `yaml:"compression"`
	// Level is the compression level; nil selects the compressor's default
	// (see Compression.DefaultLevel).
	Level     *int      `yaml:"level"`
	BlockSize BlockSize `yaml:"block_size"`
	// Epoch is the mtime of every entry and the image's creation time, in
	// seconds since 1970 (SquashFS stores 32 bits).
	Epoch int64 `yaml:"epoch"`
	// EpochFromEnv is true when SOURCE_DATE_EPOCH replaced Epoch.
	EpochFromEnv bool `yaml:"-"`
	// Owner, when set, replaces the owner of every entry from a source.
	Owner *Owner `yaml:"owner"`
	// KeepXattrs keeps user., trusted. and security. xattrs from the sources
	// (never security.ima: only the signer writes it).
	KeepXattrs bool `yaml:"keep_xattrs"`
	// Verity appends a dm-verity hash tree to the image (issue 11).
	Verity bool `yaml:"verity"`
	// SignatureKey names the key that makes a detached CMS signature over the
	// image (issue 11); empty for none.
	SignatureKey string `yaml:"signature_key"`
}

// CompressionLevel returns the level to use: the manifest's, or the
// compressor's default.
func (im *Image) CompressionLevel() int {
	if im.Level != nil {
		return *im.Level
	}
	return im.Compression.DefaultLevel()
}

// Owner is a numeric user and group id.
type Owner struct {
	Located `yaml:"-"`
	UID     uint32 `yaml:"uid"`
	GID     uint32 `yaml:"gid"`
}

// Key is a signing key and the certificate that identifies it.
type Key struct {
	Located `yaml:"-"`

	// Name is the key's name in the manifest's keys mapping.
	Name string `yaml:"-"`
	// Cert is the certificate (PEM or DER) path, absolute.
	Cert string `yaml:"cert"`
	// Key is the private key: an absolute PEM file path, or a reference
	// understood by a key backend ("relic:NAME", "pkcs11:..."), kept as written.
	Key string `yaml:"key"`
	// PassphraseEnv names an environment variable holding the key's
	// passphrase (or a token PIN).
	PassphraseEnv string `yaml:"passphrase_env"`
	// PassphraseFile is a file holding the passphrase (or PIN), absolute.
	PassphraseFile string `yaml:"passphrase_file"`
	// RelicConfig is the relic configuration file for "relic:" keys, absolute.
	RelicConfig string `yaml:"relic_config"`
}

// Ref parses Key (keyref.Parse): a key file, "relic:NAME", a pkcs11: URI or
// "remote:NAME" (a signing service's key).
// Validation has checked it, so in a loaded manifest only an empty Key
// fails.
func (k *Key) Ref() (keyref.Ref, error) { return keyref.Parse(k.Key) }

// Backend returns how the key is reached: "file", "relic", "pkcs11" or "remote"
// (keyref.Scheme); "file" for a reference that does not parse.
func (k *Key) Backend() string {
	r, err := k.Ref()
	if err != nil {
		return keyref.File.String()
	}
	return r.Scheme.String()
}

// Trust is the certificate store keys are checked against (issue 5).
type Trust struct {
	Located       `yaml:"-"`
	Roots         []string `yaml:"roots"`
	Intermediates []string `yaml:"intermediates"`
	CRLs          []string `yaml:"crls"`
	// Revocation is "required" (the default: every CA of a signing chain
	// needs a current CRL in crls) or "best-effort" (a missing or stale CRL
	// is a warning).
	Revocation string `yaml:"revocation"`
}

// Source maps a directory, a single file or a tarball on the build host into
// the image.
type Source struct {
	Located `yaml:"-"`

	// From is the host path, absolute.
	From string `yaml:"from"`
	// To is where From lands in the image ("/" by default).
	To string `yaml:"to"`
	// IntoDir is true when To was written with a trailing "/": a single
	// file then lands in that directory under its own name.
	IntoDir bool `yaml:"-"`
	// Mode, when set, replaces the permission bits of the entry at To (the
	// single file, or the top directory).
	Mode *Mode `yaml:"mode"`
	// Format is "dir", "file" or "tar"; empty means detect (a tarball is
	// recognised by its name: .tar, .tar.gz, .tgz, .tar.zst, .tar.xz, .tar.bz2).
	Format string `yaml:"format"`
}

// Rule assigns a key to the regular files matching a pattern.
type Rule struct {
	Located `yaml:"-"`

	Match Pattern `yaml:"match"`
	// Key names the signing key; empty when Sign is false.
	Key string `yaml:"key"`
	// Sign is false for paths that get no signature; nil means true.
	Sign *bool `yaml:"sign"`
	// EVM gives the files a portable EVM signature (security.evm type
	// 0x05) over their security.ima, owner, group and mode, made with
	// EVMKey (default: Key).
	EVM bool `yaml:"evm"`
	// EVMKey names the key of the EVM signatures; setting it implies EVM.
	EVMKey string `yaml:"evm_key"`
}

// EVMKeyName returns the key of the rule's EVM signatures, or "" for none.
func (r *Rule) EVMKeyName() string {
	switch {
	case r.EVMKey != "":
		return r.EVMKey
	case r.EVM:
		return r.Key
	}
	return ""
}

// Signed reports whether files matching the rule are signed.
func (r *Rule) Signed() bool { return r.Sign == nil || *r.Sign }

// Entry is a declared entry: a directory, symlink, device, fifo or small
// file that needs no file on the build host (issue 10).
type Entry struct {
	Located `yaml:"-"`

	Path string    `yaml:"path"`
	Type EntryType `yaml:"type"`
	Mode *Mode     `yaml:"mode"`
	UID  *uint32   `yaml:"uid"`
	GID  *uint32   `yaml:"gid"`
	// Target is a symlink's target.
	Target string `yaml:"target"`
	// Major and Minor are a device's numbers.
	Major *uint32 `yaml:"major"`
	Minor *uint32 `yaml:"minor"`
	// Content is a regular file's content.
	Content *string `yaml:"content"`
	Xattrs  Xattrs  `yaml:"xattrs"`
}

// Override sets attributes of every entry whose image path matches.
type Override struct {
	Located `yaml:"-"`

	Match  Pattern `yaml:"match"`
	Mode   *Mode   `yaml:"mode"`
	UID    *uint32 `yaml:"uid"`
	GID    *uint32 `yaml:"gid"`
	Xattrs Xattrs  `yaml:"xattrs"`
}

// PolicyFragment is an IMA policy fragment written into the image and signed
// (issue 6).
type PolicyFragment struct {
	Located `yaml:"-"`

	Name string `yaml:"name"`
	// Path is the fragment's absolute path in the image.
	Path string `yaml:"path"`
	// Key names the key that signs the fragment.
	Key string `yaml:"key"`
	// Rules is the policy text, one rule per line.
	Rules string `yaml:"rules"`
	// Presets names generated rule sets, interpreted by the policy package.
	Presets []string `yaml:"presets"`
	// Tenant makes this a tenant fragment, appended at run time when the
	// image is mounted: every rule must be confined to these ids' files.
	Tenant *PolicyTenant `yaml:"tenant"`
}

// PolicyTenant names the ids of a tenant's files (fowner=, fgroup=).
type PolicyTenant struct {
	Located `yaml:"-"`

	FOwner *uint32 `yaml:"fowner"`
	FGroup *uint32 `yaml:"fgroup"`
}

// HashAlgorithm returns the crypto.Hash of h.
func (h Hash) HashAlgorithm() crypto.Hash { return hashes[h] }
