// Package atomicfile writes output files so that a failed run leaves nothing
// half-written and loses nothing: data goes to a temporary file in the target
// directory, which is synced and renamed over the target only on Commit.
//
// Where the file system supports it (Linux O_TMPFILE: ext4, xfs, btrfs,
// tmpfs), the temporary file has no name at all until Commit links it into
// the directory, so a process killed with SIGKILL leaves nothing visible.
// Elsewhere it is a hidden ".NAME.tmp-*" file beside the target; TempPattern
// gives its pattern, for the next run to remove what a killed one left.
package atomicfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// File is a temporary file that becomes Path on Commit. It embeds *os.File so
// it can be handed to writers that need io.WriteSeeker or Truncate.
type File struct {
	*os.File
	path    string
	perm    fs.FileMode
	done    bool
	unnamed bool // O_TMPFILE: no directory entry until Commit links one
	behind  *Behind
}

// TempPattern is the glob pattern of the named temporary files Create makes
// for path when the file system has no O_TMPFILE (and of the short-lived
// name Commit links an unnamed file to before the rename).
func TempPattern(path string) string {
	dir, base := filepath.Split(path)
	return filepath.Join(dir, "."+base+".tmp-*")
}

// Create opens a temporary file beside path. Call Commit to publish it or
// Abort (always safe, also after Commit) to remove it. The file gets perm
// less what the process's umask clears: the mode open(2) with O_CREAT would
// give it, as the files of cp, tar or mksquashfs get (Commit sets the mode
// with fchmod, which ignores the umask, so Create applies it).
func Create(path string, perm fs.FileMode) (*File, error) {
	perm &^= umask("/proc/self/status")
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, uint32(perm&0o600|0o600))
	if err == nil {
		return &File{File: os.NewFile(uintptr(fd), filepath.Join(dir, "."+base+".tmp-(unnamed)")), path: path, perm: perm, unnamed: true}, nil
	}
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.EACCES) {
		return nil, fmt.Errorf("create %s: %w", path, &os.PathError{Op: "open", Path: dir, Err: err})
	}
	// EOPNOTSUPP, EISDIR (kernels before 3.11), EINVAL: a named temporary.
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", path, err)
	}
	return &File{File: f, path: path, perm: perm}, nil
}

// umask is the process's file mode creation mask, read from the Umask line
// of status (/proc/self/status, Linux 4.7 on), which changes nothing. Where
// that line is missing it sets the mask to 0o077 and back: a file another
// thread creates in between gets the stricter mask, never a looser one.
func umask(status string) fs.FileMode {
	if b, err := os.ReadFile(status); err == nil {
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "Umask:"); ok {
				if m, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
					return fs.FileMode(m) & fs.ModePerm
				}
			}
		}
	}
	old := unix.Umask(0o077)
	unix.Umask(old)
	return fs.FileMode(old) & fs.ModePerm
}

// Path is the final path the file is committed to.
func (f *File) Path() string { return f.path }

// Commit syncs, closes and renames the temporary file to its final path.
// It does not sync the directory (SyncDir does; a caller committing several
// files syncs it once).
func (f *File) Commit() error {
	return f.CommitTo(f.path)
}

// CommitTo is Commit to another path, for a caller that prepares files
// where they will later be moved as a set (a staging directory).
func (f *File) CommitTo(path string) error {
	if f.done {
		return fmt.Errorf("commit %s: already finished", path)
	}
	f.done = true
	var err error
	if f.behind != nil {
		err = f.behind.stop()
	}
	if err == nil {
		err = f.File.Chmod(f.perm)
	}
	if err == nil {
		err = f.File.Sync()
	}
	tmp := f.File.Name()
	if err == nil && f.unnamed {
		// Give the file a name: link it to a fresh temporary name
		// beside the target, then rename that over the target (linkat
		// cannot replace a file).
		tmp, err = f.link(path)
	}
	if cerr := f.File.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		if named := tmp != "" && (!f.unnamed || tmp != f.File.Name()); named {
			os.Remove(tmp)
		}
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// link links the unnamed file to an unused temporary name beside path.
func (f *File) link(path string) (string, error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	proc := "/proc/self/fd/" + strconv.Itoa(int(f.File.Fd()))
	for i := 0; ; i++ {
		tmp := filepath.Join(dir, "."+base+".tmp-"+strconv.Itoa(os.Getpid())+"-"+strconv.Itoa(i))
		err := unix.Linkat(unix.AT_FDCWD, proc, unix.AT_FDCWD, tmp, unix.AT_SYMLINK_FOLLOW)
		if errors.Is(err, unix.ENOENT) {
			// No /proc: AT_EMPTY_PATH (needs CAP_DAC_READ_SEARCH).
			err = unix.Linkat(int(f.File.Fd()), "", unix.AT_FDCWD, tmp, unix.AT_EMPTY_PATH)
		}
		switch {
		case err == nil:
			return tmp, nil
		case errors.Is(err, unix.EEXIST) && i < 100:
			continue
		default:
			return "", &os.LinkError{Op: "link", Old: proc, New: tmp, Err: err}
		}
	}
}

// SyncDir fsyncs a directory, making the renames and removals of names in it
// durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// Abort discards the temporary file. It does nothing after Commit.
func (f *File) Abort() {
	if f.done {
		return
	}
	f.done = true
	if f.behind != nil {
		f.behind.stop()
	}
	f.File.Close()
	if !f.unnamed {
		os.Remove(f.File.Name())
	}
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

// CreateUnlinked creates a temporary file in dir that has no name, so it is
// gone when closed or when the process dies, even by SIGKILL: O_TMPFILE
// where the file system has it, else a named file (pattern, as
// os.CreateTemp takes it) removed at once.
func CreateUnlinked(dir, pattern string) (*os.File, error) {
	if fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_RDWR|unix.O_CLOEXEC, 0o600); err == nil {
		return os.NewFile(uintptr(fd), filepath.Join(dir, pattern)), nil
	}
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, err
	}
	os.Remove(f.Name())
	return f, nil
}
