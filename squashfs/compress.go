package squashfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"

	"github.com/imaforge/imaforge/squashfs/compinfo"
)

// Compressors, as squashfs-tools (gzip_wrapper.c, zstd_wrapper.c,
// xz_wrapper.c, lz4_wrapper.c) and the kernel (fs/squashfs/*_wrapper.c)
// define the block formats:
//
//   - gzip: a zlib stream (RFC 1950: 2-byte header, deflate, Adler-32), one per block.
//   - zstd: one zstd frame per block (ZSTD_compress output).
//   - xz: one .xz stream per block, LZMA2 with a CRC32 check, dictionary at
//     most the dictionary size in the options record (default: the block size).
//   - lz4: a raw LZ4 block with no frame ("LZ4_LEGACY" in the options record
//     names this, the only version the kernel accepts).
//
// A block (data, fragment or metadata) is stored uncompressed when
// compression does not make it shorter.

// Default levels, as mksquashfs 4.5 uses them.
const (
	DefaultGzipLevel = compinfo.DefaultGzipLevel
	DefaultZstdLevel = compinfo.DefaultZstdLevel
)

// Encoder names the implementation that compresses one compressor's blocks
// in this build of imaforge. Equal bytes need an equal Encoder: the same
// library at the same version (docs/reproducibility.md).
type Encoder struct {
	// Library is the C library: "libdeflate", "libzstd", "liblzma" or "liblz4".
	Library string `json:"library"`
	// Version is the library's own version, asked at run time
	// (ZSTD_versionNumber, lzma_version_string, LZ4_versionString): with a
	// shared library it is the one loaded, not the one compiled against;
	// libdeflate's is its header's (it has no such call), which is the
	// library's in a release binary (linked statically).
	Version string `json:"version"`
	// Linkage says how the library is in the binary: "static" or "shared"
	// (the system's), and for libzstd the Go module that bundles it.
	Linkage string `json:"linkage"`
}

// ErrNoEncoder marks a compressor this build of imaforge refuses to write:
// a build without cgo has only pure-Go encoders, which give other bytes than
// the C libraries of the cgo build (and of mksquashfs), so an image would
// depend on how imaforge itself was compiled.
var ErrNoEncoder = errors.New("squashfs: compressor not available in this build")

// codecImpl names the library that compresses comp's blocks, its version
// and linkage (part of a block cache key: another implementation or version
// may make other bytes); "none" without one.
func codecImpl(comp Compression) string {
	e, err := EncoderOf(comp)
	if err != nil || e == (Encoder{}) {
		return "none"
	}
	s := e.Library + " " + e.Version + " " + e.Linkage
	if comp == Zstd {
		s += " github.com/DataDog/zstd " + moduleVersion("github.com/DataDog/zstd")
	}
	return s
}

// blockEncoder compresses one block; it is used by one goroutine at a time.
// encode may reuse dst's storage and returns the compressed bytes.
type blockEncoder interface {
	encode(dst, src []byte) ([]byte, error)
}

// codec compresses blocks for one compressor, level and block size. Its
// methods are safe for concurrent use (each call takes an idle encoder; there
// are at most as many as concurrent calls).
type codec struct {
	comp      Compression // as asked; CompNone stores everything
	level     int         // effective level
	blockSize int
	mu        sync.Mutex
	free      []blockEncoder // idle encoders, kept (a sync.Pool would drop them at GC and their C state with them)
	newEnc    func() (blockEncoder, error)
}

// newCodec validates level (0 = the compressor's default) for comp against
// the compressor table.
func newCodec(comp Compression, level, blockSize int) (*codec, error) {
	ci, ok := CompressorInfoOf(comp)
	if !ok {
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedCompression, comp)
	}
	c := &codec{comp: comp, level: level, blockSize: blockSize}
	if level == 0 {
		c.level = ci.DefaultLevel
	} else if err := ci.CheckLevel(level); err != nil {
		return nil, fmt.Errorf("squashfs: %w", err)
	}
	if _, err := EncoderOf(comp); err != nil {
		return nil, err
	}
	switch comp {
	case CompNone:
		c.newEnc = func() (blockEncoder, error) { return nil, nil }
	case Gzip:
		c.newEnc = func() (blockEncoder, error) { return newGzipEncoder(c.level) }
	case Zstd:
		c.newEnc = func() (blockEncoder, error) { return newZstdEncoder(c.level, blockSize) }
	case XZ:
		c.newEnc = func() (blockEncoder, error) { return newXZBlockEncoder(blockSize) }
	case LZ4:
		// 0: the fast compressor, as mksquashfs's default; 1..12: the
		// high-compression compressor at that level (mksquashfs -Xhc).
		c.newEnc = func() (blockEncoder, error) { return newLZ4BlockEncoder(c.level) }
	}
	return c, nil
}

// id is the compressor id stored in the superblock. An image without
// compression records gzip (the kernel needs some decompressor) and sets the
// uncompressed flags, as mksquashfs -noI -noD -noF -noX does.
func (c *codec) id() Compression {
	if c.comp == CompNone {
		return Gzip
	}
	return c.comp
}

// flags returns the superblock flags this codec implies.
func (c *codec) flags() uint16 {
	if c.comp == CompNone {
		return FlagUncompressedInodes | FlagUncompressedData | FlagUncompressedFragments |
			FlagUncompressedXattrs | FlagUncompressedIDs
	}
	return 0
}

// options returns the compressor options record mksquashfs would write
// (nil when it writes none): gzip and zstd only at a non-default level, lz4
// always (the kernel checks its version), xz never (default dictionary).
func (c *codec) options() []byte {
	switch c.comp {
	case Gzip:
		if c.level != DefaultGzipLevel {
			o := GzipOptions{Level: uint32(c.level), WindowSize: 15}
			return o.appendTo(nil)
		}
	case Zstd:
		if c.level != DefaultZstdLevel {
			o := ZstdOptions{Level: uint32(c.level)}
			return o.appendTo(nil)
		}
	case LZ4:
		o := LZ4Options{Version: LZ4Legacy}
		if c.level > 0 {
			o.Flags = LZ4HC
		}
		return o.appendTo(nil)
	}
	return nil
}

// compress compresses src. It returns the bytes to store and whether they
// are compressed: src itself (false) when compression does not shrink it.
// dst is scratch storage the result may live in.
func (c *codec) compress(dst, src []byte) ([]byte, bool, error) {
	if c.comp == CompNone || len(src) == 0 {
		return src, false, nil
	}
	var e blockEncoder
	c.mu.Lock()
	if n := len(c.free); n > 0 {
		e, c.free = c.free[n-1], c.free[:n-1]
	}
	c.mu.Unlock()
	if e == nil {
		var err error
		if e, err = c.newEnc(); err != nil {
			return nil, false, err
		}
	}
	out, err := e.encode(dst, src)
	c.mu.Lock()
	c.free = append(c.free, e)
	c.mu.Unlock()
	if err != nil {
		return nil, false, fmt.Errorf("squashfs: %v compression: %w", c.comp, err)
	}
	if len(out) >= len(src) {
		return src, false, nil
	}
	return out, true, nil
}

// decompressor decompresses blocks of one compressor; safe for concurrent use.
type decompressor struct {
	comp Compression
	zstd *zstd.Decoder
	// cxz: decode xz with liblzma (cDecodeXZ), strictly (one stream with a
	// CRC32 check, as sq_xz writes it). Only the block cache's check sets
	// it; reading an image stays pure Go.
	cxz bool
}

// newDecompressor returns a decompressor for the compressor id of an image.
// opts is the compressor options record, or nil; it is checked as the kernel
// checks it (lz4 version).
func newDecompressor(comp Compression, opts []byte) (*decompressor, error) {
	d := &decompressor{comp: comp}
	switch comp {
	case Gzip, XZ:
	case LZ4:
		if opts != nil {
			var o LZ4Options
			if _, err := o.decode(opts, SuperblockSize+2); err != nil {
				return nil, err
			}
		}
	case Zstd:
		z, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxMemory(MaxBlockSize), zstd.WithDecoderMaxWindow(1<<24))
		if err != nil {
			return nil, err
		}
		d.zstd = z
	default:
		return nil, fmt.Errorf("%w: %v", ErrUnsupportedCompression, comp)
	}
	return d, nil
}

// errXZDecode is any failure of the strict liblzma check (decompressor.cxz):
// another stream layout, a damaged stream, trailing bytes, more than max
// bytes of output, or a dictionary above the memory limit.
var errXZDecode = errors.New("xz: not one CRC32 stream decoding to the block (liblzma)")

// xzJob is one block for cDecodeXZMany: src decoded into dst's storage
// (grown to max when smaller), at most max bytes; out or err is the result.
type xzJob struct {
	dst, src []byte
	max      int
	out      []byte
	err      error
}

// xzSingleBlockCRC32 returns the CRC32 check field of the block of src, an
// xz stream with a CRC32 check whose index lists exactly one block, and
// whether src is laid out so (.xz file format 1.2.1: the stream footer's
// Backward Size gives the index's size, 2.1.2.2; the index begins with its
// indicator 0x00 and the number of records, a multibyte integer, 4 and
// 1.2; the block's check field is its last 4 bytes, right before the index,
// 3). It reads only those fields: the decoder checks the rest, and the
// index's records against the block it decoded.
func xzSingleBlockCRC32(src []byte) (uint32, bool) {
	const headerSize, footerSize, checkSize = 12, 12, 4
	if len(src) < headerSize+checkSize+footerSize || src[6] != 0 || src[7] != 1 {
		return 0, false
	}
	footer := src[len(src)-footerSize:]
	indexSize := (int64(binary.LittleEndian.Uint32(footer[4:8])) + 1) * 4
	end := int64(len(src)) - footerSize - indexSize // where the index begins
	if end < headerSize+checkSize {
		return 0, false
	}
	if index := src[end:]; index[0] != 0 || index[1] != 1 {
		return 0, false
	}
	return binary.LittleEndian.Uint32(src[end-checkSize : end]), true
}

// errTooLarge reports a block that decompresses to more than allowed.
var errTooLarge = errors.New("decompressed block larger than allowed")

// decompress appends the decompressed form of src to dst[:0] and returns
// it; a result longer than max bytes is an error (max is the block size for
// data, MetadataSize for metadata), so a hostile image cannot make it
// allocate more.
func (d *decompressor) decompress(dst, src []byte, max int) ([]byte, error) {
	dst = dst[:0]
	switch d.comp {
	case Gzip:
		r, err := zlib.NewReader(bytes.NewReader(src))
		if err != nil {
			return nil, err
		}
		return readBounded(dst, r, max)
	case XZ:
		if d.cxz {
			return cDecodeXZ(dst, src, max)
		}
		r, err := xz.NewReader(bytes.NewReader(src))
		if err != nil {
			return nil, err
		}
		return readBounded(dst, r, max)
	case LZ4:
		if cap(dst) < max {
			dst = make([]byte, max)
		}
		n, err := lz4.UncompressBlock(src, dst[:max])
		if err != nil {
			return nil, err
		}
		return dst[:n], nil
	case Zstd:
		out, err := d.zstd.DecodeAll(src, dst)
		if err != nil {
			return nil, err
		}
		if len(out) > max {
			return nil, errTooLarge
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: %v", ErrUnsupportedCompression, d.comp)
}

// readBounded reads r to its end into dst[:0] and fails with errTooLarge
// when r yields more than max bytes. It allocates at most once, max+1 bytes.
func readBounded(dst []byte, r io.Reader, max int) ([]byte, error) {
	if cap(dst) < max+1 {
		dst = make([]byte, max+1)
	}
	dst = dst[:max+1]
	n, err := io.ReadFull(r, dst)
	switch err {
	case nil:
		return nil, errTooLarge
	case io.EOF, io.ErrUnexpectedEOF:
		return dst[:n], nil
	}
	return nil, err
}
