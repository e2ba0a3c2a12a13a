//go:build cgo

package squashfs

import datadog "github.com/DataDog/zstd"

// With cgo, zstd blocks are made by the zstd library itself (bundled with
// github.com/DataDog/zstd, no system package needed): at the same level it
// compresses as mksquashfs does, which klauspost/compress cannot match.
type cZstdEncoder struct {
	ctx   datadog.Ctx
	level int
}

func newZstdEncoder(level, blockSize int) (blockEncoder, error) {
	return &cZstdEncoder{ctx: datadog.NewCtx(), level: level}, nil
}

func (e *cZstdEncoder) encode(dst, src []byte) ([]byte, error) {
	return e.ctx.CompressLevel(dst, src, e.level)
}

// zstdImpl names the zstd implementation in use.
const zstdImpl = "libzstd (cgo)"
