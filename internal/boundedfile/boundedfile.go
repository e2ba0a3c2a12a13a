// Package boundedfile reads the small files a build trusts (keys,
// certificates, trust roots, CRLs, passphrase files, signature cache
// entries) with a size limit, from regular files only: /dev/zero, a FIFO or
// a huge file named by mistake fails at once with a message naming it,
// instead of growing the process without bound or hanging.
package boundedfile

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
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
// limit bytes. The open does not block on a FIFO (O_NONBLOCK); the type is
// checked on the open descriptor, and the read stops after limit+1 bytes
// even if the file grows meanwhile. Errors are *os.PathError.
func ReadFile(path string, limit int64) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, &os.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w (%s)", ErrNotRegular, kind(st.Mode()))}
	}
	if st.Size() > limit {
		return nil, &os.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, st.Size(), limit)}
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, &os.PathError{Op: "read", Path: path, Err: fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)}
	}
	return data, nil
}

func kind(m os.FileMode) string {
	switch {
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m.IsDir():
		return "a directory"
	}
	return m.Type().String()
}
