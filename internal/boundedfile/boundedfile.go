// Package boundedfile reads the small files a build trusts (keys,
// certificates, trust roots, CRLs, passphrase files, signature cache
// entries) with a size limit, from regular files only: /dev/zero, a FIFO or
// a huge file named by mistake fails at once with a message naming it,
// instead of growing the process without bound or hanging.
package boundedfile

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"golang.org/x/sys/unix"

	"github.com/imaforge/imaforge/internal/rawfd"
)

// Limits for the kinds of files read with ReadFile.
const (
	// KeyLimit bounds a private key, certificate or trust file (a PEM
	// bundle of many certificates fits easily).
	KeyLimit = 4 << 20
	// CRLLimit bounds a certificate revocation list.
	CRLLimit = 64 << 20
	// SmallLimit bounds a passphrase file or a signature (cache entry,
	// detached .sig).
	SmallLimit = 64 << 10
	// ResponseLimit bounds a file of signatures made elsewhere (a
	// ceremony response, evmctl sign_hash output): about a million
	// signatures.
	ResponseLimit = 1 << 30
)

// ErrNotRegular is wrapped when the path is not a regular file.
var ErrNotRegular = errors.New("not a regular file")

// ErrTooLarge is wrapped when the file is larger than the limit.
var ErrTooLarge = errors.New("file too large")

// ReadFile reads the regular file at path, failing if it holds more than
// limit bytes. A path that is not a regular file is refused, before the
// open where stat says so and on the open descriptor (openRegular); the
// read stops after limit+1 bytes even if the file grows meanwhile. Errors
// are *os.PathError.
//
// It reads through the bare descriptor (open, fstat, read to the end,
// close; package rawfd): an *os.File's poller setup was paid for each of the
// 15,000 signature cache entries of a rebuild from the cache.
func ReadFile(path string, limit int64) ([]byte, error) {
	fd, st, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	if st.Size > limit {
		return nil, &os.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, st.Size, limit)}
	}
	// Room for the size fstat gave and one byte more, to see the end
	// (or the file having grown) without growing the buffer.
	data := make([]byte, 0, max(st.Size, 0)+1)
	for int64(len(data)) <= limit {
		if len(data) == cap(data) {
			data = slices.Grow(data, min(max(len(data), 512), int(limit+1)-len(data)))
		}
		room := data[len(data):min(cap(data), int(limit+1))]
		n, err := rawfd.Read(fd, room)
		if err != nil {
			return nil, &os.PathError{Op: "read", Path: path, Err: err}
		}
		if n == 0 {
			return data, nil
		}
		data = data[:len(data)+n]
	}
	return nil, &os.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)}
}

// Open opens the regular file at path for reading, as ReadFile does, and
// returns it with its size (the caches' packs, read in place). Errors are
// *os.PathError; a path that is not a regular file wraps ErrNotRegular.
func Open(path string) (*os.File, int64, error) {
	fd, st, err := openRegular(path)
	if err != nil {
		return nil, 0, err
	}
	return os.NewFile(uintptr(fd), path), st.Size, nil
}

// openRegular opens path read-only if it is a regular file. A path that is
// not one is refused before the open when stat says so (opening a device
// can act: /dev/watchdog starts its timer) and after it on the descriptor
// (a file swapped meanwhile); the open does not block on a FIFO
// (O_NONBLOCK, which changes nothing for a regular file's reads) nor make a
// terminal the controlling one (O_NOCTTY). A missing file is an "open"
// error, as if the open had failed.
func openRegular(path string) (fd int, st unix.Stat_t, err error) {
	if err := rawfd.Retry(func() error { return unix.Stat(path, &st) }); err != nil {
		return -1, st, &os.PathError{Op: "open", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return -1, st, notRegular(path, st.Mode)
	}
	fd, err = rawfd.Openat(unix.AT_FDCWD, path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY)
	if err != nil {
		return -1, st, &os.PathError{Op: "open", Path: path, Err: err}
	}
	if err := rawfd.Retry(func() error { return unix.Fstat(fd, &st) }); err != nil {
		unix.Close(fd)
		return -1, st, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return -1, st, notRegular(path, st.Mode)
	}
	return fd, st, nil
}

func notRegular(path string, mode uint32) error {
	return &os.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w (%s)", ErrNotRegular, kind(mode))}
}

func kind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFIFO:
		return "a FIFO"
	case unix.S_IFCHR:
		return "a character device"
	case unix.S_IFBLK:
		return "a block device"
	case unix.S_IFSOCK:
		return "a socket"
	case unix.S_IFDIR:
		return "a directory"
	}
	return fmt.Sprintf("file type %#o", mode&unix.S_IFMT)
}
