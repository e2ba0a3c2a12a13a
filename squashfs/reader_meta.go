package squashfs

import (
	"fmt"
	"sync"
)

// cachedBlock is a decompressed block kept in a blockCache. Its data is never
// modified once cached; readers share it.
type cachedBlock struct {
	pos  uint64 // image offset of the block (of its header, for metadata)
	data []byte // decompressed payload
	next uint64 // image offset just past the block on disk
	prev *cachedBlock
	succ *cachedBlock
}

// blockCache is a small LRU cache of decompressed blocks keyed by image
// offset, safe for concurrent use.
type blockCache struct {
	mu   sync.Mutex
	max  int
	m    map[uint64]*cachedBlock
	head cachedBlock // sentinel: head.succ is the most recently used
	hits int         // cache hits, for tests
}

func newBlockCache(max int) *blockCache {
	c := &blockCache{max: max, m: make(map[uint64]*cachedBlock, max)}
	c.head.prev, c.head.succ = &c.head, &c.head
	return c
}

func (c *blockCache) unlink(b *cachedBlock) { b.prev.succ, b.succ.prev = b.succ, b.prev }

func (c *blockCache) pushFront(b *cachedBlock) {
	b.prev, b.succ = &c.head, c.head.succ
	c.head.succ.prev = b
	c.head.succ = b
}

func (c *blockCache) get(pos uint64) *cachedBlock {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := c.m[pos]
	if b != nil {
		c.hits++
		c.unlink(b)
		c.pushFront(b)
	}
	return b
}

func (c *blockCache) put(b *cachedBlock) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.m[b.pos]; old != nil {
		c.unlink(old)
	}
	c.m[b.pos] = b
	c.pushFront(b)
	for len(c.m) > c.max {
		last := c.head.prev
		c.unlink(last)
		delete(c.m, last.pos)
	}
}

// metaBlock returns the metadata block whose header is at image offset pos;
// the block must end at or before end. A metadata block is a 2-byte header
// (MetadataHeader: on-disk size and an "uncompressed" bit) and at most 8 KiB
// of payload that decompresses to at most 8 KiB (squashfs_fs.h,
// fs/squashfs/block.c squashfs_read_data).
func (z *Reader) metaBlock(pos, end uint64) (*cachedBlock, error) {
	if b := z.meta.get(pos); b != nil {
		if b.next > end {
			return nil, &FormatError{Off: int64(pos), Msg: fmt.Sprintf("metadata block overruns its table (ends at %#x)", end)}
		}
		return b, nil
	}
	if pos >= end || end-pos < 3 {
		return nil, &FormatError{Off: int64(min(pos, 1<<62)), Msg: fmt.Sprintf("metadata block outside its table (ends at %#x)", end), Err: ErrTruncated}
	}
	raw := make([]byte, min(end-pos, 2+MetadataSize))
	if err := z.readAt(raw, pos, "metadata block"); err != nil {
		return nil, err
	}
	var h MetadataHeader
	if err := h.decode(raw, int64(pos)); err != nil {
		return nil, err
	}
	if int(h.Size) > len(raw)-2 {
		return nil, &FormatError{Off: int64(pos), Msg: fmt.Sprintf("metadata block of %d bytes overruns its table (ends at %#x)", h.Size, end), Err: ErrTruncated}
	}
	payload := raw[2 : 2+int(h.Size)]
	data := payload
	if !h.Uncompressed {
		var err error
		data, err = z.dec.decompress(nil, payload, MetadataSize)
		if err != nil {
			return nil, &FormatError{Off: int64(pos), Msg: "metadata block does not decompress", Err: err}
		}
	} else {
		data = append([]byte(nil), payload...)
	}
	b := &cachedBlock{pos: pos, data: data, next: pos + 2 + uint64(h.Size)}
	z.meta.put(b)
	return b, nil
}

// metaCursor reads a stream of metadata blocks (a table) from a position: a
// block offset in the image and a byte offset in that block's decompressed
// payload. Records may span blocks; the cursor moves to the block that
// follows on disk. Every block read lies within the cursor's region, and
// each step moves forward, so a read ends after at most the region's size.
type metaCursor struct {
	z   *Reader
	reg region
	pos uint64 // image offset of the current block
	off int    // offset in the current block's payload
	blk *cachedBlock
}

func (z *Reader) cursor(reg region, pos uint64, off int) metaCursor {
	return metaCursor{z: z, reg: reg, pos: pos, off: off}
}

// cursorAt returns a cursor at ref (a block offset relative to reg.start <<
// 16 | offset in the block), checking that the block is inside reg.
func (z *Reader) cursorAt(reg region, ref uint64, what string) (metaCursor, error) {
	blk, off := SplitRef(ref)
	if ref>>48 != 0 || blk >= reg.end-reg.start || off >= MetadataSize {
		return metaCursor{}, &FormatError{Off: int64(reg.start), Msg: what + " reference outside its table", Val: fmt.Sprintf("%#x", ref)}
	}
	return z.cursor(reg, reg.start+blk, int(off)), nil
}

// read fills p from the stream.
func (c *metaCursor) read(p []byte) error {
	for len(p) > 0 {
		if c.blk == nil {
			b, err := c.z.metaBlock(c.pos, c.reg.end)
			if err != nil {
				return err
			}
			if c.off > len(b.data) {
				return &FormatError{Off: int64(c.pos), Msg: fmt.Sprintf("offset beyond the %d bytes of a metadata block", len(b.data)), Val: c.off}
			}
			c.blk = b
		}
		if c.off == len(c.blk.data) {
			c.pos, c.off, c.blk = c.blk.next, 0, nil
			continue
		}
		n := copy(p, c.blk.data[c.off:])
		c.off += n
		p = p[n:]
	}
	return nil
}

// appendN appends the next n bytes of the stream to buf, growing buf as the
// bytes arrive so that a bogus n costs no more memory than the table holds.
func (c *metaCursor) appendN(buf []byte, n uint64) ([]byte, error) {
	for n > 0 {
		k := min(n, 64<<10)
		l := len(buf)
		buf = append(buf, make([]byte, k)...)
		if err := c.read(buf[l:]); err != nil {
			return nil, err
		}
		n -= k
	}
	return buf, nil
}
