package squashfs

import (
	"fmt"
	"strings"
)

// CompressorInfo is everything imaforge knows about a compressor's name and
// levels: the one table manifest validation, `squashfs pack --help` and
// docs/manifest.md (checked by a test) are made from. Levels mean what
// mksquashfs 4.5 means by them (mksquashfs -help, squashfs-tools
// gzip_wrapper.c, zstd_wrapper.c, xz_wrapper.c, lz4_wrapper.c) where it has
// them.
type CompressorInfo struct {
	Comp Compression
	// Name is the name mksquashfs -comp and a manifest's image.compression
	// take ("none" for imaforge's uncompressed images).
	Name string
	// MinLevel..MaxLevel is the level range; both 0 when the compressor
	// takes no level.
	MinLevel, MaxLevel int
	// DefaultLevel is the level used when none is given (mksquashfs's).
	DefaultLevel int
	// Levels says what the levels mean and which mksquashfs option they
	// match, for help texts and docs.
	Levels string
}

// compressors is the table, in the order help and docs list them.
var compressors = []CompressorInfo{
	{Gzip, "gzip", 1, 9, DefaultGzipLevel,
		"zlib level (mksquashfs -Xcompression-level 1..9, default 9)"},
	{Zstd, "zstd", 1, 22, DefaultZstdLevel,
		"zstd level (mksquashfs -Xcompression-level 1..22, default 15)"},
	{XZ, "xz", 0, 0, 0,
		"no level: LZMA2 preset 6 with the dictionary as large as a block, as mksquashfs, whose xz takes no level either"},
	{LZ4, "lz4", 0, 12, 0,
		"0: the fast compressor (mksquashfs's default); 1..12: LZ4 high compression at that level (mksquashfs -Xhc is 9; without cgo levels above 9 act as 9)"},
	{CompNone, "none", 0, 0, 0,
		"no level: every block stored uncompressed (mksquashfs -noI -noD -noF -noX)"},
}

// Compressors returns the compressors the writer supports.
func Compressors() []CompressorInfo { return append([]CompressorInfo(nil), compressors...) }

// CompressorInfoOf returns the table entry of c; false for a compressor
// the writer does not support (LZMA, LZO: the reader only).
func CompressorInfoOf(c Compression) (CompressorInfo, bool) {
	for _, ci := range compressors {
		if ci.Comp == c {
			return ci, true
		}
	}
	return CompressorInfo{}, false
}

// TakesLevel reports whether the compressor has levels.
func (ci CompressorInfo) TakesLevel() bool { return ci.MaxLevel > 0 }

// CheckLevel checks a level given explicitly (a manifest's image.level).
func (ci CompressorInfo) CheckLevel(level int) error {
	switch {
	case !ci.TakesLevel():
		return fmt.Errorf("compression %s takes no level", ci.Name)
	case level < ci.MinLevel || level > ci.MaxLevel:
		return fmt.Errorf("%d is out of range for %s (%d..%d)", level, ci.Name, ci.MinLevel, ci.MaxLevel)
	}
	return nil
}

// LevelRange describes the levels for a table: "1-9", "0-12", or "" when
// there are none.
func (ci CompressorInfo) LevelRange() string {
	if !ci.TakesLevel() {
		return ""
	}
	return fmt.Sprintf("%d-%d", ci.MinLevel, ci.MaxLevel)
}

// CompressorNames returns the names, joined by sep.
func CompressorNames(sep string) string {
	names := make([]string, len(compressors))
	for i, ci := range compressors {
		names[i] = ci.Name
	}
	return strings.Join(names, sep)
}

// LevelSummary describes every compressor's levels in one line, for help
// texts: "gzip 1-9 (default 9), ...; xz, none: no level".
func LevelSummary() string {
	var with, without []string
	for _, ci := range compressors {
		if ci.TakesLevel() {
			with = append(with, fmt.Sprintf("%s %s (default %d)", ci.Name, ci.LevelRange(), ci.DefaultLevel))
		} else {
			without = append(without, ci.Name)
		}
	}
	return strings.Join(with, ", ") + "; " + strings.Join(without, ", ") + ": no level"
}
