package squashfs

import (
	"errors"
	"fmt"

	"github.com/imaforge/imaforge/squashfs/compinfo"
)

// Sentinel errors. Every *FormatError matches ErrFormat with errors.Is.
var (
	// ErrFormat marks a malformed or hostile image (any *FormatError).
	ErrFormat = errors.New("squashfs: malformed image")
	// ErrTruncated marks a record cut short by the end of its buffer.
	ErrTruncated = errors.New("squashfs: record truncated")
	// ErrUnsupportedCompression marks a compressor id this package cannot handle.
	ErrUnsupportedCompression = compinfo.ErrUnsupported
	// ErrSizeMismatch is returned when a regular file's content is not
	// exactly Entry.Size bytes long.
	ErrSizeMismatch = errors.New("squashfs: file size changed")
	// ErrClosed is returned by Writer methods called after Close.
	ErrClosed = errors.New("squashfs: writer closed")
)

// FormatError reports a malformed on-disk record, in the manner of
// debug/elf.FormatError: Off is the byte offset the problem was found at
// (in the image, or in the uncompressed metadata stream when Msg says so),
// Msg says what is wrong and Val, when not nil, is the offending value.
type FormatError struct {
	Off int64
	Msg string
	Val any
	Err error // optional cause (ErrTruncated, a decompressor error)
}

func (e *FormatError) Error() string {
	s := "squashfs: " + e.Msg
	if e.Val != nil {
		s += fmt.Sprintf(" '%v'", e.Val)
	}
	s += fmt.Sprintf(" at byte %#x", e.Off)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Is makes every FormatError match ErrFormat.
func (e *FormatError) Is(target error) bool { return target == ErrFormat }

// Unwrap returns the cause, if any.
func (e *FormatError) Unwrap() error { return e.Err }

// short returns the error for a record of kind what that needs need bytes but
// has only have at offset off.
func short(off int64, what string, need, have int) error {
	return &FormatError{Off: off, Msg: fmt.Sprintf("%s needs %d bytes, have %d", what, need, have), Err: ErrTruncated}
}
