package signer

import (
	"fmt"
	"os"

	"github.com/imaforge/imaforge/imasig"
)

// DigestFile returns the h digest of the file at path. Errors name the path.
func DigestFile(h imasig.Hash, path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err // *fs.PathError names the path
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && !fi.Mode().IsRegular() {
		return nil, &FileError{Path: path, Op: "hash", Err: fmt.Errorf("not a regular file (%s)", fi.Mode().Type())}
	}
	d, err := imasig.DigestReader(h, f)
	if err != nil {
		return nil, &FileError{Path: path, Op: "hash", Err: err}
	}
	return d, nil
}
