package policy

import (
	"errors"
	"fmt"
	"strings"
)

// ErrSyntax is wrapped by every error-severity [Diagnostic], so callers can
// test errors.Is(err, policy.ErrSyntax) on what [Parse] returns.
var ErrSyntax = errors.New("invalid IMA policy rule")

// Severity says whether the kernel rejects what a diagnostic is about.
type Severity uint8

// Severities.
const (
	// SeverityError: the kernel rejects the rule, and with it the whole policy write.
	SeverityError Severity = iota
	// SeverityWarning: the kernel accepts it, but it probably does not do what was meant.
	SeverityWarning
)

func (s Severity) String() string {
	if s == SeverityWarning {
		return "warning"
	}
	return "error"
}

// Diagnostic is one problem found in a policy file.
type Diagnostic struct {
	Pos      Pos
	Severity Severity
	Msg      string
}

// String renders "file:line:col: message", with "warning: " before the
// message of a warning.
func (d Diagnostic) String() string {
	if d.Severity == SeverityWarning {
		return fmt.Sprintf("%s: warning: %s", d.Pos, d.Msg)
	}
	return fmt.Sprintf("%s: %s", d.Pos, d.Msg)
}

// Error is a Diagnostic used as an error; it wraps [ErrSyntax].
type Error struct{ Diagnostic }

func (e *Error) Error() string { return e.Diagnostic.String() }
func (e *Error) Unwrap() error { return ErrSyntax }

// ErrorList is the error returned by [Parse] and [Fragment.Check]: every
// error-severity diagnostic, in file order.
type ErrorList []*Error

func (l ErrorList) Error() string {
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap returns the individual errors (errors.Is/As look through them).
func (l ErrorList) Unwrap() []error {
	out := make([]error, len(l))
	for i, e := range l {
		out[i] = e
	}
	return out
}

// Errors filters the error-severity diagnostics out of ds; nil when there are none.
func Errors(ds []Diagnostic) error {
	var l ErrorList
	for _, d := range ds {
		if d.Severity == SeverityError {
			l = append(l, &Error{d})
		}
	}
	if len(l) == 0 {
		return nil
	}
	return l
}
