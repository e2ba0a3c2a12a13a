package squashfs

import "github.com/imaforge/imaforge/squashfs/compinfo"

// CompressorInfo is everything imaforge knows about a compressor's name and
// levels (compinfo.Info: the table lives in the cgo-free package compinfo).
type CompressorInfo = compinfo.Info

// Compressors returns the compressors the writer supports.
func Compressors() []CompressorInfo { return compinfo.All() }

// CompressorInfoOf returns the table entry of c; false for a compressor
// the writer does not support (LZMA, LZO: the reader only).
func CompressorInfoOf(c Compression) (CompressorInfo, bool) { return compinfo.Of(c) }

// CompressorNames returns the names, joined by sep.
func CompressorNames(sep string) string { return compinfo.Names(sep) }

// LevelSummary describes every compressor's levels in one line, for help
// texts: "gzip 1-9 (default 9), ...; xz, none: no level".
func LevelSummary() string { return compinfo.LevelSummary() }
