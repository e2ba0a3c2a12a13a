package squashfs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sync"

	lzo "github.com/anchore/go-lzo"
	"github.com/ulikunitz/xz/lzma"
	xi2xz "github.com/xi2/xz"
)

// blockDecompressor decompresses one block (data, fragment or metadata);
// implementations are safe for concurrent use. decompress reuses dst's
// storage when it can and fails when the result would exceed max bytes.
type blockDecompressor interface {
	decompress(dst, src []byte, max int) ([]byte, error)
}

// newBlockDecompressor picks the decompressor the reader uses for an
// image's compressor id. gzip, zstd and lz4 come from compress.go. The reader
// adds three:
//
//   - xz: github.com/xi2/xz, a Go port of XZ Embedded, the decoder the kernel
//     itself uses for squashfs (lib/xz). Like the kernel (fs/squashfs/
//     xz_wrapper.c) it caps the LZMA2 dictionary at the largest of the block
//     size, 8 KiB and the options record's dictionary size, so a hostile block
//     cannot make it allocate more, and it decodes the BCJ filters
//     mksquashfs -Xbcj adds (x86, powerpc, ia64, arm, armthumb, sparc).
//   - lzo: github.com/anchore/go-lzo (LZO1X decompression only), for
//     images from mksquashfs -comp lzo.
//   - lzma: github.com/ulikunitz/xz/lzma, for mksquashfs -comp lzma (the
//     legacy .lzma format: 5 property bytes, an 8-byte size, the stream;
//     squashfs-tools lzma_wrapper.c). The kernel cannot mount these.
func newBlockDecompressor(sb *Superblock, opts []byte) (blockDecompressor, error) {
	switch sb.Compression {
	case XZ:
		dict := max(sb.BlockSize, MetadataSize)
		if opts != nil {
			var o XZOptions
			if _, err := o.decode(opts, SuperblockSize+2); err != nil {
				return nil, err
			}
			dict = max(dict, o.DictionarySize)
		}
		return &xzDecompressor{dictMax: dict}, nil
	case LZO:
		return lzoDecompressor{}, nil
	case LZMA:
		return lzmaDecompressor{dictMax: max(sb.BlockSize, MetadataSize)}, nil
	}
	d, err := newDecompressor(sb.Compression, opts)
	if err != nil {
		return nil, err
	}
	return d, nil
}

// xzDecompressor decodes one .xz stream per block with pooled decoders.
type xzDecompressor struct {
	dictMax uint32
	pool    sync.Pool // of *xi2xz.Reader
}

func (d *xzDecompressor) decompress(dst, src []byte, max int) ([]byte, error) {
	zr, _ := d.pool.Get().(*xi2xz.Reader)
	var err error
	if zr == nil {
		zr, err = xi2xz.NewReader(bytes.NewReader(src), d.dictMax)
	} else {
		err = zr.Reset(bytes.NewReader(src))
	}
	if err != nil {
		return nil, err
	}
	zr.Multistream(false)
	out, err := readBounded(dst[:0], zr, max)
	if err == nil {
		d.pool.Put(zr)
	}
	return out, err
}

// lzoDecompressor decodes raw LZO1X blocks (squashfs-tools lzo_wrapper.c).
type lzoDecompressor struct{}

func (lzoDecompressor) decompress(dst, src []byte, max int) ([]byte, error) {
	if cap(dst) < max {
		dst = make([]byte, max)
	}
	n, err := lzo.Decompress(src, dst[:max])
	if err != nil {
		return nil, err
	}
	return dst[:n], nil
}

// lzmaDecompressor decodes legacy .lzma blocks (squashfs-tools
// lzma_wrapper.c: the 13-byte header of lzma_alone, then the stream).
type lzmaDecompressor struct{ dictMax uint32 }

func (d lzmaDecompressor) decompress(dst, src []byte, limit int) ([]byte, error) {
	if len(src) < lzma.HeaderLen {
		return nil, fmt.Errorf("lzma block of %d bytes has no header", len(src))
	}
	if size := binary.LittleEndian.Uint64(src[5:]); size > uint64(limit) && size != ^uint64(0) {
		return nil, errTooLarge
	}
	cfg := lzma.ReaderConfig{DictCap: int(max(d.dictMax, lzma.MinDictCap))}
	r, err := cfg.NewReader(bytes.NewReader(src))
	if err != nil {
		return nil, err
	}
	return readBounded(dst[:0], r, limit)
}
