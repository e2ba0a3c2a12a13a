package pipeline

import (
	"io"
	"os"
)

// Read-ahead of large files: the image writer's reader goroutine reads a
// file block by block and hashes every block it reads (hashingReader), one
// file after another in image order, so for a tree of a few large files the
// read(2) copies and the SHA-256 chain ran on one goroutine while the other
// core had only compression and writing to do. A readAhead moves the reads
// to a goroutine of its own, a few chunks ahead of the reader: the hash
// still covers exactly the bytes the image writer receives (hashingReader
// hashes what Read returns), only the system calls (and larger ones: 512 KiB
// instead of a block) run beside it. With SHA-256 the SquashFS writer hashes
// a large file itself, on a goroutine beside its reads, from the blocks it
// reads into (squashfs.SHA256Taker): no read-ahead then, and no chunk copy.
// A readAhead is left for the other hashes, and for the image's hash
// (imagehash.go).
const (
	// readAheadMin is the size from which a file is read ahead: one
	// goroutine and a chunk copy per file pay off only for large files
	// (the small-file path is unchanged).
	readAheadMin = 4 << 20
	// readAheadChunk is the size of one read; readAheadDepth chunks are in
	// flight per file (2 MiB), and at most Workers files are open at once.
	readAheadChunk = 512 << 10
	readAheadDepth = 4
)

// readAheadChunks keeps chunks across files (a build of many large files
// would otherwise allocate 2 MiB of garbage per file).
var readAheadChunks = make(chan []byte, 4*readAheadDepth)

func getChunk() []byte {
	select {
	case b := <-readAheadChunks:
		return b
	default:
		return make([]byte, readAheadChunk)
	}
}

func putChunk(b []byte) {
	select {
	case readAheadChunks <- b[:readAheadChunk]:
	default:
	}
}

// readAhead reads src on its own goroutine, in order, at most
// readAheadDepth chunks ahead of Read. Read returns the same bytes, and at
// their end the same error, as reading src directly would (only the sizes
// of the reads differ), so whatever checks the consumer makes on the
// content (its hash, its length) are unchanged.
type readAhead struct {
	src  io.ReadCloser
	full chan []byte   // chunks read, in order; closed after the last
	stop chan struct{} // closed by Close: the goroutine ends
	done chan struct{} // closed when the goroutine has ended
	err  error         // what ended the reads (io.EOF: the end); set before full is closed
	cur  []byte        // the chunk Read is copying from
	rest []byte        // its unread part
	shut bool          // Close was called
}

func newReadAhead(src io.ReadCloser) *readAhead {
	r := &readAhead{src: src, full: make(chan []byte, readAheadDepth-1),
		stop: make(chan struct{}), done: make(chan struct{})}
	go r.run()
	return r
}

func (r *readAhead) run() {
	defer close(r.done)
	defer close(r.full)
	for {
		b := getChunk()
		n := 0
		var err error
		for n < len(b) && err == nil {
			var k int
			k, err = r.src.Read(b[n:])
			n += k
		}
		if n > 0 {
			select {
			case r.full <- b[:n]:
			case <-r.stop:
				putChunk(b)
				return
			}
		} else {
			putChunk(b)
		}
		if err != nil {
			r.err = err
			return
		}
	}
}

// Read copies from the chunks read ahead; at their end it returns the
// error that ended the reads (io.EOF at the end of the source).
func (r *readAhead) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for len(r.rest) == 0 {
		if r.cur != nil {
			putChunk(r.cur)
			r.cur = nil
		}
		b, ok := <-r.full
		if !ok {
			return 0, r.err
		}
		r.cur, r.rest = b, b
	}
	n := copy(p, r.rest)
	r.rest = r.rest[n:]
	return n, nil
}

// WriteTo writes the rest of the chunks read ahead to w as they come,
// without copying them into a caller's buffer first (io.Copy uses it; the
// image hash hashes the chunks themselves). At the end of the source it
// returns nil; an error that ended the reads is returned after the bytes
// read before it.
func (r *readAhead) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for {
		if len(r.rest) > 0 {
			k, err := w.Write(r.rest)
			n += int64(k)
			r.rest = r.rest[k:]
			if err != nil {
				return n, err
			}
		}
		if r.cur != nil {
			putChunk(r.cur)
			r.cur = nil
		}
		b, ok := <-r.full
		if !ok {
			if r.err == io.EOF {
				return n, nil
			}
			return n, r.err
		}
		r.cur, r.rest = b, b
	}
}

// Close stops the reads and closes the source (whose Close checks that the
// file did not change while it was read).
func (r *readAhead) Close() error {
	if r.shut {
		return r.src.Close()
	}
	r.shut = true
	close(r.stop)
	<-r.done
	r.err = os.ErrClosed
	for b := range r.full {
		putChunk(b)
	}
	if r.cur != nil {
		putChunk(r.cur)
		r.cur, r.rest = nil, nil
	}
	return r.src.Close()
}
