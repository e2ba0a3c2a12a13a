//go:build linux

package squashfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/imaforge/imaforge/internal/rawfd"
)

// TreeOptions control AddTree.
type TreeOptions struct {
	// AllRoot makes every entry owned by 0:0 (mksquashfs -all-root).
	AllRoot bool
	// ModTime, when not nil, replaces every entry's modification time
	// (mksquashfs -all-time).
	ModTime *int64
	// ClampTime, when not nil, lowers modification times later than it to
	// it (SOURCE_DATE_EPOCH semantics).
	ClampTime *int64
	// NoXattrs skips reading xattrs.
	NoXattrs bool
	// Exclude, if not nil, is asked about every host path below the root;
	// true leaves it (and, for a directory, its contents) out.
	Exclude func(hostPath string) bool
	// Warn, if not nil, is told about xattrs that cannot be stored
	// (namespaces other than user., trusted., security.) or read.
	Warn func(msg string)
}

// TreeStats summarize what AddTree added.
type TreeStats struct {
	Entries       int
	NewestModTime int64 // newest modification time added (after ModTime/ClampTime)
}

// AddTree adds the directory tree at dir (its root becoming the image root)
// to w: every file type, owners, permissions, modification times, hard links
// (entries sharing an inode become LinkTo entries of the first in path
// order) and the xattrs that can be read. Regular files are opened by
// WriteData. It does not follow symlinks.
func AddTree(w *Writer, dir string, opts TreeOptions) (TreeStats, error) {
	var st TreeStats
	st.NewestModTime = -1
	type devino struct{ dev, ino uint64 }
	links := make(map[devino]string)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		ipath := "/"
		if rel != "." {
			ipath = "/" + filepath.ToSlash(rel)
			if opts.Exclude != nil && opts.Exclude(p) {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
		}
		// one lstat gives the mode, size and owners (d.Info() would be a
		// second one: two per entry cost as much as the open)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		sys, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return &fs.PathError{Op: "lstat", Path: p, Err: errors.New("no stat_t")}
		}
		e := Entry{Path: ipath, Mode: fi.Mode(), UID: sys.Uid, GID: sys.Gid, ModTime: sys.Mtim.Sec}
		if opts.AllRoot {
			e.UID, e.GID = 0, 0
		}
		if opts.ModTime != nil {
			e.ModTime = *opts.ModTime
		} else if opts.ClampTime != nil && e.ModTime > *opts.ClampTime {
			e.ModTime = *opts.ClampTime
		}
		if !opts.NoXattrs {
			if e.Xattrs, err = readXattrs(p, opts.Warn); err != nil {
				return err
			}
		}
		if !fi.IsDir() && sys.Nlink > 1 {
			k := devino{uint64(sys.Dev), sys.Ino}
			if first, ok := links[k]; ok {
				st.Entries++
				return w.Add(Entry{Path: ipath, LinkTo: first})
			}
			links[k] = ipath
		}
		switch fi.Mode().Type() {
		case 0:
			e.Size = fi.Size()
			e.Open = func() (io.ReadCloser, error) { return rawfd.Open(p) }
		case fs.ModeSymlink:
			if e.Target, err = os.Readlink(p); err != nil {
				return err
			}
		case fs.ModeDevice, fs.ModeDevice | fs.ModeCharDevice:
			e.Rdev = uint64(sys.Rdev)
		}
		st.Entries++
		st.NewestModTime = max(st.NewestModTime, e.ModTime)
		return w.Add(e)
	})
	if err != nil {
		return st, fmt.Errorf("squashfs: adding %s: %w", dir, err)
	}
	return st, nil
}

// readXattrs returns p's xattrs that SquashFS can store, sorted by name.
func readXattrs(p string, warn func(string)) ([]Xattr, error) {
	buf := make([]byte, 1024)
	var n int
	var err error
	for {
		n, err = unix.Llistxattr(p, buf)
		if errors.Is(err, syscall.ERANGE) {
			buf = make([]byte, len(buf)*4)
			continue
		}
		break
	}
	if errors.Is(err, syscall.ENOTSUP) || errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
		return nil, nil
	}
	if err != nil {
		return nil, &fs.PathError{Op: "listxattr", Path: p, Err: err}
	}
	var out []Xattr
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		if name == "" {
			continue
		}
		if _, _, ok := SplitXattrName(name); !ok {
			if warn != nil {
				warn(fmt.Sprintf("%s: xattr %s cannot be stored in SquashFS, skipped", p, name))
			}
			continue
		}
		val := make([]byte, 256)
		for {
			k, err := unix.Lgetxattr(p, name, val)
			if errors.Is(err, syscall.ERANGE) {
				val = make([]byte, len(val)*4)
				continue
			}
			if err != nil {
				if warn != nil {
					warn(fmt.Sprintf("%s: reading xattr %s: %v, skipped", p, name, err))
				}
				val = nil
				break
			}
			val = val[:k]
			break
		}
		if val != nil {
			out = append(out, Xattr{Name: name, Value: val})
		}
	}
	return sortXattrs(out), nil
}
