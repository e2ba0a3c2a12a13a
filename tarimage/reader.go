package tarimage

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/imaforge/imaforge/internal/countio"
)

// ErrFormat: the archive is not a tar archive this package can read (a
// broken header, a member type with no place in an image, a name outside
// the archive's root).
var ErrFormat = errors.New("not a readable tar archive")

// Member is one member of an archive as Open indexes it.
type Member struct {
	// Path is the absolute image path ("/usr/bin/sh").
	Path     string
	Typeflag byte
	// Mode is the member's permission bits with setuid, setgid, sticky
	// (0o7777 at most).
	Mode     uint32
	UID, GID uint32
	Size     int64
	Linkname string
	// Devmajor and Devminor are a device's numbers.
	Devmajor, Devminor uint32
	// Xattrs are the SCHILY.xattr records, by full name.
	Xattrs map[string][]byte
	off    int64 // data offset in the uncompressed archive
}

// Archive is an indexed tar archive: its members, and the content of its
// regular files through Open.
type Archive struct {
	Members     []Member
	Compression Compression
	data        io.ReaderAt
	byPath      map[string]int
	temp        *os.File
}

// Close releases the archive (the decompressed copy of a compressed one).
func (a *Archive) Close() error {
	if a.temp != nil {
		a.temp.Close()
		return os.Remove(a.temp.Name())
	}
	return nil
}

// Sniff reports whether r starts like a tar archive (the ustar magic at
// byte 257) or a gzip or zstd stream, which Open may read.
func Sniff(r io.ReaderAt) bool {
	var b [263]byte
	n, _ := r.ReadAt(b[:], 0)
	switch {
	case n >= 2 && b[0] == 0x1f && b[1] == 0x8b:
		return true
	case n >= 4 && bytes.Equal(b[:4], []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return true
	}
	return n == len(b) && string(b[257:262]) == "ustar"
}

// Open indexes the archive in r (size bytes): plain, gzip or zstd
// (recognised by their magic numbers). A compressed archive is decompressed
// once into a temporary file in tmpDir (empty: os.TempDir). Errors wrap
// ErrFormat with the member they are about.
func Open(r io.ReaderAt, size int64, tmpDir string) (*Archive, error) {
	var magic [4]byte
	n, _ := r.ReadAt(magic[:], 0)
	a := &Archive{data: r, byPath: map[string]int{}}
	var src io.Reader
	switch {
	case n >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		zr, err := gzip.NewReader(io.NewSectionReader(r, 0, size))
		if err != nil {
			return nil, fmt.Errorf("%w: gzip: %w", ErrFormat, err)
		}
		a.Compression, src = Gzip, zr
	case n == 4 && bytes.Equal(magic[:], []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(io.NewSectionReader(r, 0, size), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("%w: zstd: %w", ErrFormat, err)
		}
		defer zr.Close()
		a.Compression, src = Zstd, zr
	}
	if src != nil {
		f, err := os.CreateTemp(tmpDir, "imaforge-tar-*")
		if err != nil {
			return nil, err
		}
		a.temp, a.data = f, f
		if _, err := io.Copy(f, src); err != nil {
			a.Close()
			return nil, fmt.Errorf("%w: decompressing: %w", ErrFormat, err)
		}
		st, err := f.Stat()
		if err != nil {
			a.Close()
			return nil, err
		}
		size = st.Size()
	}
	if err := a.index(size); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

func (a *Archive) index(size int64) error {
	// archive/tar reads headers block by block without reading ahead, so
	// after Next the count is where the member's data starts.
	cr := &countio.Reader{R: io.NewSectionReader(a.data, 0, size)}
	tr := tar.NewReader(cr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%w: after member %d (byte %d): %w", ErrFormat, len(a.Members), cr.N, err)
		}
		p, err := imagePath(h.Name)
		if err != nil {
			return fmt.Errorf("%w: member %q: %w", ErrFormat, h.Name, err)
		}
		switch h.Typeflag {
		case tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		default:
			return fmt.Errorf("%w: member %q: type %q has no place in an image", ErrFormat, h.Name, h.Typeflag)
		}
		if h.Uid < 0 || h.Gid < 0 || int64(h.Uid) > 1<<32-1 || int64(h.Gid) > 1<<32-1 || h.Mode&^0o7777 != 0 {
			return fmt.Errorf("%w: member %q: owner %d:%d or mode %o out of range", ErrFormat, h.Name, h.Uid, h.Gid, h.Mode)
		}
		m := Member{Path: p, Typeflag: h.Typeflag, Mode: uint32(h.Mode), UID: uint32(h.Uid), GID: uint32(h.Gid),
			Size: h.Size, Linkname: h.Linkname, off: cr.N}
		if h.Typeflag == tar.TypeChar || h.Typeflag == tar.TypeBlock {
			if h.Devmajor < 0 || h.Devminor < 0 || h.Devmajor > 1<<32-1 || h.Devminor > 1<<32-1 {
				return fmt.Errorf("%w: member %q: device %d:%d out of range", ErrFormat, h.Name, h.Devmajor, h.Devminor)
			}
			m.Devmajor, m.Devminor = uint32(h.Devmajor), uint32(h.Devminor)
		}
		for k, v := range h.PAXRecords {
			if name, ok := strings.CutPrefix(k, PAXXattrPrefix); ok {
				if m.Xattrs == nil {
					m.Xattrs = map[string][]byte{}
				}
				m.Xattrs[name] = []byte(v)
			}
		}
		if h.Typeflag != tar.TypeReg {
			m.Size = 0
		}
		if _, dup := a.byPath[p]; dup {
			return fmt.Errorf("%w: member %q appears twice", ErrFormat, h.Name)
		}
		a.byPath[p] = len(a.Members)
		a.Members = append(a.Members, m)
	}
	return nil
}

// imagePath turns a member name ("./usr/bin/sh", "usr/bin/sh", "./") into
// an absolute clean path, refusing names that leave the root.
func imagePath(name string) (string, error) {
	n := strings.TrimSuffix(name, "/")
	if n == "." || n == "" {
		return "/", nil
	}
	n = strings.TrimPrefix(n, "./")
	if strings.HasPrefix(n, "/") {
		return "", errors.New("absolute name")
	}
	for _, el := range strings.Split(n, "/") {
		if el == ".." {
			return "", errors.New(`name with a ".." element`)
		}
	}
	return path.Clean("/" + n), nil
}

// Open returns the content of the regular file at the fs.FS name (no
// leading slash); hard links resolve to their target.
func (a *Archive) Open(name string) (fs.File, error) {
	i, ok := a.byPath[path.Clean("/"+name)]
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	m := a.Members[i]
	for hops := 0; m.Typeflag == tar.TypeLink && hops < 8; hops++ {
		p, err := imagePath(m.Linkname)
		j, ok := a.byPath[p]
		if err != nil || !ok {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		}
		m = a.Members[j]
	}
	if m.Typeflag != tar.TypeReg {
		return nil, &fs.PathError{Op: "open", Path: name, Err: errors.New("not a regular file")}
	}
	return &memberFile{SectionReader: io.NewSectionReader(a.data, m.off, m.Size)}, nil
}

// ReadFile returns a regular file's content.
func (a *Archive) ReadFile(name string) ([]byte, error) {
	f, err := a.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

type memberFile struct{ *io.SectionReader }

func (*memberFile) Stat() (fs.FileInfo, error) { return nil, errors.New("tarimage: no FileInfo") }
func (*memberFile) Close() error               { return nil }
