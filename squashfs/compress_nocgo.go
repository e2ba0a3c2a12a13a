//go:build !cgo

package squashfs

import (
	"fmt"
	"io"
)

// Without cgo there are no C compressors, and the pure-Go ones
// (klauspost/compress, ulikunitz/xz, pierrec/lz4) give other bytes than
// zlib, libzstd, liblzma and liblz4 for the same input: an image would then
// depend on how imaforge was compiled. So this build writes uncompressed
// images only and refuses every compressor with ErrNoEncoder (reading is
// pure Go in both builds). docs/reproducibility.md.
const cgoCompressors = false

// EncoderOf returns the zero Encoder for CompNone and ErrNoEncoder for any
// other compressor.
func EncoderOf(comp Compression) (Encoder, error) {
	if comp == CompNone {
		return Encoder{}, nil
	}
	return Encoder{}, noEncoder(comp.String()+" compression", "set image.compression: none")
}

// noEncoder is ErrNoEncoder for what (a compressor, "zstd compression", or
// an image format, "tar.zst"), naming the ways out, the last being other.
func noEncoder(what, other string) error {
	return fmt.Errorf("%w: %s needs the cgo build of imaforge (this one was built with "+
		"CGO_ENABLED=0; its pure-Go encoder would give other image bytes than the release build): use a release binary "+
		"or the .deb, build with CGO_ENABLED=1 and the zlib, liblzma, liblz4 and libssl headers (README, Install), "+
		"or %s", ErrNoEncoder, what, other)
}

// newZstdStream refuses: tar.zst needs libzstd (NewZstdStream).
func newZstdStream(w io.Writer, level, threads int) (io.WriteCloser, error) {
	return nil, noEncoder("tar.zst", "set image.format: tar or tar.gz")
}

func newZstdEncoder(level, blockSize int) (blockEncoder, error) {
	_, err := EncoderOf(Zstd)
	return nil, err
}

func newGzipEncoder(level int) (blockEncoder, error) { _, err := EncoderOf(Gzip); return nil, err }

func newXZBlockEncoder(blockSize int) (blockEncoder, error) { _, err := EncoderOf(XZ); return nil, err }

func newLZ4BlockEncoder(level int) (blockEncoder, error) { _, err := EncoderOf(LZ4); return nil, err }

// cDecodeXZ is not called without cgo (nothing is compressed, so the block
// cache checks no xz entry); it fails closed.
func cDecodeXZ(dst, src []byte, max int) ([]byte, error) {
	_, err := EncoderOf(XZ)
	return nil, err
}

// cDecodeXZLiblzma is cDecodeXZ (the tests compare the two with cgo).
func cDecodeXZLiblzma(dst, src []byte, max int) ([]byte, error) { return cDecodeXZ(dst, src, max) }

// cDecodeXZMany is cDecodeXZ of every job (it fails closed without cgo).
func cDecodeXZMany(jobs []xzJob) {
	for i := range jobs {
		jobs[i].out, jobs[i].err = cDecodeXZ(jobs[i].dst, jobs[i].src, jobs[i].max)
	}
}
