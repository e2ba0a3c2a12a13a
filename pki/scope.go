package pki

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/bmatcuk/doublestar/v4"
)

// imaforge's private OID arc, derived without registration from the UUID
// 4d9011c1-b43d-4c49-8106-3b25347e2f99 under Microsoft's GUID-based arc
// 1.2.840.113556.1.8000.2554 (GUID aaaabbbb-cccc-dddd-eeee-ffffffgggggg ->
// .A.B.C.D.E.F.G, each chunk read as a hexadecimal integer).
//
// The same UUID as 2.25.103098606570847571222116701505933160345 (X.667) would
// be the obvious choice, but Go's crypto/x509 rejects any certificate that
// has an extension OID with an arc of 2^31 or more ("x509: malformed extension
// OID field"; TestGoRejects2_25ExtensionOID keeps the evidence), so every Go
// program, imaforge included, could not parse such certificates. Every arc
// here fits in 24 bits.
var oidImaforge = asn1.ObjectIdentifier{1, 2, 840, 113556, 1, 8000, 2554, 19856, 4545, 46141, 19529, 33030, 3876148, 8269721}

// OIDScope identifies the tenant scope extension:
//
//	id-imaforge-scope OBJECT IDENTIFIER ::= { id-imaforge 1 }
//	ImaforgeScope ::= SEQUENCE SIZE (1..MAX) OF UTF8String
//
// Each UTF8String is an absolute glob pattern over image paths (doublestar
// syntax: `*` and `?` within one path element, `**` across elements, `[...]`
// classes and `{a,b}` alternatives). The extension is non-critical: the
// kernel's x509_process_extension ignores extensions it does not know, and
// openssl accepts unknown non-critical extensions.
var OIDScope = append(append(asn1.ObjectIdentifier{}, oidImaforge...), 1)

// ErrScope reports a malformed scope pattern or extension.
var ErrScope = errors.New("invalid scope")

// Scope is the set of image paths a key may sign. A nil *Scope allows every
// path (a certificate without the extension is not restricted).
type Scope struct {
	patterns []string
}

// NewScope checks patterns and returns them as a Scope. Patterns must be
// absolute, clean (no `.`/`..` elements, no `//`, no trailing `/`), valid
// UTF-8 and valid globs.
func NewScope(patterns []string) (*Scope, error) {
	if len(patterns) == 0 {
		return nil, fmt.Errorf("%w: no patterns", ErrScope)
	}
	for _, p := range patterns {
		if err := checkPattern(p); err != nil {
			return nil, err
		}
	}
	return &Scope{patterns: append([]string(nil), patterns...)}, nil
}

func checkPattern(p string) error {
	switch {
	case !utf8.ValidString(p):
		return fmt.Errorf("%w: pattern %q is not UTF-8", ErrScope, p)
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("%w: pattern %q is not absolute (start it with /)", ErrScope, p)
	case p != "/" && path.Clean(p) != p:
		return fmt.Errorf("%w: pattern %q is not clean (want %q)", ErrScope, p, path.Clean(p))
	case !doublestar.ValidatePattern(p):
		return fmt.Errorf("%w: pattern %q is not a valid glob", ErrScope, p)
	}
	return nil
}

// Patterns returns the scope's patterns (nil for an unrestricted scope).
func (s *Scope) Patterns() []string {
	if s == nil {
		return nil
	}
	return append([]string(nil), s.patterns...)
}

// Allows reports whether the image path p may be signed under s. p is made
// absolute and cleaned first, so "opt/acme/x" and "/opt/acme/../acme/x" are
// judged as "/opt/acme/x".
func (s *Scope) Allows(p string) bool {
	if s == nil {
		return true
	}
	p = path.Clean("/" + p)
	for _, pat := range s.patterns {
		if ok, _ := doublestar.Match(pat, p); ok {
			return true
		}
	}
	return false
}

// Whole reports whether s allows every image path, so that a key under it
// may sign a whole image (a CMS signature over the image file, a dm-verity
// root hash, a RAUC bundle): s is unrestricted (nil) or has the pattern
// "/**". A whole-image signature covers every file, so a scope narrower
// than "/" must not make one.
func (s *Scope) Whole() bool {
	if s == nil {
		return true
	}
	for _, p := range s.patterns {
		if p == "/**" {
			return true
		}
	}
	return false
}

// String lists the patterns, or "*" for an unrestricted scope.
func (s *Scope) String() string {
	if s == nil {
		return "(unrestricted)"
	}
	return strings.Join(s.patterns, ", ")
}

// Extension encodes s as the non-critical OIDScope certificate extension.
func (s *Scope) Extension() (pkix.Extension, error) {
	if s == nil || len(s.patterns) == 0 {
		return pkix.Extension{}, fmt.Errorf("%w: no patterns", ErrScope)
	}
	value, err := marshalScope(s.patterns)
	if err != nil {
		return pkix.Extension{}, err
	}
	return pkix.Extension{Id: OIDScope, Critical: false, Value: value}, nil
}

func marshalScope(patterns []string) ([]byte, error) {
	elems := make([]asn1.RawValue, len(patterns))
	for i, p := range patterns {
		b, err := asn1.MarshalWithParams(p, "utf8")
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrScope, err)
		}
		elems[i] = asn1.RawValue{FullBytes: b}
	}
	return asn1.Marshal(elems)
}

// ParseScopeExtension decodes the DER value of an OIDScope extension. It
// accepts only the DER encoding imaforge writes (re-encoding must give the
// same bytes) and checks every pattern as NewScope does.
func ParseScopeExtension(der []byte) (*Scope, error) {
	var elems []asn1.RawValue
	rest, err := asn1.Unmarshal(der, &elems)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrScope, err)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrScope, len(rest))
	}
	patterns := make([]string, len(elems))
	for i, e := range elems {
		if e.Class != asn1.ClassUniversal || e.Tag != asn1.TagUTF8String || e.IsCompound {
			return nil, fmt.Errorf("%w: element %d is not a UTF8String", ErrScope, i+1)
		}
		patterns[i] = string(e.Bytes)
	}
	s, err := NewScope(patterns)
	if err != nil {
		return nil, err
	}
	again, err := marshalScope(patterns)
	if err != nil || !bytes.Equal(again, der) {
		return nil, fmt.Errorf("%w: not DER", ErrScope)
	}
	return s, nil
}

// ParseScope returns the scope carried by cert, or nil (unrestricted) when
// cert has no scope extension. It reads a scope marked critical too, but
// TrustStore.CheckSigner refuses such a certificate (crypto/x509 treats the
// extension as unhandled): imaforge writes it non-critical.
func ParseScope(cert *x509.Certificate) (*Scope, error) {
	var found *Scope
	for _, ext := range cert.Extensions {
		if !ext.Id.Equal(OIDScope) {
			continue
		}
		if found != nil {
			return nil, fmt.Errorf("%w: %s has two scope extensions", ErrScope, subjectOf(cert))
		}
		s, err := ParseScopeExtension(ext.Value)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", subjectOf(cert), err)
		}
		found = s
	}
	return found, nil
}

// subjectOf names a certificate in messages.
func subjectOf(c *x509.Certificate) string {
	if c == nil {
		return "<nil certificate>"
	}
	return fmt.Sprintf("%q", c.Subject.String())
}

// Within reports whether every path s allows is also allowed by outer (nil:
// unrestricted); when not, it returns the first pattern of s it cannot show
// to be covered. Glob inclusion is decided conservatively, after expanding
// {a,b} alternatives: a pattern is covered by an equal pattern, a literal
// path by any pattern matching it, and any pattern by "D/**" when its
// leading elements are D's (literally, or literal elements that D's glob
// elements match) and D has no "**" of its own. What this cannot show to be
// covered is refused, never assumed.
func (s *Scope) Within(outer *Scope) (string, bool) {
	if outer == nil || outer.Whole() {
		return "", true
	}
	if s == nil {
		return "/**", false
	}
	for _, p := range s.patterns {
		for _, alt := range expandBraces(p) {
			if !slices.ContainsFunc(outer.patterns, func(q string) bool { return patternCovers(q, alt) }) {
				return p, false
			}
		}
	}
	return "", true
}

// patternCovers reports whether every path matching p (no braces) matches
// the pattern q (which may have braces).
func patternCovers(q, p string) bool {
	for _, qa := range expandBraces(q) {
		if qa == p {
			return true
		}
		if !hasMeta(p) {
			if ok, _ := doublestar.Match(qa, p); ok {
				return true
			}
		}
		dir, ok := strings.CutSuffix(qa, "/**")
		if !ok || strings.Contains(dir, "**") {
			continue
		}
		ds, ps := splitPath(dir), splitPath(p)
		if len(ps) < len(ds) {
			continue
		}
		covered := true
		for i, d := range ds {
			if ps[i] == d {
				continue
			}
			if hasMeta(ps[i]) {
				covered = false
				break
			}
			if m, _ := path.Match(d, ps[i]); !m {
				covered = false
				break
			}
		}
		if covered {
			return true
		}
	}
	return false
}

func splitPath(p string) []string {
	p = strings.TrimPrefix(p, "/")
	if p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

func hasMeta(s string) bool { return strings.ContainsAny(s, `*?[{\`) }

// expandBraces expands the {a,b} alternatives of a doublestar pattern
// (nested ones too; a backslash escapes the next character).
func expandBraces(p string) []string {
	start, depth := -1, 0
	var commas []int
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '\\':
			i++
		case '{':
			if depth == 0 {
				start = i
			}
			depth++
		case ',':
			if depth == 1 {
				commas = append(commas, i)
			}
		case '}':
			if depth == 0 {
				continue
			}
			depth--
			if depth > 0 {
				continue
			}
			var out []string
			prev := start + 1
			for _, c := range append(commas, i) {
				for _, rest := range expandBraces(p[prev:c] + p[i+1:]) {
					out = append(out, p[:start]+rest)
				}
				prev = c + 1
			}
			return out
		}
	}
	return []string{p}
}
