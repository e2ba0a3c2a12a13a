package ceremony

import (
	"errors"
	"fmt"
)

var (
	// ErrFormat: a request, response, journal or sign_hash file is malformed.
	ErrFormat = errors.New("malformed ceremony file")
	// ErrSelfDigest: a document does not match the digest it names (it
	// was altered after it was written).
	ErrSelfDigest = errors.New("document does not match its own digest")
	// ErrMismatch: documents that must belong together do not (a response
	// for another request or manifest, a journal of another request, a key
	// that is not the request's).
	ErrMismatch = errors.New("ceremony files do not belong together")
)

// FileError is an error about a ceremony file, with the line when known.
type FileError struct {
	Path string
	Line int // 1-based; 0 when not about one line
	Err  error
}

func (e *FileError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %v", e.Path, e.Line, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Path, e.Err)
}

func (e *FileError) Unwrap() error { return e.Err }

func formatErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrFormat, fmt.Sprintf(format, args...))
}

// formatCause is formatErr for a malformed part (what, may be empty) whose
// cause err stays visible to errors.Is and errors.As.
func formatCause(what string, err error) error {
	if what == "" {
		return fmt.Errorf("%w: %w", ErrFormat, err)
	}
	return fmt.Errorf("%w: %s: %w", ErrFormat, what, err)
}
