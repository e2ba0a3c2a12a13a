// Package compinfo is the SquashFS compressor table: the compressor ids,
// their names, level ranges and defaults. It is pure data without cgo, so
// manifest validation and schema generation can read it without linking
// package squashfs's C compressors; package squashfs re-exports it
// (squashfs.Compression, squashfs.Compressors, squashfs.CompressorInfo).
package compinfo

import (
	"errors"
	"fmt"
	"strings"
)

// ErrUnsupported marks a compressor id or name this table does not know
// (squashfs.ErrUnsupportedCompression is the same error).
var ErrUnsupported = errors.New("squashfs: unsupported compression")

// Default levels, as mksquashfs 4.5 uses them.
const (
	DefaultGzipLevel = 9  // GZIP_DEFAULT_COMPRESSION_LEVEL
	DefaultZstdLevel = 15 // ZSTD_DEFAULT_COMPRESSION_LEVEL
)

// Compression is a compressor id (squashfs_fs.h ZLIB_COMPRESSION etc.).
type Compression uint16

// Compressor ids.
const (
	CompNone Compression = 0x100 // not an on-disk id: the writer stores every block uncompressed and records gzip
	Gzip     Compression = 1     // ZLIB_COMPRESSION: zlib streams (RFC 1950)
	LZMA     Compression = 2     // LZMA_COMPRESSION (legacy; the reader only)
	LZO      Compression = 3     // LZO_COMPRESSION (the reader only)
	XZ       Compression = 4     // XZ_COMPRESSION: .xz streams, LZMA2, CRC32 check
	LZ4      Compression = 5     // LZ4_COMPRESSION: raw LZ4 blocks (no frame)
	Zstd     Compression = 6     // ZSTD_COMPRESSION: zstd frames
)

func (c Compression) String() string {
	switch c {
	case CompNone:
		return "none"
	case Gzip:
		return "gzip"
	case LZMA:
		return "lzma"
	case LZO:
		return "lzo"
	case XZ:
		return "xz"
	case LZ4:
		return "lz4"
	case Zstd:
		return "zstd"
	}
	return fmt.Sprintf("compression(%d)", uint16(c))
}

// Parse maps a name as mksquashfs's -comp takes it ("gzip", "zstd", "xz",
// "lz4") or "none" to a Compression.
func Parse(s string) (Compression, error) {
	for _, c := range []Compression{CompNone, Gzip, XZ, LZ4, Zstd} {
		if c.String() == s {
			return c, nil
		}
	}
	return 0, fmt.Errorf("%w: %q (want gzip, zstd, xz, lz4 or none)", ErrUnsupported, s)
}

// Info is everything imaforge knows about a compressor's name and
// levels: the one table manifest validation, `squashfs pack --help` and
// docs/manifest.md (checked by a test) are made from. Levels mean what
// mksquashfs 4.5 means by them (mksquashfs -help, squashfs-tools
// gzip_wrapper.c, zstd_wrapper.c, xz_wrapper.c, lz4_wrapper.c) where it has
// them.
type Info struct {
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
var compressors = []Info{
	{Gzip, "gzip", 1, 9, DefaultGzipLevel,
		"deflate level, written by libdeflate (mksquashfs -Xcompression-level 1..9 with zlib, default 9)"},
	{Zstd, "zstd", 1, 22, DefaultZstdLevel,
		"zstd level (mksquashfs -Xcompression-level 1..22, default 15)"},
	{XZ, "xz", 0, 0, 0,
		"no level: LZMA2 preset 6 with the dictionary as large as a block, as mksquashfs, whose xz takes no level either"},
	{LZ4, "lz4", 0, 12, 0,
		"0: the fast compressor (mksquashfs's default); 1..12: LZ4 high compression at that level (mksquashfs -Xhc is 9; without cgo levels above 9 act as 9)"},
	{CompNone, "none", 0, 0, 0,
		"no level: every block stored uncompressed (mksquashfs -noI -noD -noF -noX)"},
}

// All returns the compressors the writer supports.
func All() []Info { return append([]Info(nil), compressors...) }

// Of returns the table entry of c; false for a compressor
// the writer does not support (LZMA, LZO: the reader only).
func Of(c Compression) (Info, bool) {
	for _, ci := range compressors {
		if ci.Comp == c {
			return ci, true
		}
	}
	return Info{}, false
}

// TakesLevel reports whether the compressor has levels.
func (ci Info) TakesLevel() bool { return ci.MaxLevel > 0 }

// CheckLevel checks a level given explicitly (a manifest's image.level).
func (ci Info) CheckLevel(level int) error {
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
func (ci Info) LevelRange() string {
	if !ci.TakesLevel() {
		return ""
	}
	return fmt.Sprintf("%d-%d", ci.MinLevel, ci.MaxLevel)
}

// Names returns the names, joined by sep.
func Names(sep string) string {
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
