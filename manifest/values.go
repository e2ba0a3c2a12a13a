package manifest

import (
	"crypto"
	_ "crypto/sha1" // registers the hashes a manifest may name
	_ "crypto/sha256"
	_ "crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math/bits"
	"sort"
	"strconv"
	"strings"

	"github.com/bmatcuk/doublestar/v4"
	"gopkg.in/yaml.v3"

	"github.com/imaforge/imaforge/squashfs/compinfo"
)

// Compression is the SquashFS compressor of the image.
type Compression string

// The compressors; None stores data blocks uncompressed.
const (
	Gzip Compression = "gzip"
	Zstd Compression = "zstd"
	XZ   Compression = "xz"
	LZ4  Compression = "lz4"
	None Compression = "none"
)

// ImageFormat is the output format of a build.
type ImageFormat string

// The output formats.
const (
	FormatSquashfs ImageFormat = "squashfs"
	FormatTar      ImageFormat = "tar"
	FormatTarGz    ImageFormat = "tar.gz"
	FormatTarZst   ImageFormat = "tar.zst"
)

// ImageFormats lists the accepted output formats.
func ImageFormats() []ImageFormat {
	return []ImageFormat{FormatSquashfs, FormatTar, FormatTarGz, FormatTarZst}
}

// IsTar reports whether f is one of the tar formats.
func (f ImageFormat) IsTar() bool { return f == FormatTar || f == FormatTarGz || f == FormatTarZst }

// TarLevelRange returns the compression levels of a tar format and its
// default (gzip 1..9, 6; zstd 1..22, 3); plain tar takes none.
func (f ImageFormat) TarLevelRange() (min, max, def int) {
	switch f {
	case FormatTarGz:
		return 1, 9, 6
	case FormatTarZst:
		return 1, 22, 3
	}
	return 0, 0, 0
}

// DefaultCompression is used when the manifest names none (as mksquashfs).
const DefaultCompression = Gzip

// Compressions lists the accepted compressor names (compinfo.All, which
// squashfs.Compressors returns: the one table of compressors and levels).
func Compressions() []Compression {
	var out []Compression
	for _, ci := range compinfo.All() {
		out = append(out, Compression(ci.Name))
	}
	return out
}

// Info returns the compressor's entry in squashfs's table; false for a
// name the writer does not know.
func (c Compression) Info() (compinfo.Info, bool) {
	sc, err := compinfo.Parse(string(c))
	if err != nil {
		return compinfo.Info{}, false
	}
	return compinfo.Of(sc)
}

// DefaultLevel is the level used when the manifest sets none (0 for a
// compressor without levels).
func (c Compression) DefaultLevel() int {
	ci, _ := c.Info()
	return ci.DefaultLevel
}

func (c *Compression) decodeScalar(n *yaml.Node) error {
	v := Compression(n.Value)
	if _, ok := v.Info(); !ok {
		return fmt.Errorf("unknown compression %q (want one of %s)", n.Value, compinfo.Names(", "))
	}
	*c = v
	return nil
}

// Hash is the digest algorithm of the file signatures.
type Hash string

// DefaultHash is used when the manifest names none.
const DefaultHash Hash = "sha256"

var hashes = map[Hash]crypto.Hash{
	"sha1":   crypto.SHA1,
	"sha224": crypto.SHA224,
	"sha256": crypto.SHA256,
	"sha384": crypto.SHA384,
	"sha512": crypto.SHA512,
}

// Hashes lists the accepted hash names, sorted.
func Hashes() []Hash {
	l := make([]Hash, 0, len(hashes))
	for h := range hashes {
		l = append(l, h)
	}
	sort.Slice(l, func(i, j int) bool { return l[i] < l[j] })
	return l
}

func (h *Hash) decodeScalar(n *yaml.Node) error {
	v := Hash(n.Value)
	if _, ok := hashes[v]; !ok {
		return fmt.Errorf("unknown hash %q (want one of sha1, sha224, sha256, sha384, sha512)", n.Value)
	}
	*h = v
	return nil
}

// BlockSize is the SquashFS data block size in bytes: a power of two from
// 4 KiB to 1 MiB, written as a byte count or with a K or M suffix ("128K").
type BlockSize uint32

// Block size limits and default (those of mksquashfs).
const (
	MinBlockSize     BlockSize = 4 << 10
	MaxBlockSize     BlockSize = 1 << 20
	DefaultBlockSize BlockSize = 128 << 10
)

// ParseBlockSize parses "131072", "128K", "128KiB", "1M" or "1MiB".
func ParseBlockSize(s string) (BlockSize, error) {
	t := strings.TrimSpace(s)
	mult := uint64(1)
	lower := strings.ToLower(t)
	for _, suf := range []struct {
		s string
		m uint64
	}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"k", 1 << 10}, {"m", 1 << 20}} {
		if strings.HasSuffix(lower, suf.s) {
			t, mult = t[:len(t)-len(suf.s)], suf.m
			break
		}
	}
	v, err := strconv.ParseUint(t, 10, 32)
	if err != nil || t == "" {
		return 0, fmt.Errorf("block size %q is not a size (write 131072, 128K or 1M)", s)
	}
	b := v * mult
	if b < uint64(MinBlockSize) || b > uint64(MaxBlockSize) || bits.OnesCount64(b) != 1 {
		return 0, fmt.Errorf("block size %s is not a power of two from 4K to 1M", s)
	}
	return BlockSize(b), nil
}

func (b *BlockSize) decodeScalar(n *yaml.Node) error {
	v, err := ParseBlockSize(n.Value)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// String formats b with a K or M suffix.
func (b BlockSize) String() string {
	if b >= 1<<20 && b%(1<<20) == 0 {
		return fmt.Sprintf("%dM", b>>20)
	}
	if b%(1<<10) == 0 {
		return fmt.Sprintf("%dK", b>>10)
	}
	return strconv.FormatUint(uint64(b), 10)
}

// Log2 returns the base-2 logarithm of b (the SquashFS superblock's block_log).
func (b BlockSize) Log2() int { return bits.TrailingZeros32(uint32(b)) }

// Mode is a file's permission bits including setuid, setgid and sticky
// (at most 07777), written in octal with a leading 0 ("0755", "04755") or
// "0o755".
type Mode uint32

// ParseMode parses an octal mode with a leading 0 or 0o.
func ParseMode(s string) (Mode, error) {
	t := s
	switch {
	case strings.HasPrefix(t, "0o") || strings.HasPrefix(t, "0O"):
		t = t[2:]
	case t == "0":
	case strings.HasPrefix(t, "0"):
		t = t[1:]
	default:
		return 0, fmt.Errorf("mode %s must be octal with a leading 0 (e.g. 0%s)", s, s)
	}
	v, err := strconv.ParseUint(t, 8, 32)
	if err != nil || t == "" && s != "0" {
		return 0, fmt.Errorf("mode %q is not an octal number", s)
	}
	if v > 0o7777 {
		return 0, fmt.Errorf("mode %s has bits beyond 07777", s)
	}
	return Mode(v), nil
}

func (m *Mode) decodeScalar(n *yaml.Node) error {
	v, err := ParseMode(n.Value)
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// String formats m as four octal digits.
func (m Mode) String() string { return fmt.Sprintf("%04o", uint32(m)) }

// EntryType is the type of a declared entry.
type EntryType string

// The declared entry types.
const (
	TypeDir     EntryType = "dir"
	TypeFile    EntryType = "file"
	TypeSymlink EntryType = "symlink"
	TypeChar    EntryType = "char"
	TypeBlock   EntryType = "block"
	TypeFifo    EntryType = "fifo"
	TypeSocket  EntryType = "socket"
)

// EntryTypes lists the declared entry types.
func EntryTypes() []EntryType {
	return []EntryType{TypeDir, TypeFile, TypeSymlink, TypeChar, TypeBlock, TypeFifo, TypeSocket}
}

func (t *EntryType) decodeScalar(n *yaml.Node) error {
	for _, v := range EntryTypes() {
		if string(v) == n.Value {
			*t = v
			return nil
		}
	}
	return fmt.Errorf("unknown entry type %q (want one of dir, file, symlink, char, block, fifo, socket)", n.Value)
}

// Pattern is a glob over absolute image paths: "*" matches within one path
// segment, "**" any number of segments, "?" one character, "[...]" a class
// and "{a,b}" alternatives (github.com/bmatcuk/doublestar/v4 syntax). A
// pattern that does not start with "/" matches at any depth: "*.o" is
// "/**/*.o".
type Pattern string

func (p *Pattern) decodeScalar(n *yaml.Node) error {
	v, err := ParsePattern(n.Value)
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// ParsePattern checks a pattern's syntax.
func ParsePattern(s string) (Pattern, error) {
	if s == "" {
		return "", fmt.Errorf("empty pattern")
	}
	if strings.ContainsRune(s, 0) {
		return "", fmt.Errorf("pattern %q contains a NUL byte", s)
	}
	if !doublestar.ValidatePattern(Pattern(s).anchored()) {
		return "", fmt.Errorf("pattern %q is not a valid glob", s)
	}
	return Pattern(s), nil
}

func (p Pattern) anchored() string {
	if strings.HasPrefix(string(p), "/") {
		return string(p)
	}
	return "/**/" + string(p)
}

// Match reports whether the absolute image path matches p. "/a/**" matches
// "/a" itself and everything below it.
func (p Pattern) Match(path string) bool {
	ok, err := doublestar.Match(p.anchored(), path)
	return ok && err == nil
}

// Xattr is one extended attribute.
type Xattr struct {
	Name  string
	Value []byte
}

// Xattrs is a set of extended attributes, sorted by name. In YAML it is a
// mapping from name to value; a value starting with "0x" is hex, one
// starting with "0s" is base64 (as setfattr), anything else is text.
type Xattrs []Xattr

// Get returns the value of the named xattr.
func (x Xattrs) Get(name string) ([]byte, bool) {
	for _, a := range x {
		if a.Name == name {
			return a.Value, true
		}
	}
	return nil, false
}

// XattrPrefixes are the namespaces SquashFS can store.
var XattrPrefixes = []string{"user.", "trusted.", "security."}

// CheckXattrName reports whether name may be declared in a manifest: in a
// namespace SquashFS stores, and not security.ima (only the signer writes it).
func CheckXattrName(name string) error {
	if name == "security.ima" {
		return fmt.Errorf("xattr security.ima is written by the signer and cannot be declared")
	}
	for _, p := range XattrPrefixes {
		if strings.HasPrefix(name, p) && len(name) > len(p) {
			return nil
		}
	}
	return fmt.Errorf("xattr %q is not in the user., trusted. or security. namespace", name)
}

// ParseXattrValue decodes a value written as setfattr does: "0x" hex, "0s"
// base64, otherwise the text itself.
func ParseXattrValue(s string) ([]byte, error) {
	switch {
	case strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X"):
		b, err := hex.DecodeString(s[2:])
		if err != nil {
			return nil, fmt.Errorf("xattr value %q is not valid hex", s)
		}
		return b, nil
	case strings.HasPrefix(s, "0s") || strings.HasPrefix(s, "0S"):
		b, err := base64.StdEncoding.DecodeString(s[2:])
		if err != nil {
			return nil, fmt.Errorf("xattr value %q is not valid base64", s)
		}
		return b, nil
	}
	return []byte(s), nil
}

func (x *Xattrs) decodeNode(d *decoder, n *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		d.errs.add(pos(n), ErrType, "xattrs must be a mapping of name to value")
		return
	}
	seen := map[string]Pos{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !d.plain(k) || !d.plain(v) {
			continue
		}
		if k.Kind != yaml.ScalarNode || v.Kind != yaml.ScalarNode {
			d.errs.add(pos(k), ErrType, "xattr names and values must be scalars")
			continue
		}
		if p, dup := seen[k.Value]; dup {
			d.errs.add(pos(k), ErrDuplicate, "xattr %q already set at line %d", k.Value, p.Line)
			continue
		}
		seen[k.Value] = pos(k)
		if err := CheckXattrName(k.Value); err != nil {
			d.errs.add(pos(k), ErrInvalid, "%v", err)
			continue
		}
		val, err := ParseXattrValue(v.Value)
		if err != nil {
			d.errs.add(pos(v), ErrInvalid, "%v", err)
			continue
		}
		*x = append(*x, Xattr{Name: k.Value, Value: val})
	}
	sort.Slice(*x, func(i, j int) bool { return (*x)[i].Name < (*x)[j].Name })
}
