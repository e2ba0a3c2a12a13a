package signer

import (
	"fmt"
	"io"
	"os"
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

// DigestFile returns the h digest of the file at path. Errors name the path.
func DigestFile(h Hash, path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err // *fs.PathError names the path
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && !fi.Mode().IsRegular() {
		return nil, &FileError{Path: path, Op: "hash", Err: fmt.Errorf("not a regular file (%s)", fi.Mode().Type())}
	}
	d, err := DigestReader(h, f)
	if err != nil {
		return nil, &FileError{Path: path, Op: "hash", Err: err}
	}
	return d, nil
}
