package manifest

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// base is a valid manifest that the error cases edit.
const base = `version: 1
image:
  output: out/img.sqsh
  compression: zstd
  block_size: 128K
keys:
  mfr: {cert: mfr.pem, key: mfr.key}
sources:
  - from: rootfs
rules:
  - match: /**
    key: mfr
`

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // the full error text
		kind error
	}{
		{"syntax", "version: 1\nimage: [\n", "m.yaml:2: YAML syntax: did not find expected node content", ErrSyntax},
		{"syntax tab", "version: 1\n\timage: {}\n", "m.yaml:2: YAML syntax: found a tab character that violates indentation", ErrSyntax},
		{"empty", "", "m.yaml:1:1: empty manifest", ErrMissing},
		{"comment only", "# nothing\n", "m.yaml:1:1: empty manifest", ErrMissing},
		{"not a mapping", "- a\n", "m.yaml:1:1: manifest must be a mapping, not a list", ErrType},
		{"two documents", base + "---\nversion: 1\n", "m.yaml:13:1: a manifest is one YAML document; found a second one", ErrUnsupported},
		{"unknown field", strings.Replace(base, "  compression: zstd", "  comprssion: zstd", 1),
			`m.yaml:4:3: unknown field "comprssion" in image (did you mean "compression"?)`, ErrUnknownField},
		{"unknown top field", base + "signing: yes\n", `m.yaml:13:1: unknown field "signing" in manifest`, ErrUnknownField},
		{"duplicate field", strings.Replace(base, "  block_size: 128K", "  block_size: 128K\n  block_size: 64K", 1),
			"m.yaml:6:3: block_size already set at line 5", ErrDuplicate},
		{"duplicate key name", strings.Replace(base, "  mfr: {cert: mfr.pem, key: mfr.key}", "  mfr: {cert: mfr.pem, key: mfr.key}\n  mfr: {cert: b.pem, key: b.key}", 1),
			`m.yaml:8:3: keys "mfr" already defined at line 7`, ErrDuplicate},
		{"missing version", strings.TrimPrefix(base, "version: 1\n"), "m.yaml:1:1: version: required (version: 1)", ErrMissing},
		{"bad version", strings.Replace(base, "version: 1", "version: 2", 1),
			"m.yaml:1:10: version 2 is not supported (this imaforge reads version 1)", ErrUnsupported},
		{"version string", strings.Replace(base, "version: 1", "version: one", 1),
			`m.yaml:1:10: version must be an integer, not "one"`, ErrType},
		{"bad compression", strings.Replace(base, "compression: zstd", "compression: brotli", 1),
			`m.yaml:4:16: image.compression: unknown compression "brotli" (want one of gzip, zstd, xz, lz4, none)`, ErrInvalid},
		{"zstd level", strings.Replace(base, "  compression: zstd", "  compression: zstd\n  level: 23", 1),
			"m.yaml:5:10: image.level: 23 is out of range for zstd (1..22)", ErrInvalid},
		{"gzip level", strings.Replace(base, "  compression: zstd", "  compression: gzip\n  level: 0", 1),
			"m.yaml:5:10: image.level: 0 is out of range for gzip (1..9)", ErrInvalid},
		// xz levels were accepted and then ignored by the build (level 0 and 9
		// gave the same image); mksquashfs's xz takes no level either.
		{"xz level", strings.Replace(base, "  compression: zstd", "  compression: xz\n  level: 9", 1),
			"m.yaml:5:10: image.level: compression xz takes no level", ErrInvalid},
		{"lz4 level", strings.Replace(base, "  compression: zstd", "  compression: lz4\n  level: 13", 1),
			"m.yaml:5:10: image.level: 13 is out of range for lz4 (0..12)", ErrInvalid},
		{"none level", strings.Replace(base, "  compression: zstd", "  compression: none\n  level: 1", 1),
			"m.yaml:5:10: image.level: compression none takes no level", ErrInvalid},
		{"block size not power of two", strings.Replace(base, "128K", "96K", 1),
			"m.yaml:5:15: image.block_size: block size 96K is not a power of two from 4K to 1M", ErrInvalid},
		{"block size too big", strings.Replace(base, "128K", "2M", 1),
			"m.yaml:5:15: image.block_size: block size 2M is not a power of two from 4K to 1M", ErrInvalid},
		{"block size junk", strings.Replace(base, "128K", "big", 1),
			`m.yaml:5:15: image.block_size: block size "big" is not a size (write 131072, 128K or 1M)`, ErrInvalid},
		{"negative epoch", strings.Replace(base, "  block_size: 128K", "  block_size: 128K\n  epoch: -1", 1),
			"m.yaml:6:10: image.epoch: -1 is out of range (0..4294967295, SquashFS stores 32-bit times)", ErrInvalid},
		{"uid out of range", strings.Replace(base, "  block_size: 128K", "  block_size: 128K\n  owner: {uid: 4294967296, gid: 0}", 1),
			"m.yaml:6:16: image.owner.uid: 4294967296 is out of range 0..4294967295", ErrInvalid},
		{"keep_xattrs not bool", strings.Replace(base, "  block_size: 128K", "  block_size: 128K\n  keep_xattrs: yes", 1),
			`m.yaml:6:16: image.keep_xattrs must be true or false, not "yes"`, ErrType},
		{"bad hash", base + "hash: md5\n",
			`m.yaml:13:7: hash: unknown hash "md5" (want one of sha1, sha224, sha256, sha384, sha512)`, ErrInvalid},
		{"undefined key", strings.Replace(base, "    key: mfr\n", "    key: mfg\n", 1),
			`m.yaml:12:10: rules[0].key: key "mfg" is not defined in keys (did you mean "mfr"?)`, ErrUndefinedKey},
		{"undefined key far", strings.Replace(base, "    key: mfr\n", "    key: tenant\n", 1),
			`m.yaml:12:10: rules[0].key: key "tenant" is not defined in keys (defined: mfr)`, ErrUndefinedKey},
		{"rule without key", strings.Replace(base, "    key: mfr\n", "", 1),
			"m.yaml:11:5: rules[0]: key required (or sign: false)", ErrMissing},
		{"rule key and sign false", strings.Replace(base, "    key: mfr\n", "    key: mfr\n    sign: false\n", 1),
			"m.yaml:12:10: rules[0]: key and sign: false exclude each other", ErrInvalid},
		{"evm unsigned", strings.Replace(base, "    key: mfr\n", "    sign: false\n    evm: true\n", 1),
			"m.yaml:13:10: rules[0]: a portable EVM signature covers security.ima, so it needs a signed file (sign: false given)", ErrInvalid},
		{"undefined evm key", strings.Replace(base, "    key: mfr\n", "    key: mfr\n    evm_key: tenant\n", 1),
			`m.yaml:13:14: rules[0].evm_key: key "tenant" is not defined in keys (defined: mfr)`, ErrUndefinedKey},
		{"bad format", strings.Replace(base, "  compression: zstd", "  format: cpio", 1),
			`m.yaml:4:11: image.format: "cpio" is not one of squashfs, tar, tar.gz, tar.zst`, ErrInvalid},
		{"tar with compression", strings.Replace(base, "  block_size: 128K", "  format: tar.gz", 1),
			"m.yaml:4:16: image.compression: applies to squashfs images only, not image.format tar.gz", ErrInvalid},
		{"tar level", strings.Replace(base, "  compression: zstd\n  block_size: 128K", "  format: tar.zst\n  level: 23", 1),
			"m.yaml:5:10: image.level: 23 is out of range for tar.zst (1..22)", ErrInvalid},
		{"plain tar level", strings.Replace(base, "  compression: zstd\n  block_size: 128K", "  format: tar\n  level: 3", 1),
			"m.yaml:5:10: image.level: format tar is not compressed and takes no level", ErrInvalid},
		{"bad evm xattrs", strings.Replace(base, "  compression: zstd", "  compression: zstd\n  evm_xattrs: smack", 1),
			`m.yaml:5:15: image.evm_xattrs: "smack" is not one of all, debian-6.1, evmctl, or a list of xattr names`, ErrInvalid},
		{"evm xattr unknown", strings.Replace(base, "  compression: zstd", "  compression: zstd\n  evm_xattrs:\n    - security.ima\n    - security.fooattr\n    - security.capability", 1),
			`m.yaml:7:7: image.evm_xattrs[1]: "security.fooattr" is not an xattr the kernel's EVM protects (security.selinux, security.SMACK64, security.SMACK64EXEC, security.SMACK64TRANSMUTE, security.SMACK64MMAP, security.apparmor, security.ima, security.capability)`, ErrInvalid},
		{"evm xattrs out of order", strings.Replace(base, "  compression: zstd", "  compression: zstd\n  evm_xattrs: [security.ima, security.apparmor, security.capability]", 1),
			`m.yaml:5:30: image.evm_xattrs[1]: "security.apparmor" is out of the kernel's order (security.selinux, security.SMACK64, security.SMACK64EXEC, security.SMACK64TRANSMUTE, security.SMACK64MMAP, security.apparmor, security.ima, security.capability)`, ErrInvalid},
		{"evm xattr twice", strings.Replace(base, "  compression: zstd", "  compression: zstd\n  evm_xattrs: [security.ima, security.ima, security.capability]", 1),
			`m.yaml:5:30: image.evm_xattrs[1]: "security.ima" is listed twice`, ErrDuplicate},
		{"evm xattrs without ima", strings.Replace(base, "  compression: zstd", "  compression: zstd\n  evm_xattrs: [security.selinux, security.capability]", 1),
			`m.yaml:5:15: image.evm_xattrs: the list lacks security.ima: a portable EVM signature covers it (CONFIG_IMA_APPRAISE)`, ErrInvalid},
		{"evm xattrs not a list of names", strings.Replace(base, "  compression: zstd", "  compression: zstd\n  evm_xattrs: [[security.ima]]", 1),
			`m.yaml:5:16: image.evm_xattrs[0] must be an xattr name, not a list`, ErrType},
		{"bad glob", strings.Replace(base, "match: /**", "match: /a/[b", 1),
			`m.yaml:11:12: rules[0].match: pattern "/a/[b" is not a valid glob`, ErrInvalid},
		{"key without cert", strings.Replace(base, "{cert: mfr.pem, key: mfr.key}", "{key: mfr.key}", 1),
			"m.yaml:7:8: keys.mfr.cert: required", ErrMissing},
		{"two passphrases", strings.Replace(base, "key: mfr.key}", "key: mfr.key, passphrase_env: P, passphrase_file: p.txt}", 1),
			"m.yaml:7:74: keys.mfr: passphrase_env and passphrase_file exclude each other", ErrInvalid},
		{"pkcs11 URI without object", strings.Replace(base, "key: mfr.key}", `key: "pkcs11:token=fw"}`, 1),
			`m.yaml:7:29: keys.mfr.key: invalid key reference: PKCS#11 URI "pkcs11:token=fw": need an object (key label) or id attribute`, ErrInvalid},
		{"pkcs11 URI with a PIN", strings.Replace(base, "key: mfr.key}", `key: "pkcs11:object=ima?pin-value=1234"}`, 1),
			`m.yaml:7:29: keys.mfr.key: invalid key reference: PKCS#11 URI "pkcs11:object=ima?pin-value=***": pin-value is not accepted: give the PIN by environment variable, file or prompt`, ErrInvalid},
		{"empty relic name", strings.Replace(base, "key: mfr.key}", `key: "relic:"}`, 1),
			`m.yaml:7:29: keys.mfr.key: invalid key reference: "relic:": want relic:NAME, NAME a key of the relic configuration`, ErrInvalid},
		{"bad key name", strings.Replace(base, "  mfr: {", "  mfr/x: {", 1) + "", "", nil}, // also an undefined key: checked below
		{"relative to", strings.Replace(base, "  - from: rootfs\n", "  - from: rootfs\n    to: opt\n", 1),
			`m.yaml:10:9: sources[0].to: path "opt" in the image must be absolute (start with /)`, ErrInvalid},
		{"dotdot to", strings.Replace(base, "  - from: rootfs\n", "  - from: rootfs\n    to: /opt/../etc\n", 1),
			`m.yaml:10:9: sources[0].to: path "/opt/../etc" contains a .. component`, ErrInvalid},
		{"missing from", strings.Replace(base, "  - from: rootfs\n", "  - to: /\n", 1),
			"m.yaml:9:5: sources[0].from: required", ErrMissing},
		{"decimal mode", strings.Replace(base, "  - from: rootfs\n", "  - from: rootfs\n    mode: 755\n", 1),
			"m.yaml:10:11: sources[0].mode: mode 755 must be octal with a leading 0 (e.g. 0755)", ErrInvalid},
		{"mode too big", strings.Replace(base, "  - from: rootfs\n", "  - from: rootfs\n    mode: 017777\n", 1),
			"m.yaml:10:11: sources[0].mode: mode 017777 has bits beyond 07777", ErrInvalid},
		{"sources not a list", strings.Replace(base, "  - from: rootfs\n", "  from: rootfs\n", 1),
			"m.yaml:9:3: sources must be a list, not a mapping", ErrType},
		{"alias", strings.Replace(base, "  mfr: {cert: mfr.pem, key: mfr.key}", "  mfr: &k {cert: mfr.pem, key: mfr.key}\n  other: *k", 1),
			"m.yaml:7:8: YAML anchors are not supported in a manifest\nm.yaml:8:10: YAML aliases are not supported in a manifest", ErrUnsupported},
		{"custom tag", strings.Replace(base, "compression: zstd", "compression: !env ZSTD", 1),
			"m.yaml:4:16: YAML tag !env is not supported in a manifest", ErrUnsupported},
		{"several errors", strings.Replace(strings.Replace(base, "compression: zstd", "compression: lzo", 1), "key: mfr\n", "key: nope\n", 1),
			"m.yaml:4:16: image.compression: unknown compression \"lzo\" (want one of gzip, zstd, xz, lz4, none)\n" +
				"m.yaml:12:10: rules[0].key: key \"nope\" is not defined in keys (defined: mfr)", ErrInvalid},
		{"device without minor", base + "entries:\n  - {path: /dev/null, type: char, major: 1}\n",
			"m.yaml:14:5: entry /dev/null: a char device needs major and minor", ErrMissing},
		{"symlink without target", base + "entries:\n  - {path: /bin/sh, type: symlink}\n",
			"m.yaml:14:5: entry /bin/sh: a symlink needs a target", ErrMissing},
		{"bad entry type", base + "entries:\n  - {path: /x, type: door}\n",
			`m.yaml:14:22: entries[0].type: unknown entry type "door" (want one of dir, file, symlink, char, block, fifo, socket)`, ErrInvalid},
		{"duplicate entry", base + "entries:\n  - {path: /x, type: dir}\n  - {path: /x/, type: fifo}\n",
			"m.yaml:15:5: entry /x already declared at line 14", ErrDuplicate},
		{"xattr security.ima", base + "entries:\n  - {path: /x, type: dir, xattrs: {security.ima: 0x03}}\n",
			"m.yaml:14:36: xattr security.ima is written by the signer and cannot be declared", ErrInvalid},
		{"xattr namespace", base + "overrides:\n  - {match: /x, xattrs: {system.posix_acl_access: a}}\n",
			`m.yaml:14:26: xattr "system.posix_acl_access" is not in the user., trusted. or security. namespace`, ErrInvalid},
		{"override sets nothing", base + "overrides:\n  - {match: /x}\n",
			"m.yaml:14:5: overrides[0]: set at least one of mode, uid, gid, xattrs", ErrMissing},
		{"policy undefined key", base + "policy:\n  - {name: a, path: /etc/ima/a.policy, key: owner, rules: \"measure func=BPRM_CHECK\"}\n",
			`m.yaml:14:45: policy[0].key: key "owner" is not defined in keys (defined: mfr)`, ErrUndefinedKey},
		{"signature key undefined", strings.Replace(base, "  block_size: 128K", "  block_size: 128K\n  signature_key: owner", 1),
			`m.yaml:6:18: image.signature_key: key "owner" is not defined in keys (defined: mfr)`, ErrUndefinedKey},
		{"trust without roots", base + "trust: {crls: [a.crl]}\n",
			"m.yaml:13:8: trust.roots: at least one root certificate required", ErrMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse("m.yaml", []byte(tt.in))
			if err == nil {
				t.Fatalf("Parse succeeded: %+v", m)
			}
			if tt.want == "" {
				return
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n got %s\nwant %s", err, tt.want)
			}
			if !errors.Is(err, tt.kind) {
				t.Errorf("errors.Is(err, %v) = false", tt.kind)
			}
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 {
				t.Fatalf("error is not an ErrorList: %T", err)
			}
			for _, e := range list {
				if e.Filename != "m.yaml" || e.Pos.Line == 0 {
					t.Errorf("error without a position: %v", e)
				}
			}
		})
	}
}

func TestParseExample(t *testing.T) {
	m, err := Load(filepath.Join("..", "testdata", "manifest", "example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := filepath.Abs(filepath.Join("..", "testdata", "manifest"))
	checks := []struct {
		name      string
		got, want any
	}{
		{"dir", m.Dir, dir},
		{"output", m.Image.Output, filepath.Join(dir, "out/firmware.sqsh")},
		{"compression", m.Image.Compression, Zstd},
		{"level", m.Image.CompressionLevel(), 15},
		{"block size", m.Image.BlockSize, BlockSize(128 << 10)},
		{"block log", m.Image.BlockSize.Log2(), 17},
		{"epoch", m.Image.Epoch, int64(1700000000)},
		{"owner", m.Image.Owner.UID + m.Image.Owner.GID, uint32(0)},
		{"hash", m.Hash.HashAlgorithm().String(), "SHA-256"},
		{"keys", strings.Join(m.KeyNames(), ","), "manufacturer,tenant-acme"},
		{"key name", m.Keys["tenant-acme"].Name, "tenant-acme"},
		{"key path", m.Keys["tenant-acme"].Key, filepath.Join(dir, "keys/acme-ima.key")},
		{"cert path", m.Keys["manufacturer"].Cert, filepath.Join(dir, "pki/mfr-ima.crt")},
		{"passphrase env", m.Keys["tenant-acme"].PassphraseEnv, "ACME_KEY_PASSPHRASE"},
		{"backend", m.Keys["manufacturer"].Backend(), "file"},
		{"source 0", m.Sources[0].From, filepath.Join(dir, "rootfs")},
		{"source 0 to", m.Sources[0].To, "/"},
		{"source 1 to", m.Sources[1].To, "/opt/acme/bin/app"},
		{"source 1 mode", *m.Sources[1].Mode, Mode(0o755)},
		{"source 1 pos", m.Sources[1].Pos, Pos{Line: 21, Col: 5}},
		{"from pos", m.Sources[1].FieldPos("from"), Pos{Line: 21, Col: 11}},
		{"excludes", len(m.Exclude), 2},
		{"entries", len(m.Entries), 4},
		{"console", *m.Entries[0].Major*1000 + *m.Entries[0].Minor, uint32(5001)},
		{"content", *m.Entries[3].Content, "device\n"},
		{"setuid", *m.Overrides[0].Mode, Mode(0o4755)},
		{"rules", len(m.Rules), 3},
		{"sign false", m.Rules[1].Signed(), false},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

func TestRule(t *testing.T) {
	m, err := Load(filepath.Join("..", "testdata", "manifest", "example.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path   string
		key    string
		signed bool
	}{
		{"/opt/acme/bin/app", "tenant-acme", true},
		{"/opt/acme", "tenant-acme", true},
		{"/opt/acmex/app", "manufacturer", true},
		{"/var/log/boot.log", "", false},
		{"/usr/bin/ls", "manufacturer", true},
		{"/", "manufacturer", true},
	}
	for _, tt := range tests {
		r, ok := m.Rule(tt.path)
		if !ok {
			t.Errorf("%s: no rule", tt.path)
			continue
		}
		if r.Key != tt.key || r.Signed() != tt.signed {
			t.Errorf("%s: rule key %q signed %v, want %q %v", tt.path, r.Key, r.Signed(), tt.key, tt.signed)
		}
	}
	m.Rules = m.Rules[:2]
	if _, err := m.RuleFor("/usr/bin/ls"); !errors.Is(err, ErrNoRule) || !strings.Contains(err.Error(), "/usr/bin/ls") {
		t.Errorf("RuleFor without a match: %v", err)
	}
}

func TestPatternMatch(t *testing.T) {
	tests := []struct {
		pat, path string
		want      bool
	}{
		{"/**", "/", true},
		{"/**", "/a/b/c", true},
		{"/a/**", "/a", true},
		{"/a/**", "/ab", false},
		{"/a/*", "/a/b", true},
		{"/a/*", "/a/b/c", false},
		{"/a/?", "/a/b", true},
		{"/a/[bc]", "/a/c", true},
		{"/a/[!bc]", "/a/c", false},
		{"/a/{x,y}/z", "/a/y/z", true},
		{"*.o", "/src/deep/x.o", true},
		{"*.o", "/x.o", true},
		{"**/*.o", "/src/x.o", true},
		{"*.o", "/src/x.c", false},
		{"/usr/bin/sudo", "/usr/bin/sudo", true},
		{"/usr/bin/sudo", "/usr/bin/sudoedit", false},
	}
	for _, tt := range tests {
		p, err := ParsePattern(tt.pat)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.Match(tt.path); got != tt.want {
			t.Errorf("%q.Match(%q) = %v, want %v", tt.pat, tt.path, got, tt.want)
		}
	}
}

func TestSourceDateEpoch(t *testing.T) {
	m, err := Parse("m.yaml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.SetSourceDateEpoch(""); err != nil || m.Image.Epoch != 0 || m.Image.EpochFromEnv {
		t.Fatalf("empty SOURCE_DATE_EPOCH changed the epoch: %v %d", err, m.Image.Epoch)
	}
	if err := m.SetSourceDateEpoch("1700000000"); err != nil || m.Image.Epoch != 1700000000 || !m.Image.EpochFromEnv {
		t.Fatalf("SOURCE_DATE_EPOCH=1700000000: %v %d", err, m.Image.Epoch)
	}
	for _, bad := range []string{"x", "-1", "4294967296", "1.5"} {
		if err := m.SetSourceDateEpoch(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("SOURCE_DATE_EPOCH=%q: %v", bad, err)
		}
	}
}

func TestValues(t *testing.T) {
	for in, want := range map[string]BlockSize{"4K": 4096, "4096": 4096, "128k": 131072, "128KiB": 131072, "1M": 1 << 20, "1MiB": 1 << 20, "131072": 131072} {
		if got, err := ParseBlockSize(in); err != nil || got != want {
			t.Errorf("ParseBlockSize(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "K", "2K", "3M", "100000", "-4K", "1G"} {
		if _, err := ParseBlockSize(in); err == nil {
			t.Errorf("ParseBlockSize(%q) succeeded", in)
		}
	}
	for in, want := range map[string]Mode{"0": 0, "0755": 0o755, "04755": 0o4755, "0o644": 0o644, "01777": 0o1777} {
		if got, err := ParseMode(in); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"755", "0o", "0888", "010000", "rwx", "0x1ed"} {
		if _, err := ParseMode(in); err == nil {
			t.Errorf("ParseMode(%q) succeeded", in)
		}
	}
	for in, want := range map[string]string{"0x0102": "\x01\x02", "0sAQI=": "\x01\x02", "text": "text", "": ""} {
		if got, err := ParseXattrValue(in); err != nil || string(got) != want {
			t.Errorf("ParseXattrValue(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestDigest(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "m.yaml")
	if err := os.WriteFile(p, []byte(base), 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Parse(p, []byte(base+"# a comment changes the digest\n"))
	if err != nil {
		t.Fatal(err)
	}
	// sha256 of base, computed independently (printf '%s' "$base" | sha256sum).
	const want = "cf5b3001a1db4fc204a87fb20199dcd0da88b100a9ab5616dbaad8694f1a0608"
	if got := hex.EncodeToString(a.Digest[:]); got != want {
		t.Errorf("digest %s, want %s", got, want)
	}
	if a.Digest == b.Digest {
		t.Error("different manifest bytes gave the same digest")
	}
	c, _ := Parse(p, []byte(base))
	if a.Digest != c.Digest {
		t.Error("the same bytes gave different digests")
	}
}

func TestLoadMissing(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file: %v", err)
	}
}

// TestLinePos: each line of a literal block value (`rules: |`) has its
// manifest line and the block's column, blank lines included; a quoted
// value has none (LinePos falls back to the value's position).
func TestLinePos(t *testing.T) {
	text := "version: 1\nimage: {output: out/x.sqsh}\npolicy:\n  - name: a\n    path: /etc/ima/policy.d/a.policy\n    key: k\n    rules: |\n      measure func=BPRM_CHECK\n\n        dont_measure fsmagic=0x9fa0\n  - name: b\n    path: /etc/ima/policy.d/b.policy\n    key: k\n    rules: \"measure func=FILE_CHECK\"\n"
	m := &Manifest{}
	d := &decoder{errs: &errs{file: "m.yaml"}, src: bytes.Split([]byte(text), []byte("\n"))}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(text), &doc); err != nil {
		t.Fatal(err)
	}
	d.decode(doc.Content[0], reflect.ValueOf(m).Elem(), "manifest")
	if len(m.Policy) != 2 {
		t.Fatalf("policy: %+v", m.Policy)
	}
	for i, want := range []Pos{{8, 7}, {9, 7}, {10, 7}} {
		if got, ok := m.Policy[0].LinePos("rules", i); !ok || got != want {
			t.Errorf("rules line %d: %v %v, want %v", i, got, ok, want)
		}
	}
	if _, ok := m.Policy[0].LinePos("rules", 3); ok {
		t.Error("a line past the block has a position")
	}
	if got, ok := m.Policy[1].LinePos("rules", 0); ok || got != (Pos{14, 12}) {
		t.Errorf("quoted value: %v %v, want the value's position and false", got, ok)
	}
}
