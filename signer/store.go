package signer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/internal/boundedfile"
)

// SigFileSuffix is appended to a file's name for its detached signature,
// as evmctl --sigfile does: FILE.sig holds the raw security.ima value.
const SigFileSuffix = ".sig"

// Store says where a file's security.ima value lives.
type Store int

const (
	// SigFile: the raw value in FILE.sig next to the file (evmctl --sigfile).
	SigFile Store = iota + 1
	// Xattr: the security.ima extended attribute of the file itself
	// (setting it needs CAP_SYS_ADMIN).
	Xattr
)

func (s Store) String() string {
	switch s {
	case SigFile:
		return "sigfile"
	case Xattr:
		return "xattr"
	}
	return fmt.Sprintf("Store(%d)", int(s))
}

// Read returns the value stored for path; ErrNoValue when there is none.
// Errors name the file.
func (s Store) Read(path string) ([]byte, error) {
	switch s {
	case SigFile:
		b, err := boundedfile.ReadFile(path+SigFileSuffix, boundedfile.SmallLimit)
		if errors.Is(err, os.ErrNotExist) {
			return nil, &FileError{Path: path, Op: "read signature", Err: fmt.Errorf("%w: %s does not exist", ErrNoValue, path+SigFileSuffix)}
		}
		if err != nil {
			return nil, &FileError{Path: path + SigFileSuffix, Op: "read signature", Err: unwrapPathError(err)}
		}
		return b, nil
	case Xattr:
		buf := make([]byte, 1024)
		for {
			n, err := unix.Getxattr(path, imasig.XattrName, buf)
			switch {
			case errors.Is(err, unix.ERANGE):
				sz, err2 := unix.Getxattr(path, imasig.XattrName, nil)
				if err2 != nil {
					return nil, &FileError{Path: path, Op: "read " + imasig.XattrName, Err: err2}
				}
				buf = make([]byte, sz)
				continue
			case errors.Is(err, unix.ENODATA):
				return nil, &FileError{Path: path, Op: "read " + imasig.XattrName, Err: ErrNoValue}
			case err != nil:
				return nil, &FileError{Path: path, Op: "read " + imasig.XattrName, Err: err}
			}
			return buf[:n], nil
		}
	}
	return nil, fmt.Errorf("invalid store %v", s)
}

// Write stores value for path. A signature file is written to a temporary
// file in the same directory and renamed over FILE.sig, so readers never see
// a partial value.
func (s Store) Write(path string, value []byte) error {
	switch s {
	case SigFile:
		return writeFileAtomic(path+SigFileSuffix, value)
	case Xattr:
		if err := unix.Setxattr(path, imasig.XattrName, value, 0); err != nil {
			return &FileError{Path: path, Op: "set " + imasig.XattrName, Err: err}
		}
		return nil
	}
	return fmt.Errorf("invalid store %v", s)
}

func writeFileAtomic(name string, data []byte) error {
	dir, base := filepath.Split(name)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".*.tmp")
	if err != nil {
		return &FileError{Path: name, Op: "write signature", Err: unwrapPathError(err)}
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		os.Remove(tmp)
		return &FileError{Path: name, Op: "write signature", Err: unwrapPathError(err)}
	}
	return nil
}
