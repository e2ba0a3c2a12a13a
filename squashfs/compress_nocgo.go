//go:build !cgo

package squashfs

// Without cgo, blocks are compressed in pure Go: zstd by klauspost/compress
// (levels mapped by zstd.EncoderLevelFromZstd), gzip by klauspost/compress's
// zlib, xz by ulikunitz/xz, lz4 by pierrec/lz4. The images are valid and reproducible but a few
// percent (xz: about 13%) larger than mksquashfs's at the same settings.
const cgoCompressors = false

func newZstdEncoder(level, blockSize int) (blockEncoder, error) {
	return newKlauspostZstdEncoder(level, blockSize)
}

func newGzipEncoder(level int) (blockEncoder, error) { return newZlibEncoder(level) }

func newXZBlockEncoder(blockSize int) (blockEncoder, error) { return newXZEncoder(blockSize) }

func newLZ4BlockEncoder(level int) (blockEncoder, error) { return newLZ4Encoder(level), nil }

// codecImpl names the library that compresses comp's blocks and its version
// (part of a block cache key: another implementation or version may make
// other bytes).
func codecImpl(comp Compression) string {
	switch comp {
	case Gzip, Zstd:
		return "go github.com/klauspost/compress " + moduleVersion("github.com/klauspost/compress")
	case XZ:
		return "go github.com/ulikunitz/xz " + moduleVersion("github.com/ulikunitz/xz")
	case LZ4:
		return "go github.com/pierrec/lz4/v4 " + moduleVersion("github.com/pierrec/lz4/v4")
	}
	return "none"
}
