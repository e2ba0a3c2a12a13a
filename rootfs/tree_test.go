package rootfs

import (
	"testing"
	"unsafe"

	"github.com/imaforge/imaforge/manifest"
)

// TestEntrySize: a build holds one Entry per path to its end (a million
// files, a million entries), so it must not grow back (issue 22: 120 bytes
// before the extension record, 64 now, on 64-bit).
func TestEntrySize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("sizes are for 64-bit")
	}
	if got := unsafe.Sizeof(Entry{}); got > 64 {
		t.Errorf("Entry is %d bytes, want at most 64", got)
	}
}

// TestEntryExtShared: entries of one origin share one extension record,
// and a setter on one entry changes that entry only.
func TestEntryExtShared(t *testing.T) {
	b := &builder{}
	o1, o2 := &Origin{Kind: FromSource}, &Origin{Kind: FromEntry}
	a, c := b.newEntry("/a", TypeReg, o1), b.newEntry("/c", TypeReg, o1)
	if a.x != c.x {
		t.Fatal("two plain entries of one origin do not share their record")
	}
	a.SetTarget("t")
	a.SetDev(1, 2)
	a.SetLink(3)
	a.SetXattrs(manifest.Xattrs{{Name: "user.a", Value: []byte{1}}})
	if a.Target() != "t" || a.Major() != 1 || a.Minor() != 2 || a.Link() != 3 || len(a.Xattrs()) != 1 || a.Origin() != o1 {
		t.Errorf("a after setters: %q %d:%d link %d xattrs %v origin %v", a.Target(), a.Major(), a.Minor(), a.Link(), a.Xattrs(), a.Origin())
	}
	if c.Target() != "" || c.Major() != 0 || c.Minor() != 0 || c.Link() != 0 || c.Xattrs() != nil || c.Origin() != o1 {
		t.Errorf("a's setters changed c: %q %d:%d link %d xattrs %v", c.Target(), c.Major(), c.Minor(), c.Link(), c.Xattrs())
	}
	c.SetOrigin(o2)
	if a.Origin() != o1 || c.Origin() != o2 {
		t.Errorf("origins %v %v, want %v %v", a.Origin(), c.Origin(), o1, o2)
	}
	if d := b.newEntry("/d", TypeReg, o1); d.Origin() != o1 || d.Target() != "" || d.Link() != 0 {
		t.Errorf("a new entry of o1 took another's changes: %q link %d", d.Target(), d.Link())
	}
	var z Entry // made by hand: no record
	if z.Origin() != nil || z.Target() != "" || z.Xattrs() != nil || z.Rdev() != 0 {
		t.Error("the zero Entry has extension values")
	}
	z.SetXattrs(nil)
	if z.x != nil {
		t.Error("setting no xattrs on an entry without any made a record")
	}
}

// TestHostFileSize: a build holds a HostFile per host file until the file
// is read (at the start of a million-file build's data, all of them), so
// it must not grow back (issue 22: 64 bytes, the device in each, before;
// 48 now, on 64-bit).
func TestHostFileSize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("sizes are for 64-bit")
	}
	if got := unsafe.Sizeof(HostFile{}); got > 48 {
		t.Errorf("HostFile is %d bytes, want at most 48", got)
	}
	b := &builder{}
	r1, r2 := &hostRoot{}, &hostRoot{}
	if d1, d2 := b.device(r1, 1), b.device(r1, 1); d1 != d2 || d1.root != r1 || d1.dev != 1 {
		t.Error("two files of one source and device do not share its record")
	}
	if d, d1 := b.device(r1, 2), b.device(r1, 1); d == d1 || d.dev != 2 || d1.dev != 1 {
		t.Error("two devices of one source share a record")
	}
	if d := b.device(r2, 1); d.root != r2 || d == b.device(r1, 1) {
		t.Error("two sources on one device share a record")
	}
}
