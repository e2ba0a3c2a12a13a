package manifest

import (
	"errors"
	"fmt"
	"strings"
)

// Pos is a position in a manifest file. Line and Col are 1-based; a zero Col
// means the column is unknown (YAML syntax errors report only a line).
type Pos struct {
	Line int
	Col  int
}

// String formats p as "line:col", or "line" when the column is unknown.
func (p Pos) String() string {
	if p.Col > 0 {
		return fmt.Sprintf("%d:%d", p.Line, p.Col)
	}
	return fmt.Sprintf("%d", p.Line)
}

// Error is one problem in a manifest, printed as "file:line:col: message"
// (modelled on golang.org/x/mod/modfile.Error).
type Error struct {
	Filename string
	Pos      Pos
	Err      error
}

func (e *Error) Error() string {
	if e.Pos.Line == 0 {
		return fmt.Sprintf("%s: %v", e.Filename, e.Err)
	}
	return fmt.Sprintf("%s:%s: %v", e.Filename, e.Pos, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// ErrorList is every problem found in one manifest, in file order. It prints
// one error per line.
type ErrorList []*Error

func (l ErrorList) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Unwrap lets errors.Is and errors.As look at every error in the list.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// Kinds of manifest errors; every *Error wraps exactly one of them, so
// callers can test with errors.Is.
var (
	ErrSyntax        = errors.New("YAML syntax error")
	ErrUnknownField  = errors.New("unknown field")
	ErrType          = errors.New("wrong type")
	ErrInvalid       = errors.New("invalid value")
	ErrMissing       = errors.New("missing required field")
	ErrDuplicate     = errors.New("duplicate")
	ErrUndefinedKey  = errors.New("undefined key")
	ErrUnsupported   = errors.New("unsupported")
	ErrNoRule        = errors.New("no rule matches")
	ErrTooManyErrors = errors.New("too many errors")
)

// kindError carries its own message and reports itself as one of the
// sentinel kinds above.
type kindError struct {
	kind error
	msg  string
	err  error // optional cause
}

func (e *kindError) Error() string {
	if e.err != nil {
		return e.msg + ": " + e.err.Error()
	}
	return e.msg
}
func (e *kindError) Is(target error) bool { return target == e.kind }
func (e *kindError) Unwrap() error        { return e.err }

// maxErrors bounds how many errors one Parse reports.
const maxErrors = 50

// errs collects positioned errors for one file.
type errs struct {
	file string
	list ErrorList
}

func (c *errs) add(p Pos, kind error, format string, args ...any) {
	c.addErr(p, kind, nil, format, args...)
}

func (c *errs) addErr(p Pos, kind, cause error, format string, args ...any) {
	if len(c.list) == maxErrors {
		c.list = append(c.list, &Error{Filename: c.file, Pos: p, Err: &kindError{kind: ErrTooManyErrors, msg: "too many errors, stopping"}})
	}
	if len(c.list) > maxErrors {
		return
	}
	c.list = append(c.list, &Error{Filename: c.file, Pos: p, Err: &kindError{kind: kind, msg: fmt.Sprintf(format, args...), err: cause}})
}

func (c *errs) err() error {
	if len(c.list) == 0 {
		return nil
	}
	return c.list
}
