package squashfs

import (
	"bytes"
	"errors"
	"testing"
)

// recordCodecs decode one record from b and re-encode it.
var recordCodecs = map[string]func(b []byte) ([]byte, int, error){
	"superblock": func(b []byte) ([]byte, int, error) {
		var r Superblock
		err := r.decode(b)
		return r.appendTo(nil), SuperblockSize, err
	},
	"dir": func(b []byte) ([]byte, int, error) {
		var r DirInode
		n, err := r.decode(b, 0)
		return r.appendTo(nil), n, err
	},
	"extdir": func(b []byte) ([]byte, int, error) {
		var r ExtDirInode
		n, err := r.decode(b, 0)
		return r.appendTo(nil), n, err
	},
	"reg": func(b []byte) ([]byte, int, error) {
		var r RegInode
		n, err := r.decode(b, 0, 4096)
		return r.appendTo(nil), n, err
	},
	"extreg": func(b []byte) ([]byte, int, error) {
		var r ExtRegInode
		n, err := r.decode(b, 0, 4096)
		return r.appendTo(nil), n, err
	},
	"symlink": func(b []byte) ([]byte, int, error) {
		var r SymlinkInode
		n, err := r.decode(b, 0)
		return r.appendTo(nil), n, err
	},
	"dev": func(b []byte) ([]byte, int, error) {
		var r DevInode
		n, err := r.decode(b, 0)
		return r.appendTo(nil), n, err
	},
	"ipc": func(b []byte) ([]byte, int, error) {
		var r IPCInode
		n, err := r.decode(b, 0)
		return r.appendTo(nil), n, err
	},
	"dirheader": func(b []byte) ([]byte, int, error) {
		var r DirHeader
		n, err := r.decode(b, 0)
		return r.appendTo(nil), n, err
	},
	"direntry": func(b []byte) ([]byte, int, error) {
		var r DirEntry
		n, err := r.decode(b, 0)
		return r.appendTo(nil), n, err
	},
	"fragment": func(b []byte) ([]byte, int, error) {
		var r FragmentEntry
		n, err := r.decode(b, 0)
		return r.appendTo(nil), n, err
	},
	"xattrkey": func(b []byte) ([]byte, int, error) {
		var r XattrKey
		n, err := r.decode(b, 0)
		return r.appendTo(nil), n, err
	},
	"xattrvalue": func(b []byte) ([]byte, int, error) {
		var r XattrValue
		n, err := r.decode(b, 0)
		return r.appendTo(nil), n, err
	},
	"xattrid": func(b []byte) ([]byte, int, error) {
		var r XattrID
		n, err := r.decode(b, 0)
		return r.appendTo(nil), n, err
	},
	"xattridtable": func(b []byte) ([]byte, int, error) {
		var r XattrIDTable
		n, err := r.decode(b, 0)
		return r.appendTo(nil), n, err
	},
	"metaheader": func(b []byte) ([]byte, int, error) {
		var r MetadataHeader
		err := r.decode(b, 0)
		return r.appendTo(nil), 2, err
	},
	"gzipopts": func(b []byte) ([]byte, int, error) {
		var r GzipOptions
		n, err := r.decode(b, 0)
		return r.appendTo(nil), n, err
	},
	"xzopts": func(b []byte) ([]byte, int, error) {
		var r XZOptions
		n, err := r.decode(b, 0)
		return r.appendTo(nil), n, err
	},
	"lz4opts": func(b []byte) ([]byte, int, error) {
		var r LZ4Options
		n, err := r.decode(b, 0)
		return r.appendTo(nil), n, err
	},
	"zstdopts": func(b []byte) ([]byte, int, error) {
		var r ZstdOptions
		n, err := r.decode(b, 0)
		return r.appendTo(nil), n, err
	},
}

// TestRecordsKnownAnswer: records written by the writer decode to the same
// bytes, and every truncation is a FormatError, never a panic.
func TestRecordsKnownAnswer(t *testing.T) {
	hdr := InodeHeader{Mode: 0o755, UIDIndex: 1, GIDIndex: 2, ModTime: 3, Number: 4}
	h := func(ty InodeType) InodeHeader { x := hdr; x.Type = ty; return x }
	sb := Superblock{Magic: Magic, BlockSize: 4096, BlockLog: 12, Major: 4, Compression: Zstd, RootInode: 0x1234}
	cases := map[string][]byte{
		"superblock":   sb.appendTo(nil),
		"dir":          (&DirInode{InodeHeader: h(TypeDir), StartBlock: 9, Nlink: 2, FileSize: 3, Offset: 100, Parent: 7}).appendTo(nil),
		"extdir":       (&ExtDirInode{InodeHeader: h(TypeExtDir), Nlink: 3, FileSize: 9000, Index: []DirIndex{{Index: 8190, StartBlock: 4000, Name: []byte("name")}}, Xattr: 1}).appendTo(nil),
		"reg":          (&RegInode{InodeHeader: h(TypeReg), StartBlock: 96, Fragment: InvalidFragment, FileSize: 5000, Blocks: []uint32{100, 1<<24 | 904}}).appendTo(nil),
		"extreg":       (&ExtRegInode{InodeHeader: h(TypeExtReg), StartBlock: 1 << 33, FileSize: 4096*2 + 5, Sparse: 4096, Nlink: 2, Fragment: 0, Offset: 7, Xattr: 0, Blocks: []uint32{0, 77}}).appendTo(nil),
		"symlink":      (&SymlinkInode{InodeHeader: h(TypeExtSymlink), Nlink: 1, Target: []byte("target"), Xattr: 5}).appendTo(nil),
		"dev":          (&DevInode{InodeHeader: h(TypeCharDev), Nlink: 1, Rdev: EncodeDev(1, 3)}).appendTo(nil),
		"ipc":          (&IPCInode{InodeHeader: h(TypeExtFifo), Nlink: 1, Xattr: 2}).appendTo(nil),
		"dirheader":    (&DirHeader{Count: 255, StartBlock: 8, InodeNumber: 99}).appendTo(nil),
		"direntry":     (&DirEntry{Offset: 10, InodeDelta: -3, Type: TypeSocket, Name: []byte("x")}).appendTo(nil),
		"fragment":     (&FragmentEntry{StartBlock: 96, Size: MakeBlockSizeWord(100, false)}).appendTo(nil),
		"xattrkey":     (&XattrKey{Type: XattrSecurity | XattrValueOOL, Name: []byte("ima")}).appendTo(nil),
		"xattrvalue":   (&XattrValue{Value: []byte("value")}).appendTo(nil),
		"xattrid":      (&XattrID{Ref: 1 << 16, Count: 2, Size: 30}).appendTo(nil),
		"xattridtable": (&XattrIDTable{TableStart: 4096, IDs: 3}).appendTo(nil),
		"metaheader":   MetadataHeader{Size: 8192, Uncompressed: true}.appendTo(nil),
		"gzipopts":     (&GzipOptions{Level: 6, WindowSize: 15}).appendTo(nil),
		"xzopts":       (&XZOptions{DictionarySize: 1 << 17}).appendTo(nil),
		"lz4opts":      (&LZ4Options{Version: LZ4Legacy, Flags: LZ4HC}).appendTo(nil),
		"zstdopts":     (&ZstdOptions{Level: 19}).appendTo(nil),
	}
	for name, b := range cases {
		dec := recordCodecs[name]
		out, n, err := dec(b)
		if err != nil || n != len(b) || !bytes.Equal(out, b) {
			t.Errorf("%s: decode(%x) = %x, %d, %v", name, b, out, n, err)
		}
		for cut := range len(b) {
			if _, _, err := dec(b[:cut]); !errors.Is(err, ErrFormat) {
				t.Errorf("%s cut to %d bytes: %v, want a FormatError", name, cut, err)
			}
		}
	}
	if maj, min := DecodeDev(EncodeDev(259, 70000)); maj != 259 || min != 70000 {
		t.Errorf("dev round trip: %d:%d", maj, min)
	}
}

// FuzzRecords: no record decoder panics, and whatever decodes re-encodes to
// the same bytes (no two encodings of one record).
func FuzzRecords(f *testing.F) {
	for _, seed := range [][]byte{
		make([]byte, 96),
		{2, 0, 0xed, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 96, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0, 10, 0, 0, 0, 5, 0, 0, 0},
		{10, 0, 0, 0, 0, 0, 2, 0, 1, 0, 3, 0, 'a', 'b', 'c'},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for name, dec := range recordCodecs {
			out, n, err := dec(b)
			if err != nil {
				continue
			}
			if !bytes.Equal(out, b[:n]) {
				t.Errorf("%s: %x re-encodes to %x", name, b[:n], out)
			}
		}
	})
}
