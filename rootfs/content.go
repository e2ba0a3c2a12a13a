package rootfs

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/imaforge/imaforge/internal/rawfd"
)

// hostRoot is a source directory or file on the build host: the host path
// of an entry is from + the entry's image path after the first toLen bytes.
//
// A source directory's root holds a descriptor of the directory (O_PATH,
// opened by the walk, closed with the tree): its files are opened relative
// to it, so that the kernel resolves only the path below the source, not
// every component of from again for each file.
type hostRoot struct {
	from  string
	toLen int

	mu  sync.RWMutex // held to read while opening relative to dir
	dir int          // the directory's descriptor; -1: none, or closed
}

// newHostRoot is the root of a source file, or of a source directory
// opened as dir (-1: none; the root owns it from then on).
func newHostRoot(from string, toLen, dir int) *hostRoot {
	return &hostRoot{from: from, toLen: toLen, dir: dir}
}

// Close closes the directory's descriptor; the root's files are then
// opened by their full host paths.
func (r *hostRoot) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.dir < 0 {
		return nil
	}
	err := unix.Close(r.dir)
	r.dir = -1
	if err != nil {
		return &os.PathError{Op: "close", Path: r.from, Err: err}
	}
	return nil
}

// hostDevice is a device of a source's files: every file of one source on
// one device shares it (a walk has few), so that a HostFile is 48 bytes.
type hostDevice struct {
	root *hostRoot
	dev  uint64
}

// HostFile is a regular file on the build host, with the identity, size
// and modification time it had when the sources were walked. A build holds
// one per file until it is read: 48 bytes (TestHostFileSize).
type HostFile struct {
	at    *hostDevice // its source and device
	path  string      // image path; shares bytes with Entry.Path
	ino   uint64
	size  int64
	mtime int64 // nanoseconds since 1970
}

// HostPath returns the file's path on the build host.
func (h *HostFile) HostPath() string { return h.at.root.from + h.path[h.at.root.toLen:] }

// Size returns the size the file had when walked.
func (h *HostFile) Size() int64 { return h.size }

// Mtime returns the modification time (nanoseconds since 1970) the file had
// when walked; it never enters the image.
func (h *HostFile) Mtime() int64 { return h.mtime }

// Open opens the file. Whether it is the one walked, unchanged, is checked
// once its bytes are read, at Close (identity, size and modification
// time): the bytes of a file replaced or changed since the walk are never
// taken, as Close fails, and an fstat at Open as well would tell nothing
// more, one system call in five per small file.
//
// The reader works on the bare descriptor (open, read, fstat, close), not
// an *os.File (see package rawfd).
func (h *HostFile) Open() (io.ReadCloser, error) {
	fd, err := h.open(unix.O_NOATIME)
	if err != nil {
		// O_NOATIME is refused for files the caller does not own.
		fd, err = h.open(0)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: h.HostPath(), Err: err}
	}
	return &hostReader{fd: fd, h: h}, nil
}

// open opens the file relative to its source directory's descriptor while
// the root holds one, else by its full host path.
func (h *HostFile) open(flags int) (int, error) {
	r := h.at.root
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.dir < 0 {
		return openRead(unix.AT_FDCWD, h.HostPath(), flags)
	}
	// path[toLen:] is "/" and the path below the source directory
	return openRead(r.dir, h.path[r.toLen+1:], flags)
}

func openRead(dir int, p string, flags int) (int, error) {
	return rawfd.Openat(dir, p, unix.O_RDONLY|unix.O_NOFOLLOW|flags)
}

func (h *HostFile) modified(what string) error {
	return fmt.Errorf("%s: %w: %s", h.HostPath(), ErrModified, what)
}

// hostReader reads a HostFile through its descriptor; Close must be called
// (it closes the descriptor, and its check is what tells a file changed
// after the walk: Read may end at the walked size without noticing).
type hostReader struct {
	fd     int
	h      *HostFile
	n      int64
	closed bool
}

// check fails unless the open file is the one walked, with its size and
// modification time (at Close, once every byte is read).
func (r *hostReader) check() error {
	var st unix.Stat_t
	if err := unix.Fstat(r.fd, &st); err != nil {
		return &os.PathError{Op: "fstat", Path: r.h.HostPath(), Err: err}
	}
	switch {
	case uint64(st.Dev) != r.h.at.dev || st.Ino != r.h.ino:
		return r.h.modified("replaced by another file")
	case st.Size != r.h.size:
		return r.h.modified(fmt.Sprintf("size %d, was %d", st.Size, r.h.size))
	case st.Mtim.Nano() != r.h.mtime:
		return r.h.modified("modification time changed")
	}
	return nil
}

func (r *hostReader) Read(p []byte) (int, error) {
	if r.closed {
		return 0, os.ErrClosed
	}
	if len(p) == 0 {
		return 0, nil
	}
	if r.n == r.h.size {
		// The walked size is read: end here without a read(2) that would
		// only find the end. A file that grew meanwhile fails Close's
		// check (size and modification time), as does any change after
		// the last read.
		return 0, io.EOF
	}
	n, err := rawfd.Read(r.fd, p)
	if err != nil {
		return 0, &os.PathError{Op: "read", Path: r.h.HostPath(), Err: err}
	}
	r.n += int64(n)
	if r.n > r.h.size {
		return n, r.h.modified(fmt.Sprintf("grew beyond %d bytes", r.h.size))
	}
	if n == 0 {
		if r.n < r.h.size {
			return 0, r.h.modified(fmt.Sprintf("shrank to %d bytes, was %d", r.n, r.h.size))
		}
		return 0, io.EOF
	}
	return n, nil
}

// Close checks the file again and closes it.
func (r *hostReader) Close() error {
	if r.closed {
		return os.ErrClosed
	}
	r.closed = true
	err := r.check()
	if cerr := unix.Close(r.fd); err == nil && cerr != nil {
		err = &os.PathError{Op: "close", Path: r.h.HostPath(), Err: cerr}
	}
	return err
}

// inline is a declared file's content from the manifest.
type inline []byte

func (c inline) Open() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(c)), nil
}
