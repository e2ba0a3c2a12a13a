package manifest

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// MaxSize bounds the size of a manifest file.
const MaxSize = 16 << 20

// Load reads, parses and validates the manifest file at path. Relative host
// paths in it are resolved against the file's directory. A problem in the
// manifest is returned as an ErrorList; a problem reading it as a *os.PathError.
func Load(path string) (*Manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", err)
	}
	return Parse(path, data)
}

// Parse parses and validates a manifest held in memory. name is used in
// error messages and its directory resolves relative host paths.
func Parse(name string, data []byte) (*Manifest, error) {
	dir, err := filepath.Abs(filepath.Dir(name))
	if err != nil {
		return nil, err
	}
	return parse(name, dir, data)
}

func parse(name, dir string, data []byte) (*Manifest, error) {
	c := &errs{file: name}
	if len(data) > MaxSize {
		c.add(Pos{}, ErrInvalid, "manifest is larger than %d bytes", MaxSize)
		return nil, c.err()
	}
	m := &Manifest{File: name, Dir: dir, Digest: sha256.Sum256(data)}

	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			c.add(Pos{Line: 1, Col: 1}, ErrMissing, "empty manifest")
		} else {
			c.addErr(syntaxPos(err), ErrSyntax, nil, "%s", syntaxMsg(err))
		}
		return nil, c.err()
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		c.add(pos(&extra), ErrUnsupported, "a manifest is one YAML document; found a second one")
		return nil, c.err()
	} else if !errors.Is(err, io.EOF) {
		c.addErr(syntaxPos(err), ErrSyntax, nil, "%s", syntaxMsg(err))
		return nil, c.err()
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if isNull(root) {
		c.add(pos(root), ErrMissing, "empty manifest")
		return nil, c.err()
	}
	if root.Kind != yaml.MappingNode {
		c.add(pos(root), ErrType, "manifest must be a mapping, not %s", kindName(root))
		return nil, c.err()
	}
	d := &decoder{errs: c, src: bytes.Split(data, []byte("\n"))}
	d.decode(root, reflect.ValueOf(m).Elem(), "manifest")
	decoded := len(c.list)
	validate(m, c)
	if decoded > 0 {
		// A value that failed to decode is left zero; drop what validation
		// then says about the same lines (a "required" for a field that
		// was written but wrong).
		lines := map[int]bool{}
		for _, e := range c.list[:decoded] {
			lines[e.Pos.Line] = true
		}
		kept := c.list[:decoded]
		for _, e := range c.list[decoded:] {
			if !lines[e.Pos.Line] {
				kept = append(kept, e)
			}
		}
		c.list = kept
	}
	sortErrors(c.list)
	if err := c.err(); err != nil {
		return nil, err
	}
	return m, nil
}

func sortErrors(l ErrorList) {
	sort.SliceStable(l, func(i, j int) bool {
		a, b := l[i].Pos, l[j].Pos
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): `)

// syntaxPos extracts the line yaml.v3 names in a syntax error; it gives no
// column.
func syntaxPos(err error) Pos {
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		n, _ := strconv.Atoi(m[1])
		return Pos{Line: n}
	}
	return Pos{Line: 1}
}

func syntaxMsg(err error) string {
	s := err.Error()
	if m := yamlLineRE.FindStringIndex(s); m != nil {
		return "YAML syntax: " + s[m[1]:]
	}
	return "YAML syntax: " + strings.TrimPrefix(s, "yaml: ")
}

// SetSourceDateEpoch applies the value of the SOURCE_DATE_EPOCH environment
// variable (https://reproducible-builds.org/specs/source-date-epoch/): when
// v is not empty it replaces image.epoch. The caller reads the environment.
func (m *Manifest) SetSourceDateEpoch(v string) error {
	if v == "" {
		return nil
	}
	e, err := strconv.ParseInt(v, 10, 64)
	if err != nil || e < 0 || e > maxEpoch {
		return fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a time from 0 to %d seconds: %w", v, int64(maxEpoch), ErrInvalid)
	}
	m.Image.Epoch = e
	m.Image.EpochFromEnv = true
	return nil
}

// Rule returns the first rule whose pattern matches the absolute image path.
func (m *Manifest) Rule(path string) (*Rule, bool) {
	for i := range m.Rules {
		if m.Rules[i].Match.Match(path) {
			return &m.Rules[i], true
		}
	}
	return nil, false
}

// RuleFor is Rule with an error naming the path when no rule matches; the
// error wraps ErrNoRule.
func (m *Manifest) RuleFor(path string) (*Rule, error) {
	if r, ok := m.Rule(path); ok {
		return r, nil
	}
	return nil, fmt.Errorf("%s: %w %s (every regular file needs a rule: add one, e.g. match: /** with sign: false)", m.File, ErrNoRule, path)
}

// Excluded reports whether an image path matches an exclude pattern.
func (m *Manifest) Excluded(path string) bool {
	for _, p := range m.Exclude {
		if p.Match(path) {
			return true
		}
	}
	return false
}

// Errorf returns an error positioned at p in the manifest, wrapping err's
// kinds: for packages that find problems with what a manifest field names
// (a source that does not exist, a key that does not load).
func (m *Manifest) Errorf(p Pos, err error, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if err != nil {
		return &Error{Filename: m.File, Pos: p, Err: fmt.Errorf("%s: %w", msg, err)}
	}
	return &Error{Filename: m.File, Pos: p, Err: errors.New(msg)}
}
