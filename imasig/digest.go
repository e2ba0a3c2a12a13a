package imasig

import (
	"io"
	"sync"
)

// copyBufs recycles read buffers: hashing many small files would otherwise
// allocate io.Copy's 32 KiB buffer per file.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// DigestReader returns the h digest of everything r yields: the file digest
// IMA signs (the kernel hashes the whole file content, ima_calc_file_hash).
func DigestReader(h Hash, r io.Reader) ([]byte, error) {
	hh, err := h.New()
	if err != nil {
		return nil, err
	}
	buf := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(buf)
	// struct{ io.Reader } hides (*os.File).WriteTo, which would bypass buf.
	if _, err := io.CopyBuffer(hh, struct{ io.Reader }{r}, *buf); err != nil {
		return nil, err
	}
	return hh.Sum(nil), nil
}
