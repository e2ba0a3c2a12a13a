// Package rawfd reads files through bare descriptors, the way the build
// reads its many source files, signature cache entries and trust files.
//
// An *os.File registers every file with the runtime's poller, which refuses
// regular files, and sets and clears O_NONBLOCK around it: up to six system
// calls per file (fcntl four times, a failing epoll_ctl and its cleanup)
// beside the open, the reads and the close. For 50,000 small files that was
// 300,000 calls. The functions here make only the calls asked for, and retry
// those a signal interrupts (EINTR), as package os does.
package rawfd

import (
	"io"
	"io/fs"

	"golang.org/x/sys/unix"
)

// Retry calls f until it returns anything but EINTR.
func Retry(f func() error) error {
	for {
		if err := f(); err != unix.EINTR {
			return err
		}
	}
}

// Openat opens path relative to the directory descriptor dir
// (unix.AT_FDCWD: the working directory) with flags and O_CLOEXEC.
func Openat(dir int, path string, flags int) (fd int, err error) {
	err = Retry(func() (err error) {
		fd, err = unix.Openat(dir, path, flags|unix.O_CLOEXEC, 0)
		return err
	})
	return fd, err
}

// Read is read(2) on fd.
func Read(fd int, p []byte) (n int, err error) {
	err = Retry(func() (err error) {
		n, err = unix.Read(fd, p)
		return err
	})
	return n, err
}

// Reader reads a file through its bare descriptor; its errors are
// *fs.PathError naming the path. Not safe for concurrent use.
type Reader struct {
	fd   int
	path string
}

// Open opens path read-only.
func Open(path string) (*Reader, error) {
	fd, err := Openat(unix.AT_FDCWD, path, unix.O_RDONLY)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return &Reader{fd: fd, path: path}, nil
}

func (r *Reader) Read(p []byte) (int, error) {
	if r.fd < 0 {
		return 0, &fs.PathError{Op: "read", Path: r.path, Err: fs.ErrClosed}
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, err := Read(r.fd, p)
	switch {
	case err != nil:
		return 0, &fs.PathError{Op: "read", Path: r.path, Err: err}
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// Fd is the descriptor (-1 once closed), for calls such as fstat(2).
func (r *Reader) Fd() int { return r.fd }

// Close closes the descriptor once; a second Close is an error.
func (r *Reader) Close() error {
	if r.fd < 0 {
		return &fs.PathError{Op: "close", Path: r.path, Err: fs.ErrClosed}
	}
	fd := r.fd
	r.fd = -1
	if err := unix.Close(fd); err != nil {
		return &fs.PathError{Op: "close", Path: r.path, Err: err}
	}
	return nil
}
