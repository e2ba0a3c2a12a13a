package manifest

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/squashfs/compinfo"
)

// fieldDocs describes every manifest field, keyed by "Type.yaml_key". The
// JSON Schema is generated from the Go types and these texts; a test checks
// that every field has one and that docs/manifest.md names every field.
var fieldDocs = map[string]string{
	"Manifest.version":   "Manifest format version; must be 1.",
	"Manifest.image":     "Options of the image file.",
	"Manifest.hash":      "Digest algorithm of the file signatures (default sha256).",
	"Manifest.kernel":    "Target kernel version (e.g. \"6.1\"), used to lint IMA policy fragments.",
	"Manifest.keys":      "Signing keys by name; rules, policy fragments and image.signature_key refer to them.",
	"Manifest.trust":     "Certificate store every key's certificate must chain to before it signs.",
	"Manifest.sources":   "Directories, files and tarballs on the build host, applied in order; a later source wins for the same path.",
	"Manifest.exclude":   "Globs of image paths to leave out of the sources (a matching directory is skipped whole).",
	"Manifest.entries":   "Entries that need no file on the build host: directories, symlinks, devices, fifos, sockets, small files.",
	"Manifest.overrides": "Mode, owner and xattrs set on every entry whose path matches; applied after sources and entries.",
	"Manifest.rules":     "Which key signs each regular file; the first matching rule wins and every regular file must match one.",
	"Manifest.policy":    "IMA policy fragments written into the image and signed.",

	"Image.output":        "Path of the image on the build host, relative to the manifest's directory.",
	"Image.format":        "Output format: squashfs (default), or a POSIX pax archive tar, tar.gz or tar.zst carrying security.ima and security.evm as SCHILY.xattr records.",
	"Image.evm_xattrs":    "The target kernel's EVM-protected xattrs, in its order: debian-6.1 (default: selinux, apparmor, ima, capability), evmctl (adds SMACK64), all, or a list of the names in the kernel's order (security.ima and security.capability required).",
	"Image.compression":   "SquashFS compressor (default gzip).",
	"Image.level":         levelDescription(),
	"Image.block_size":    "Data block size: a power of two from 4K to 1M, as bytes or with a K or M suffix (default 128K).",
	"Image.epoch":         "Modification time of every entry and creation time of the image, in seconds since 1970 (default 0); SOURCE_DATE_EPOCH overrides it.",
	"Image.owner":         "When set, the owner of every entry from a source.",
	"Image.keep_xattrs":   "Keep user., trusted. and security. xattrs from the sources (never security.ima).",
	"Image.verity":        "Append a dm-verity hash tree to the image.",
	"Image.signature_key": "Key that makes a detached CMS signature over the image.",

	"Owner.uid": "Numeric user id.",
	"Owner.gid": "Numeric group id.",

	"Key.cert":            "Certificate of the key (PEM or DER), relative to the manifest's directory.",
	"Key.key":             "Private key: a PEM file relative to the manifest's directory, or relic:NAME or a pkcs11: URI.",
	"Key.passphrase_env":  "Environment variable holding the key's passphrase or token PIN.",
	"Key.passphrase_file": "File holding the key's passphrase or token PIN.",
	"Key.relic_config":    "relic configuration file for a relic:NAME key.",

	"Trust.roots":         "Root CA certificates.",
	"Trust.intermediates": "Intermediate CA certificates.",
	"Trust.crls":          "Certificate revocation lists.",
	"Trust.revocation":    "required (default: every CA of a signing chain needs a current CRL) or best-effort (a missing or stale CRL is a warning).",

	"Source.from":   "Directory, file or tarball on the build host, relative to the manifest's directory.",
	"Source.to":     "Absolute path in the image where the source lands (default /).",
	"Source.mode":   "Permission bits (octal, e.g. 0755) of the entry at to.",
	"Source.format": "dir, file or tar; detected when omitted (tarballs by name: .tar, .tar.gz, .tgz, .tar.zst, .tar.xz, .tar.bz2).",

	"Rule.match":   "Glob over absolute image paths (** any depth, * one segment).",
	"Rule.key":     "Name of the key that signs matching files.",
	"Rule.sign":    "false: matching files get no signature.",
	"Rule.evm":     "true: matching files also get a portable EVM signature (security.evm) over security.ima, owner, group and mode, with evm_key or the rule's key.",
	"Rule.evm_key": "Key of the EVM signatures (implies evm: true; default: the rule's key).",

	"Entry.path":    "Absolute path in the image.",
	"Entry.type":    "dir, file, symlink, char, block, fifo or socket.",
	"Entry.mode":    "Permission bits in octal (defaults: dir 0755, symlink 0777, char/block 0600, others 0644).",
	"Entry.uid":     "Owner user id (default image.owner's, or 0).",
	"Entry.gid":     "Owner group id (default image.owner's, or 0).",
	"Entry.target":  "Target of a symlink.",
	"Entry.major":   "Major number of a char or block device.",
	"Entry.minor":   "Minor number of a char or block device.",
	"Entry.content": "Content of a file.",
	"Entry.xattrs":  "Extended attributes: name to value (0x hex, 0s base64, or text).",

	"Override.match":  "Glob over absolute image paths.",
	"Override.mode":   "Permission bits in octal for matching entries (symlinks keep 0777).",
	"Override.uid":    "Owner user id for matching entries.",
	"Override.gid":    "Owner group id for matching entries.",
	"Override.xattrs": "Extended attributes added to matching entries.",

	"PolicyFragment.name":    "Fragment name, unique in the manifest.",
	"PolicyFragment.path":    "Absolute path of the fragment in the image.",
	"PolicyFragment.key":     "Name of the key that signs the fragment.",
	"PolicyFragment.rules":   "Policy rules, one per line.",
	"PolicyFragment.presets": "Names of generated rule sets.",
	"PolicyFragment.tenant":  "Makes this a tenant fragment: every rule must be confined to these ids' files.",

	"PolicyTenant.fowner": "Owner uid of the tenant's files (fowner=).",
	"PolicyTenant.fgroup": "Group gid of the tenant's files (fgroup=).",
}

// fieldMax overrides the maximum of integer fields narrower than their Go type.
var fieldMax = map[string]uint32{"Entry.major": MaxMajor, "Entry.minor": MaxMinor}

// required lists the keys a mapping must have.
var required = map[string][]string{
	"Manifest":       {"version"},
	"Key":            {"cert", "key"},
	"Source":         {"from"},
	"Rule":           {"match"},
	"Entry":          {"path", "type"},
	"Override":       {"match"},
	"PolicyFragment": {"name", "path", "key"},
	"Trust":          {"roots"},
}

// Schema returns a JSON Schema (draft 2020-12) of the manifest for editors,
// generated from the Go types.
func Schema() []byte {
	g := &schemaGen{defs: map[string]any{}}
	root := g.structSchema(reflect.TypeFor[Manifest]())
	root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	root["$id"] = "https://github.com/imaforge/imaforge/manifest/v1.schema.json"
	root["title"] = "imaforge manifest, version 1"
	root["$defs"] = g.defs
	b, err := json.MarshalIndent(root, "", "  ")
	if err != nil {
		panic(err)
	}
	return append(b, '\n')
}

type schemaGen struct {
	defs map[string]any
}

func strs[T ~string](l []T) []string {
	out := make([]string, len(l))
	for i, v := range l {
		out[i] = string(v)
	}
	return out
}

func (g *schemaGen) typeSchema(t reflect.Type) map[string]any {
	switch t {
	case reflect.TypeFor[ImageFormat]():
		return map[string]any{"type": "string", "enum": strs(ImageFormats())}
	case reflect.TypeFor[EVMXattrList]():
		profiles := strings.Split(profileNames(), ", ")
		return map[string]any{"oneOf": []any{
			map[string]any{"type": "string", "enum": profiles},
			map[string]any{"type": "array", "items": map[string]any{"type": "string", "enum": []string(imasig.EVMXattrsAll)}, "uniqueItems": true},
		}}
	case reflect.TypeFor[Compression]():
		return map[string]any{"type": "string", "enum": strs(Compressions())}
	case reflect.TypeFor[Hash]():
		return map[string]any{"type": "string", "enum": strs(Hashes())}
	case reflect.TypeFor[EntryType]():
		return map[string]any{"type": "string", "enum": strs(EntryTypes())}
	case reflect.TypeFor[Pattern]():
		return map[string]any{"type": "string", "minLength": 1}
	case reflect.TypeFor[BlockSize]():
		var sizes []int
		for b := MinBlockSize; b <= MaxBlockSize; b *= 2 {
			sizes = append(sizes, int(b))
		}
		return map[string]any{"oneOf": []any{
			map[string]any{"type": "integer", "enum": sizes},
			map[string]any{"type": "string", "pattern": `^[0-9]+([kKmM]([iI][bB])?)?$`},
		}}
	case reflect.TypeFor[Mode]():
		return map[string]any{"oneOf": []any{
			map[string]any{"type": "integer", "minimum": 0, "maximum": 7777},
			map[string]any{"type": "string", "pattern": `^0[oO]?[0-7]{1,4}$`},
		}}
	case reflect.TypeFor[Xattrs]():
		return map[string]any{"type": "object",
			"propertyNames":        map[string]any{"pattern": `^(user|trusted|security)\..+$`, "not": map[string]any{"const": "security.ima"}},
			"additionalProperties": map[string]any{"type": "string"}}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return g.typeSchema(t.Elem())
	case reflect.Struct:
		name := t.Name()
		if _, ok := g.defs[name]; !ok {
			g.defs[name] = true // placeholder against recursion
			g.defs[name] = g.structSchema(t)
		}
		return map[string]any{"$ref": "#/$defs/" + name}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": g.typeSchema(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": g.typeSchema(t.Elem()),
			"propertyNames": map[string]any{"pattern": keyNameRE.String()}}
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int:
		return map[string]any{"type": "integer"}
	case reflect.Int64:
		return map[string]any{"type": "integer", "minimum": 0, "maximum": maxEpoch}
	case reflect.Uint32:
		return map[string]any{"type": "integer", "minimum": 0, "maximum": uint32(1<<32 - 1)}
	}
	panic("manifest: no schema for " + t.String())
}

func (g *schemaGen) structSchema(t reflect.Type) map[string]any {
	props := map[string]any{}
	_, names := yamlFields(t)
	for _, name := range names {
		f, _ := t.FieldByNameFunc(func(s string) bool {
			sf, _ := t.FieldByName(s)
			n, _, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
			return n == name
		})
		s := g.typeSchema(f.Type)
		doc, ok := fieldDocs[t.Name()+"."+name]
		if !ok {
			panic(fmt.Sprintf("manifest: field %s.%s has no description", t.Name(), name))
		}
		if lim, ok := fieldMax[t.Name()+"."+name]; ok {
			s["maximum"] = lim
		}
		if t.Name() == "Manifest" && name == "version" {
			s["const"] = Version
		}
		if _, isRef := s["$ref"]; isRef {
			s = map[string]any{"allOf": []any{s}}
		}
		s["description"] = doc
		props[name] = s
	}
	out := map[string]any{"type": "object", "additionalProperties": false, "properties": props}
	if r := required[t.Name()]; r != nil {
		out["required"] = r
	}
	return out
}

// levelDescription describes image.level from squashfs's compressor table.
func levelDescription() string {
	return "Compression level: " + compinfo.LevelSummary() + "; lz4 0 is the fast compressor, 1-12 high compression. Omitted: the default."
}
