package squashfs

import (
	"fmt"
	"io"
	"io/fs"
	"runtime"
	"sync"
)

// fileData locates a regular file's bytes: full blocks stored one after the
// other from the inode's start (each compressed, stored, or sparse: a size
// of 0 stands for a block of zeros), and either a short last block or a tail
// in a fragment block shared with other files (squashfs-tools-ng
// doc/format.txt section 4; kernel fs/squashfs/file.c).
type fileData struct {
	z    *Reader
	in   *inode
	ckpt []uint64 // image offset of every ckptEvery-th block
	tail uint64   // bytes in the fragment, 0 without one
	frag FragmentEntry
}

// newFileData checks a regular file's block list against the image: every
// block lies in the data area (after the superblock, before the inode
// table), no block is longer on disk than a block, and the tail fits in its
// fragment block.
func (z *Reader) newFileData(in *inode) (*fileData, error) {
	fd := &fileData{z: z, in: in, ckpt: make([]uint64, 0, (len(in.blocks)+ckptEvery-1)/ckptEvery)}
	bs := uint64(z.sb.BlockSize)
	pos := in.start
	dataEnd := z.sb.InodeTableStart
	for i, w := range in.blocks {
		if i%ckptEvery == 0 {
			fd.ckpt = append(fd.ckpt, pos)
		}
		n := uint64(BlockSizeWord(w).OnDisk())
		if n == 0 {
			continue
		}
		if n > bs {
			return nil, &FormatError{Off: int64(min(pos, 1<<62)), Msg: fmt.Sprintf("inode %d: block %d longer than the block size", in.number, i), Val: n}
		}
		if pos < SuperblockSize || pos > dataEnd || n > dataEnd-pos {
			return nil, &FormatError{Off: int64(min(pos, 1<<62)), Msg: fmt.Sprintf("inode %d: block %d outside the data area", in.number, i), Val: fmt.Sprintf("%#x+%d", pos, n)}
		}
		pos += n
	}
	if in.frag != InvalidFragment {
		fd.tail = in.size % bs
		b, err := z.readRecord(&z.frags, uint64(in.frag))
		if err != nil {
			return nil, fmt.Errorf("squashfs: inode %d: %w", in.number, err)
		}
		if _, err := fd.frag.decode(b, int64(z.frags.listOff)); err != nil {
			return nil, err
		}
		n := uint64(fd.frag.Size.OnDisk())
		if n == 0 || n > bs || fd.frag.StartBlock < SuperblockSize || fd.frag.StartBlock > dataEnd || n > dataEnd-fd.frag.StartBlock {
			return nil, &FormatError{Off: int64(z.frags.listOff), Msg: fmt.Sprintf("fragment %d outside the data area", in.frag), Val: fmt.Sprintf("%#x+%d", fd.frag.StartBlock, n)}
		}
		if uint64(in.fragOff) > bs || fd.tail > bs-uint64(in.fragOff) {
			return nil, &FormatError{Off: int64(z.frags.listOff), Msg: fmt.Sprintf("inode %d: tail of %d bytes at %d does not fit in a fragment block", in.number, fd.tail, in.fragOff), Val: in.frag}
		}
	}
	return fd, nil
}

// ckptEvery is how many blocks apart fileData keeps block offsets: finding
// a block's offset adds at most ckptEvery-1 sizes, and a file costs 8 bytes
// per ckptEvery blocks on top of its block list.
const ckptEvery = 64

// blockOffset returns the image offset of block i.
func (fd *fileData) blockOffset(i int) uint64 {
	k := i / ckptEvery
	pos := fd.ckpt[k]
	for _, w := range fd.in.blocks[k*ckptEvery : i] {
		pos += uint64(BlockSizeWord(w).OnDisk())
	}
	return pos
}

// blockLen is the number of file bytes block i holds.
func (fd *fileData) blockLen(i int) int {
	bs := uint64(fd.z.sb.BlockSize)
	return int(min(bs, fd.in.size-uint64(i)*bs))
}

// bufPool holds block-sized buffers for every Reader (sized for the largest
// block size, 1 MiB, only when needed).
var bufPool sync.Pool

func getBuf(n int) []byte {
	if b, ok := bufPool.Get().(*[]byte); ok && cap(*b) >= n {
		return (*b)[:n]
	}
	return make([]byte, n)
}

func putBuf(b []byte) { bufPool.Put(&b) }

// block decompresses block i into dst (grown as needed) and returns exactly
// blockLen(i) bytes. A block that unpacks to less is padded with zeros, as
// the format allows; one that unpacks to more is an error.
func (fd *fileData) block(i int, dst []byte) ([]byte, error) {
	want := fd.blockLen(i)
	w := BlockSizeWord(fd.in.blocks[i])
	n := int(w.OnDisk())
	at := uint64(0)
	if n > 0 {
		at = fd.blockOffset(i)
	}
	if cap(dst) < want {
		dst = make([]byte, want)
	}
	if n == 0 { // sparse
		dst = dst[:want]
		clear(dst)
		return dst, nil
	}
	if !w.Compressed() {
		if n > want {
			return nil, &FormatError{Off: int64(at), Msg: fmt.Sprintf("inode %d: stored block %d longer than the file's %d bytes there", fd.in.number, i, want), Val: n}
		}
		dst = dst[:want]
		if err := fd.z.readAt(dst[:n], at, "data block"); err != nil {
			return nil, err
		}
		clear(dst[n:])
		return dst, nil
	}
	raw := getBuf(n)
	defer putBuf(raw)
	if err := fd.z.readAt(raw, at, "data block"); err != nil {
		return nil, err
	}
	out, err := fd.z.dec.decompress(dst[:0], raw, int(fd.z.sb.BlockSize))
	if err != nil {
		return nil, &FormatError{Off: int64(at), Msg: fmt.Sprintf("inode %d: data block %d does not decompress", fd.in.number, i), Err: err}
	}
	if len(out) > want {
		return nil, &FormatError{Off: int64(at), Msg: fmt.Sprintf("inode %d: data block %d unpacks to %d bytes, more than the file's %d there", fd.in.number, i, len(out), want), Val: len(out)}
	}
	if len(out) < want {
		k := len(out)
		out = out[:want]
		clear(out[k:])
	}
	return out, nil
}

// tailBytes returns the file's tail from its fragment block (cached: many
// small files share one).
func (fd *fileData) tailBytes() ([]byte, error) {
	z := fd.z
	pos := fd.frag.StartBlock
	b := z.fragc.get(pos)
	if b == nil {
		n := int(fd.frag.Size.OnDisk())
		raw := make([]byte, n)
		if err := z.readAt(raw, pos, "fragment block"); err != nil {
			return nil, err
		}
		data := raw
		if fd.frag.Size.Compressed() {
			var err error
			if data, err = z.dec.decompress(nil, raw, int(z.sb.BlockSize)); err != nil {
				return nil, &FormatError{Off: int64(pos), Msg: fmt.Sprintf("fragment block %d does not decompress", fd.in.frag), Err: err}
			}
		}
		b = &cachedBlock{pos: pos, data: data, next: pos + uint64(n)}
		z.fragc.put(b)
	}
	end := uint64(fd.in.fragOff) + fd.tail
	if end > uint64(len(b.data)) {
		return nil, &FormatError{Off: int64(pos), Msg: fmt.Sprintf("inode %d: tail [%d, %d) beyond the %d bytes of fragment block %d", fd.in.number, fd.in.fragOff, end, len(b.data), fd.in.frag)}
	}
	return b.data[fd.in.fragOff:end], nil
}

// readAt implements io.ReaderAt for the file; buffers come from the pool, so
// concurrent calls are safe.
func (fd *fileData) readAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("squashfs: negative offset %d: %w", off, fs.ErrInvalid)
	}
	size := fd.in.size
	if uint64(off) >= size {
		return 0, io.EOF
	}
	bs := uint64(fd.z.sb.BlockSize)
	n := 0
	for n < len(p) && uint64(off) < size {
		i := uint64(off) / bs
		in := uint64(off) % bs
		var src []byte
		var buf []byte
		if i < uint64(len(fd.in.blocks)) {
			buf = getBuf(int(bs))
			b, err := fd.block(int(i), buf)
			if err != nil {
				putBuf(buf)
				return n, err
			}
			src = b[in:]
		} else {
			t, err := fd.tailBytes()
			if err != nil {
				return n, err
			}
			src = t[in:]
		}
		k := copy(p[n:], src)
		if buf != nil {
			putBuf(buf)
		}
		n += k
		off += int64(k)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// writeTo writes the file from offset off to w, decompressing blocks on all
// cores while writing them in order. At most window blocks are in flight, so
// memory stays at a few blocks whatever the file's size.
func (fd *fileData) writeTo(w io.Writer, off int64) (int64, error) {
	size := int64(fd.in.size)
	bs := int64(fd.z.sb.BlockSize)
	var written int64
	// An unaligned start, or a file of a block or two: plain copying.
	first := int((off + bs - 1) / bs)
	nb := len(fd.in.blocks)
	workers := runtime.GOMAXPROCS(0)
	if off%bs != 0 && off < size {
		k := min(bs-off%bs, size-off)
		buf := make([]byte, k)
		n, err := fd.readAt(buf, off)
		if err != nil && err != io.EOF {
			return 0, err
		}
		m, err := w.Write(buf[:n])
		written += int64(m)
		if err != nil {
			return written, err
		}
		off += int64(n)
	}
	if first < nb {
		n, err := fd.writeBlocks(w, first, nb, workers)
		written += n
		off += n
		if err != nil {
			return written, err
		}
	}
	if off < size { // the tail in a fragment
		t, err := fd.tailBytes()
		if err != nil {
			return written, err
		}
		in := off - int64(nb)*bs
		m, err := w.Write(t[in:])
		written += int64(m)
		if err != nil {
			return written, err
		}
	}
	return written, nil
}

// writeBlocks writes blocks [from, to) in order, decompressing up to
// workers of them at once.
func (fd *fileData) writeBlocks(w io.Writer, from, to, workers int) (int64, error) {
	var written int64
	if workers < 2 || to-from < 2 {
		buf := make([]byte, fd.z.sb.BlockSize)
		for i := from; i < to; i++ {
			b, err := fd.block(i, buf)
			if err != nil {
				return written, err
			}
			m, err := w.Write(b)
			written += int64(m)
			if err != nil {
				return written, err
			}
		}
		return written, nil
	}
	type job struct {
		buf  []byte
		err  error
		done chan struct{}
	}
	window := min(2*workers, 32)
	queue := make(chan *job, window)
	stop := make(chan struct{})
	sem := make(chan struct{}, workers)
	go func() {
		defer close(queue)
		for i := from; i < to; i++ {
			j := &job{done: make(chan struct{})}
			select {
			case queue <- j:
			case <-stop:
				return
			}
			select {
			case sem <- struct{}{}:
			case <-stop:
				j.err = io.ErrClosedPipe
				close(j.done)
				return
			}
			go func(i int) {
				j.buf, j.err = fd.block(i, getBuf(int(fd.z.sb.BlockSize)))
				<-sem
				close(j.done)
			}(i)
		}
	}()
	var err error
	for j := range queue {
		<-j.done
		if err == nil {
			err = j.err
			if err == nil {
				var m int
				m, err = w.Write(j.buf)
				written += int64(m)
			}
			if err != nil {
				close(stop)
			}
		}
		if j.buf != nil {
			putBuf(j.buf)
		}
	}
	return written, err
}
