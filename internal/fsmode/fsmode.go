// Package fsmode converts between Go's fs.FileMode and the 12 permission bits
// of a Unix mode (st_mode & 07777: rwx for user, group and other, and
// S_ISUID 04000, S_ISGID 02000, S_ISVTX 01000, as in POSIX <sys/stat.h>).
//
// fs.FileMode keeps setuid, setgid and sticky in high bits of its own
// (fs.ModeSetuid, fs.ModeSetgid, fs.ModeSticky), so every on-disk format with
// a Unix mode field (SquashFS inodes, tar headers, EVM's HMAC of i_mode)
// converts through here. The file type is not part of these bits: each
// format encodes it its own way.
package fsmode

import "io/fs"

// Unix bits of the special permissions (POSIX S_ISUID, S_ISGID, S_ISVTX).
const (
	setuid = 0o4000
	setgid = 0o2000
	sticky = 0o1000
)

// Perm returns the 12 Unix permission bits of m: its nine rwx bits and
// setuid, setgid and sticky. The type bits of m are ignored.
func Perm(m fs.FileMode) uint32 {
	out := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		out |= setuid
	}
	if m&fs.ModeSetgid != 0 {
		out |= setgid
	}
	if m&fs.ModeSticky != 0 {
		out |= sticky
	}
	return out
}

// FromPerm returns the fs.FileMode permission and special bits of the Unix
// mode bits perm (only its low 12 bits are read; no type bits are set).
func FromPerm(perm uint32) fs.FileMode {
	m := fs.FileMode(perm & 0o777)
	if perm&setuid != 0 {
		m |= fs.ModeSetuid
	}
	if perm&setgid != 0 {
		m |= fs.ModeSetgid
	}
	if perm&sticky != 0 {
		m |= fs.ModeSticky
	}
	return m
}
