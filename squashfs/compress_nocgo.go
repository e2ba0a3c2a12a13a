//go:build !cgo

package squashfs

// Without cgo, zstd blocks are made by klauspost/compress (pure Go), whose
// levels map onto zstd's as zstd.EncoderLevelFromZstd says; its ratio is a
// few percent worse than the zstd library's at the same level.
func newZstdEncoder(level, blockSize int) (blockEncoder, error) {
	return newKlauspostZstdEncoder(level, blockSize)
}

// zstdImpl names the zstd implementation in use.
const zstdImpl = "klauspost/compress (pure Go)"
