package squashfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func fixtureBytes(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(fixtureDir, name+".sqsh"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestHostileSuperblock breaks one superblock field at a time: each must be
// refused by NewReader with a FormatError (or ErrUnsupportedCompression)
// that names the problem.
func TestHostileSuperblock(t *testing.T) {
	good := fixtureBytes(t, "tiny-gzip")
	var sb Superblock
	if err := sb.decode(good); err != nil {
		t.Fatal(err)
	}
	u16 := func(off int, v uint16) func([]byte) {
		return func(b []byte) { binary.LittleEndian.PutUint16(b[off:], v) }
	}
	u32 := func(off int, v uint32) func([]byte) {
		return func(b []byte) { binary.LittleEndian.PutUint32(b[off:], v) }
	}
	u64 := func(off int, v uint64) func([]byte) {
		return func(b []byte) { binary.LittleEndian.PutUint64(b[off:], v) }
	}
	for _, tc := range []struct {
		name  string
		patch func([]byte)
		want  string
		is    error
	}{
		{"magic", u32(0, 0x12345678), "bad magic", ErrFormat},
		{"no inodes", u32(4, 0), "no inodes", ErrFormat},
		{"block size", u32(12, 3000), "bad block size", ErrFormat},
		{"block size too big", u32(12, 2<<20), "bad block size", ErrFormat},
		{"block log", u16(22, 13), "block_log", ErrFormat},
		{"compressor", u16(20, 9), "unsupported compression", ErrUnsupportedCompression},
		{"no ids", u16(26, 0), "empty id table", ErrFormat},
		{"version", u16(28, 3), "unsupported version", ErrFormat},
		{"root offset", u64(32, sb.RootInode&^0xffff|9000), "root inode reference", ErrFormat},
		{"root block", u64(32, 0xffff_0000_0000), "root inode", ErrFormat},
		{"bytes used", u64(40, uint64(len(good))+1), "bytes_used", ErrFormat},
		{"id table past end", u64(48, sb.BytesUsed+8), "table offsets", ErrFormat},
		{"inode after directory", u64(64, sb.DirectoryTableStart+1), "table offsets", ErrFormat},
		{"fragment table past end", u64(80, sb.BytesUsed), "fragment table", ErrFormat},
		{"xattr table before directory", u64(56, 100), "xattr id table", ErrFormat},
		{"fragment count", u32(16, 1<<30), "fragment table of", ErrFormat},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := bytes.Clone(good)
			tc.patch(b)
			_, err := NewReader(bytes.NewReader(b), int64(len(b)))
			if err == nil {
				t.Fatal("hostile superblock accepted")
			}
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q (Is %v: %v), want one naming %q", err, tc.is, errors.Is(err, tc.is), tc.want)
			}
		})
	}
	for _, n := range []int{0, 50, SuperblockSize, len(good) / 2, int(sb.BytesUsed) - 1} {
		_, err := NewReader(bytes.NewReader(good[:n]), int64(n))
		if !errors.Is(err, ErrFormat) {
			t.Errorf("image cut to %d bytes: %v, want ErrFormat", n, err)
		}
	}
}

// plainImage returns tree-plain (made with -noI: inode and directory tables
// stored uncompressed, so records can be patched in place), a reader on it,
// and the image offset of the payload byte at a metadata-stream position.
func plainImage(t *testing.T) ([]byte, *Reader) {
	b := fixtureBytes(t, "tree-plain")
	r, err := NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	return b, r
}

// metaPos maps (block offset relative to reg, offset in the block) to an
// image offset, for an uncompressed block.
func metaPos(t *testing.T, r *Reader, reg region, block uint64, off int) int {
	blk, err := r.metaBlock(reg.start+block, reg.end)
	if err != nil {
		t.Fatal(err)
	}
	if off >= len(blk.data) {
		t.Fatalf("record crosses a metadata block")
	}
	return int(reg.start+block) + 2 + off
}

// findEntry returns the image offset of the directory entry name in dir's
// listing and of the header before it (the listing must sit in one block).
func findEntry(t *testing.T, b []byte, r *Reader, dir *inode, name string) (hdr, ent int) {
	p := metaPos(t, r, r.dirTable, uint64(dir.dirBlock), int(dir.dirOffset))
	end := p + int(dir.size) - 3
	for p < end {
		hdr = p
		count := int(binary.LittleEndian.Uint32(b[p:])) + 1
		p += DirHeaderSize
		for range count {
			n := int(binary.LittleEndian.Uint16(b[p+6:])) + 1
			if string(b[p+8:p+8+n]) == name {
				return hdr, p
			}
			p += DirEntrySize + n
		}
	}
	t.Fatalf("entry %q not found", name)
	return 0, 0
}

// TestHostileDirectoryLoop points dir/sub at dir itself (and at the root):
// Walk must stop with a FormatError instead of recursing forever, and path
// lookups through the loop stay bounded by the path's length.
func TestHostileDirectoryLoop(t *testing.T) {
	for _, target := range []string{"dir", "."} {
		t.Run(target, func(t *testing.T) {
			b, r := plainImage(t)
			dir, err := r.resolve("test", "dir", false)
			if err != nil {
				t.Fatal(err)
			}
			to, err := r.resolve("test", target, false)
			if err != nil {
				t.Fatal(err)
			}
			hdr, ent := findEntry(t, b, r, dir, "sub")
			blk, off := SplitRef(to.ref)
			binary.LittleEndian.PutUint32(b[hdr+4:], uint32(blk)) // the header's inode block
			binary.LittleEndian.PutUint16(b[ent:], off)
			base := binary.LittleEndian.Uint32(b[hdr+8:])
			binary.LittleEndian.PutUint16(b[ent+2:], uint16(int16(int64(to.number)-int64(base))))
			r2, err := NewReader(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				t.Fatal(err)
			}
			// The loop is reachable by path, one level per element.
			if fi, err := r2.Stat("dir/sub/dir/sub/dir/sub/hello.txt"); target == "." && err != nil {
				t.Errorf("lookup through the loop: %v, %v", fi, err)
			}
			var loopErr error
			visited := 0
			err = r2.Walk(".", func(p string, fi fs.FileInfo, err error) error {
				visited++
				if visited > 10000 {
					t.Fatal("walk does not terminate")
				}
				if err != nil && strings.Contains(err.Error(), "reached twice") {
					loopErr = err
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !errors.Is(loopErr, ErrFormat) {
				t.Errorf("walk over a loop: no FormatError reported (visited %d)", visited)
			}
		})
	}
}

// TestHostileInodes patches inode fields of tree-plain: absurd sizes and
// out-of-range references must give FormatErrors, quickly and without
// allocating what the fields claim.
func TestHostileInodes(t *testing.T) {
	find := func(t *testing.T, r *Reader, name string) (*inode, int) {
		in, err := r.resolve("test", name, false)
		if err != nil {
			t.Fatal(err)
		}
		blk, off := SplitRef(in.ref)
		return in, metaPos(t, r, r.inodeTable, blk, int(off))
	}
	for _, tc := range []struct {
		name, path string
		patch      func(b []byte, in *inode, p int)
		want       string
	}{
		{"file size 4 GiB", "hello.txt", func(b []byte, in *inode, p int) {
			// hello.txt has 3 links: an extended file inode; size at +24
			binary.LittleEndian.PutUint64(b[p+24:], 1<<32)
		}, ""},
		{"file size 2^60", "hello.txt", func(b []byte, in *inode, p int) {
			binary.LittleEndian.PutUint64(b[p+24:], 1<<60)
		}, "block list longer than the reader's limit"},
		{"uid index", "hello.txt", func(b []byte, in *inode, p int) {
			binary.LittleEndian.PutUint16(b[p+4:], 999)
		}, "uid/gid index"},
		{"inode number", "hello.txt", func(b []byte, in *inode, p int) {
			binary.LittleEndian.PutUint32(b[p+12:], 1<<30)
		}, "inode number outside"},
		{"inode type", "hello.txt", func(b []byte, in *inode, p int) {
			binary.LittleEndian.PutUint16(b[p:], 77)
		}, "bad inode type"},
		{"symlink length", "rel-link", func(b []byte, in *inode, p int) {
			binary.LittleEndian.PutUint32(b[p+20:], 1<<31)
		}, "symlink target too long"},
		{"xattr id", "hello.txt", func(b []byte, in *inode, p int) {
			binary.LittleEndian.PutUint32(b[p+52:], 12345)
		}, "xattr id outside"},
		{"directory size", "dir", func(b []byte, in *inode, p int) {
			if in.typ == TypeDir {
				binary.LittleEndian.PutUint16(b[p+24:], 0xffff) // runs into the next listings
			} else {
				binary.LittleEndian.PutUint32(b[p+20:], 1<<31)
			}
		}, "directory"},
		{"data block outside the image", "dir/compressible", func(b []byte, in *inode, p int) {
			binary.LittleEndian.PutUint32(b[p+16:], 1<<31) // basic file: start block
		}, "outside the data area"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, r := plainImage(t)
			in, p := find(t, r, tc.path)
			tc.patch(b, in, p)
			r2, err := NewReader(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				t.Fatal(err)
			}
			if tc.path == "dir" {
				_, err = r2.ReadDir(tc.path)
			} else {
				_, err = r2.ReadFile(tc.path)
			}
			if err == nil {
				_, err = r2.Xattrs(tc.path)
			}
			if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want a FormatError naming %q", err, tc.want)
			}
		})
	}
}

// TestHostileBytes flips every byte of a tiny image's tables (and a sample
// of its data) in turn: the reader may fail, but only with the documented
// kinds of error, and never panics or hangs.
func TestHostileBytes(t *testing.T) {
	for _, name := range []string{"tiny-gzip", "tiny-zstd", "tiny-lz4"} {
		t.Run(name, func(t *testing.T) {
			good := fixtureBytes(t, name)
			var sb Superblock
			if err := sb.decode(good); err != nil {
				t.Fatal(err)
			}
			step := 1
			if testing.Short() || name != "tiny-gzip" {
				step = 7
			}
			b := bytes.Clone(good)
			for i := 0; i < int(sb.BytesUsed); i++ {
				if i >= SuperblockSize && i < int(sb.InodeTableStart) && i%61 != 0 {
					continue // data blocks: a sample is enough
				}
				if i >= int(sb.InodeTableStart) && (i-int(sb.InodeTableStart))%step != 0 {
					continue
				}
				for _, x := range []byte{0xff, 0x01} {
					b[i] = good[i] ^ x
					r, err := NewReader(bytes.NewReader(b), int64(len(b)))
					if err != nil {
						checkErr(t, err)
					} else {
						exerciseReader(t, r)
					}
				}
				b[i] = good[i]
			}
		})
	}
}
