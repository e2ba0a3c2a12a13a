package rootfs

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// hostRoot is a source directory or file on the build host: the host path
// of an entry is from + the entry's image path after the first toLen bytes.
type hostRoot struct {
	from  string
	toLen int
}

// HostFile is a regular file on the build host, with the identity, size
// and modification time it had when the sources were walked.
type HostFile struct {
	root  *hostRoot
	path  string // image path; shares bytes with Entry.Path
	dev   uint64
	ino   uint64
	size  int64
	mtime int64 // nanoseconds since 1970
}

// HostPath returns the file's path on the build host.
func (h *HostFile) HostPath() string { return h.root.from + h.path[h.root.toLen:] }

// Size returns the size the file had when walked.
func (h *HostFile) Size() int64 { return h.size }

// Mtime returns the modification time (nanoseconds since 1970) the file had
// when walked; it never enters the image.
func (h *HostFile) Mtime() int64 { return h.mtime }

// Open opens the file and checks it is the one walked, unchanged.
func (h *HostFile) Open() (io.ReadCloser, error) {
	p := h.HostPath()
	f, err := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NOATIME, 0)
	if err != nil {
		// O_NOATIME is refused for files the caller does not own.
		f, err = os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	}
	if err != nil {
		return nil, err
	}
	r := &hostReader{f: f, h: h}
	if err := r.check(); err != nil {
		f.Close()
		return nil, err
	}
	return r, nil
}

func (h *HostFile) modified(what string) error {
	return fmt.Errorf("%s: %w: %s", h.HostPath(), ErrModified, what)
}

type hostReader struct {
	f *os.File
	h *HostFile
	n int64
}

func (r *hostReader) check() error {
	var st unix.Stat_t
	if err := unix.Fstat(int(r.f.Fd()), &st); err != nil {
		return &os.PathError{Op: "fstat", Path: r.h.HostPath(), Err: err}
	}
	switch {
	case uint64(st.Dev) != r.h.dev || st.Ino != r.h.ino:
		return r.h.modified("replaced by another file")
	case st.Size != r.h.size:
		return r.h.modified(fmt.Sprintf("size %d, was %d", st.Size, r.h.size))
	case st.Mtim.Nano() != r.h.mtime:
		return r.h.modified("modification time changed")
	}
	return nil
}

func (r *hostReader) Read(p []byte) (int, error) {
	n, err := r.f.Read(p)
	r.n += int64(n)
	if r.n > r.h.size {
		return n, r.h.modified(fmt.Sprintf("grew beyond %d bytes", r.h.size))
	}
	if err == io.EOF && r.n < r.h.size {
		return n, r.h.modified(fmt.Sprintf("shrank to %d bytes, was %d", r.n, r.h.size))
	}
	return n, err
}

// Close checks the file again and closes it.
func (r *hostReader) Close() error {
	err := r.check()
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// inline is a declared file's content from the manifest.
type inline []byte

func (c inline) Open() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(c)), nil
}
