package squashfs

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"strconv"
)

// ListOptions selects what List prints.
type ListOptions struct {
	// Long prints attributes as unsquashfs -lln -UTC does: mode string,
	// uid/gid, size (major,minor for devices), modification time in UTC,
	// the path, and "-> target" for symbolic links.
	Long bool
	// Xattrs prints each extended attribute on its own line after its entry:
	// a tab, the name, "=0x" and the value in lower-case hex.
	Xattrs bool
}

// List writes a listing of the whole image to w, one entry per line in
// on-disk order (depth first, sorted by name), each path starting with "/"
// (the root is "/"). Names are printed as stored, byte for byte, as
// unsquashfs prints them. On an error the entries listed so far are
// written before it is returned.
//
// With Long, each line matches unsquashfs -lln -UTC -d "" (squashfs-tools
// 4.5.1), except that the root is "/" rather than an empty name and that
// devices show the real major and minor numbers: unsquashfs prints rdev>>8
// and rdev&0xff, which differ for minors above 255.
func (z *Reader) List(w io.Writer, opt ListOptions) error {
	bw := bufio.NewWriter(w)
	err := z.Walk(".", func(p string, fi fs.FileInfo, err error) error {
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		name := "/"
		if p != "." {
			name += p
		}
		if opt.Long {
			bw.WriteString(LongLine(name, fi))
		} else {
			bw.WriteString(name)
		}
		bw.WriteByte('\n')
		if opt.Xattrs {
			if s, ok := fi.Sys().(*InodeInfo); ok {
				for _, x := range s.Xattrs {
					fmt.Fprintf(bw, "\t%s=0x%s\n", x.Name, hex.EncodeToString(x.Value))
				}
			}
		}
		return nil
	})
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	return err
}

// LongLine formats one entry as unsquashfs -lln -UTC does (without the
// newline); fi's Sys must be an *InodeInfo for owners and devices.
func LongLine(name string, fi fs.FileInfo) string {
	s, _ := fi.Sys().(*InodeInfo)
	if s == nil {
		s = &InodeInfo{}
	}
	owner := strconv.FormatUint(uint64(s.UID), 10) + "/" + strconv.FormatUint(uint64(s.GID), 10)
	b := make([]byte, 0, 80+len(name))
	b = append(b, ModeString(fi.Mode())...)
	b = append(b, ' ')
	b = append(b, owner...)
	b = append(b, ' ')
	// squashfs-tools unsquashfs.c print_filename: the owner and the size
	// column together take 25 characters.
	pad := 25 - len(owner) + 1
	if fi.Mode()&fs.ModeDevice != 0 {
		b = fmt.Appendf(b, "%*s%3d,%3d ", max(pad-7, 0), " ", s.Major, s.Minor)
	} else {
		b = fmt.Appendf(b, "%*d ", max(pad, 0), fi.Size())
	}
	b = fi.ModTime().UTC().AppendFormat(b, "2006-01-02 15:04")
	b = append(b, ' ')
	b = append(b, name...)
	if fi.Mode()&fs.ModeSymlink != 0 {
		b = append(b, " -> "...)
		b = append(b, s.Target...)
	}
	return string(b)
}

// ModeString renders a mode as ls -l and unsquashfs do: the type letter
// (- d l c b p s), then rwx triplets with s/S for setuid and setgid and t/T
// for sticky.
func ModeString(m fs.FileMode) string {
	b := []byte("----------")
	switch {
	case m&fs.ModeDir != 0:
		b[0] = 'd'
	case m&fs.ModeSymlink != 0:
		b[0] = 'l'
	case m&fs.ModeCharDevice != 0:
		b[0] = 'c'
	case m&fs.ModeDevice != 0:
		b[0] = 'b'
	case m&fs.ModeNamedPipe != 0:
		b[0] = 'p'
	case m&fs.ModeSocket != 0:
		b[0] = 's'
	}
	const rwx = "rwxrwxrwx"
	for i := range 9 {
		if m&(1<<(8-i)) != 0 {
			b[1+i] = rwx[i]
		}
	}
	special := func(i int, set bool, lower, upper byte) {
		if !set {
			return
		}
		if b[i] == '-' {
			b[i] = upper
		} else {
			b[i] = lower
		}
	}
	special(3, m&fs.ModeSetuid != 0, 's', 'S')
	special(6, m&fs.ModeSetgid != 0, 's', 'S')
	special(9, m&fs.ModeSticky != 0, 't', 'T')
	return string(b)
}
