package verify

import (
	"context"
	"fmt"
	"io/fs"

	"golang.org/x/sys/unix"

	"github.com/imaforge/imaforge/imasig"
)

// Expected is what a build record says an image holds
// (pipeline.Record.Expected; docs/build.md, "The build record"): every
// path with its type, mode and owner, and each regular file's size and
// digest. Options.Record compares the image with it, so that a changed mode,
// owner, symlink or unsigned file is caught without an image signature.
type Expected struct {
	// Name names the record in the report (its file name).
	Name string
	// Hash is the algorithm of the entries' digests.
	Hash imasig.Hash
	// Entries lists every path of the image, in any order.
	Entries []Entry
}

// Entry is one path's metadata, as a record expects it or as the image
// holds it.
type Entry struct {
	Path string
	// Type is the st_mode file type (unix.S_IFREG, S_IFDIR, ...).
	Type uint32
	// Mode is the permission bits with setuid, setgid and sticky (07777).
	Mode     uint32
	UID, GID uint32
	// Size and Digest (hex, with Expected.Hash) are a regular file's; a
	// Size of -1 in a record is not recorded (the digest still is).
	Size   int64
	Digest string
	// Target is a symlink's target; Major and Minor a device's numbers.
	Target       string
	Major, Minor uint32
}

// TypeName names an st_mode file type as the build record does: "file",
// "dir", "symlink", "block", "char", "fifo", "socket".
func TypeName(t uint32) string {
	switch t {
	case unix.S_IFREG:
		return "file"
	case unix.S_IFDIR:
		return "dir"
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFBLK:
		return "block"
	case unix.S_IFCHR:
		return "char"
	case unix.S_IFIFO:
		return "fifo"
	case unix.S_IFSOCK:
		return "socket"
	}
	return fmt.Sprintf("type(%#o)", t)
}

// RecordReason is the machine-readable code of a difference between the
// image and its build record. The values are part of the JSON report.
type RecordReason string

// Differences between an image and its record.
const (
	RecordMissing    RecordReason = "missing"    // in the record, not in the image
	RecordExtra      RecordReason = "extra"      // in the image, not in the record
	RecordType       RecordReason = "type"       // another file type
	RecordMode       RecordReason = "mode"       // other permission, setuid, setgid or sticky bits
	RecordOwner      RecordReason = "owner"      // another uid or gid
	RecordSize       RecordReason = "size"       // a regular file of another size
	RecordDigest     RecordReason = "digest"     // a regular file with other content
	RecordTarget     RecordReason = "target"     // a symlink to another target
	RecordDevice     RecordReason = "device"     // a device with other numbers
	RecordUnreadable RecordReason = "unreadable" // content that could not be read to compare
)

// RecordProblem is one difference at one path.
type RecordProblem struct {
	Path    string       `json:"path"`
	Reason  RecordReason `json:"reason"`
	Message string       `json:"message"`
}

// RecordResult is the comparison of the image with its build record.
type RecordResult struct {
	Name string `json:"name,omitempty"`
	// Entries counts the record's paths, Image the image's.
	Entries int `json:"entries"`
	Image   int `json:"image"`
	// Problems lists the differences: the image's paths in image order,
	// then the paths missing from the image in record order.
	Problems []RecordProblem `json:"problems"`
}

// SetuidFile is a regular file of the image with the setuid or setgid bit.
type SetuidFile struct {
	Path string `json:"path"`
	Mode string `json:"mode"` // as ls -l shows it
	UID  uint32 `json:"uid"`
	GID  uint32 `json:"gid"`
	// Recorded: a build record was given and lists the file with this
	// mode and owner. Without it the file is a warning (no record given) or
	// a record problem.
	Recorded bool `json:"recorded"`
}

// entryOf returns an image entry's metadata from its fs.FileMode.
func entryOf(p string, m fs.FileMode, uid, gid uint32) Entry {
	um := unixMode(m)
	return Entry{Path: p, Type: um & unix.S_IFMT, Mode: um & 0o7777, UID: uid, GID: gid}
}

// recordDigest hashes a regular file with the record's algorithm, reusing
// the digest checkFile computed when the algorithms agree.
func (v *verifier) recordDigest(ctx context.Context, f *FileResult, name string) error {
	h := v.opts.Record.Hash
	if f.Digest != "" && f.hash == uint8(h) {
		f.recDigest = f.Digest
		return nil
	}
	if !h.Available() {
		f.recErr = fmt.Sprintf("hash algorithm %s is not available here", h)
		return nil
	}
	d, err := v.digest(ctx, h, name, nil)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		f.recErr = err.Error()
		return nil
	}
	f.recDigest = fmt.Sprintf("%x", d)
	return nil
}

// compareRecord compares the image's entries with the record and lists
// the setuid and setgid files.
func (v *verifier) compareRecord(rep *Report, image []Entry) {
	exp := v.opts.Record
	var want map[string]*Entry
	if exp != nil {
		want = make(map[string]*Entry, len(exp.Entries))
		for i := range exp.Entries {
			want[exp.Entries[i].Path] = &exp.Entries[i]
		}
	}
	files := make(map[string]*FileResult, len(rep.Files))
	for _, f := range rep.Files {
		files[f.Path] = f
		if f.perm&(unix.S_ISUID|unix.S_ISGID) != 0 {
			w := want[f.Path]
			ok := w != nil && w.Type == unix.S_IFREG && w.Mode == f.perm && w.UID == f.UID && w.GID == f.GID
			rep.Setuid = append(rep.Setuid, SetuidFile{Path: f.Path, Mode: f.Mode, UID: f.UID, GID: f.GID, Recorded: ok})
		}
	}
	if exp == nil {
		return
	}
	res := &RecordResult{Name: exp.Name, Entries: len(exp.Entries), Image: len(image), Problems: []RecordProblem{}}
	add := func(p string, r RecordReason, format string, args ...any) {
		res.Problems = append(res.Problems, RecordProblem{Path: p, Reason: r, Message: fmt.Sprintf(format, args...)})
	}
	seen := make(map[string]bool, len(image))
	for i := range image {
		e := &image[i]
		seen[e.Path] = true
		w, ok := want[e.Path]
		if !ok {
			note := ""
			if e.Type == unix.S_IFREG && e.Mode&(unix.S_ISUID|unix.S_ISGID) != 0 {
				note = ", a setuid/setgid file"
			}
			add(e.Path, RecordExtra, "%s %04o %d:%d is not in the record%s", TypeName(e.Type), e.Mode, e.UID, e.GID, note)
			continue
		}
		if w.Type != e.Type {
			add(e.Path, RecordType, "a %s, the record says %s", TypeName(e.Type), TypeName(w.Type))
			continue
		}
		if w.Mode != e.Mode {
			add(e.Path, RecordMode, "mode %04o, the record says %04o%s", e.Mode, w.Mode, modeNote(e.Mode, w.Mode))
		}
		if w.UID != e.UID || w.GID != e.GID {
			add(e.Path, RecordOwner, "owner %d:%d, the record says %d:%d", e.UID, e.GID, w.UID, w.GID)
		}
		switch e.Type {
		case unix.S_IFLNK:
			if w.Target != e.Target {
				add(e.Path, RecordTarget, "target %q, the record says %q", e.Target, w.Target)
			}
		case unix.S_IFBLK, unix.S_IFCHR:
			if w.Major != e.Major || w.Minor != e.Minor {
				add(e.Path, RecordDevice, "device %d:%d, the record says %d:%d", e.Major, e.Minor, w.Major, w.Minor)
			}
		case unix.S_IFREG:
			f := files[e.Path]
			switch {
			case w.Size >= 0 && w.Size != e.Size:
				add(e.Path, RecordSize, "%d bytes, the record says %d", e.Size, w.Size)
			case f == nil || f.recErr != "":
				msg := "not read"
				if f != nil {
					msg = f.recErr
				}
				add(e.Path, RecordUnreadable, "content not compared: %s", msg)
			case f.recDigest != w.Digest:
				add(e.Path, RecordDigest, "%s %s, the record says %s", exp.Hash, f.recDigest, w.Digest)
			}
		}
	}
	for i := range exp.Entries {
		if w := &exp.Entries[i]; !seen[w.Path] {
			add(w.Path, RecordMissing, "the record's %s %04o %d:%d is not in the image", TypeName(w.Type), w.Mode, w.UID, w.GID)
		}
	}
	rep.Record = res
}

// modeNote names the special bits that differ.
func modeNote(got, want uint32) string {
	d := got ^ want
	switch {
	case d&unix.S_ISUID != 0 && got&unix.S_ISUID != 0:
		return " (setuid added)"
	case d&unix.S_ISGID != 0 && got&unix.S_ISGID != 0:
		return " (setgid added)"
	}
	return ""
}
