package rootfs

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
)

// LsMode formats the type and mode like ls -l ("drwxr-xr-x", "-rwsr-xr-x").
func (e *Entry) LsMode() string {
	var b [10]byte
	b[0] = '?'
	switch e.Type {
	case TypeReg:
		b[0] = '-'
	case TypeSymlink:
		b[0] = 'l'
	case TypeBlock:
		b[0] = 'b'
	case TypeChar:
		b[0] = 'c'
	case TypeFifo:
		b[0] = 'p'
	case TypeSocket:
		b[0] = 's'
	case TypeDir:
		b[0] = 'd'
	}
	const rwx = "rwxrwxrwx"
	for i := 0; i < 9; i++ {
		if e.Mode&(1<<(8-i)) != 0 {
			b[1+i] = rwx[i]
		} else {
			b[1+i] = '-'
		}
	}
	special := func(bit uint32, at int, set, unset byte) {
		if e.Mode&bit != 0 {
			if b[at] == '-' {
				b[at] = unset
			} else {
				b[at] = set
			}
		}
	}
	special(0o4000, 3, 's', 'S')
	special(0o2000, 6, 's', 'S')
	special(0o1000, 9, 't', 'T')
	return string(b[:])
}

// WriteListing writes one line per entry, in tree order, like
// `unsquashfs -lls` without times: mode, uid/gid, size (or major,minor),
// path, symlink target, hard-link group and xattr names. It shows
// everything the tree puts into an image except file contents, so two
// trees with equal listings and equal contents give equal images.
func (t *Tree) WriteListing(w io.Writer) error {
	bw := bufio.NewWriter(w)
	for i := range t.Entries {
		e := &t.Entries[i]
		size := strconv.FormatInt(e.Size, 10)
		if e.Type == TypeChar || e.Type == TypeBlock {
			size = fmt.Sprintf("%d,%d", e.Major(), e.Minor())
		}
		fmt.Fprintf(bw, "%s %d/%d %s %s", e.LsMode(), e.UID, e.GID, size, strconv.Quote(e.Path))
		if e.Type == TypeSymlink {
			fmt.Fprintf(bw, " -> %s", strconv.Quote(e.Target()))
		}
		if e.Link() != 0 {
			fmt.Fprintf(bw, " link=%d", e.Link())
		}
		for _, x := range e.Xattrs() {
			fmt.Fprintf(bw, " %s=%x", x.Name, x.Value)
		}
		bw.WriteByte('\n')
	}
	return bw.Flush()
}
