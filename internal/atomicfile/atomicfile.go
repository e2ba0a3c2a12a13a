// Package atomicfile writes output files so that a failed run leaves nothing
// half-written and loses nothing: data goes to a temporary file in the target
// directory, which is synced and renamed over the target only on Commit.
package atomicfile

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// File is a temporary file that becomes Path on Commit. It embeds *os.File so
// it can be handed to writers that need io.WriteSeeker or Truncate.
type File struct {
	*os.File
	path string
	perm fs.FileMode
	done bool
}

// Create opens a temporary file beside path. Call Commit to publish it or
// Abort (always safe, also after Commit) to remove it.
func Create(path string, perm fs.FileMode) (*File, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	return &File{File: f, path: path, perm: perm}, nil
}

// Path is the final path the file is committed to.
func (f *File) Path() string { return f.path }

// Commit syncs, closes and renames the temporary file to its final path.
func (f *File) Commit() error {
	if f.done {
		return fmt.Errorf("commit %s: already finished", f.path)
	}
	f.done = true
	err := f.File.Chmod(f.perm)
	if err == nil {
		err = f.File.Sync()
	}
	if cerr := f.File.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.File.Name(), f.path)
	}
	if err != nil {
		os.Remove(f.File.Name())
		return fmt.Errorf("write %s: %w", f.path, err)
	}
	return nil
}

// Abort discards the temporary file. It does nothing after Commit.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	f.File.Close()
	os.Remove(f.File.Name())
}

// WriteFile writes data to path atomically.
func WriteFile(path string, data []byte, perm fs.FileMode) error {
	f, err := Create(path, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Abort()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Commit()
}
