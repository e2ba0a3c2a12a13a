package manifest

import (
	"bytes"
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// The manifest is decoded from the yaml.v3 node tree by a strict decoder of
// our own rather than yaml.Decoder with KnownFields(true): it has the same
// rules (an unknown key is an error) but knows the line and column of every
// node, so each problem is reported at its place, and it goes on after an
// error to report the others. It also refuses anchors, aliases and merge
// keys, which a manifest has no use for and which can blow up in size.

// scalarDecoder is implemented by types parsed from one scalar's text.
type scalarDecoder interface {
	decodeScalar(n *yaml.Node) error
}

// nodeDecoder is implemented by types that decode any node themselves.
type nodeDecoder interface {
	decodeNode(d *decoder, n *yaml.Node)
}

type decoder struct {
	errs *errs
	src  [][]byte // the manifest's lines, for positions inside block scalars
}

// blockLines returns the position of each line of a literal block scalar's
// value: yaml.v3 places the node at its `|` indicator, and a literal block
// keeps every line, so value line i is source line n.Line+1+i; its column
// is the block's indentation (that of its first non-blank line) plus one.
// Anything else gives nil.
func (d *decoder) blockLines(n *yaml.Node) []Pos {
	if n.Kind != yaml.ScalarNode || n.Style&yaml.LiteralStyle == 0 || n.Line < 1 {
		return nil
	}
	count := strings.Count(n.Value, "\n")
	if !strings.HasSuffix(n.Value, "\n") {
		count++
	}
	indent := -1
	for l := n.Line; l < len(d.src) && l < n.Line+count; l++ { // d.src[l] is line l+1
		if t := bytes.TrimLeft(d.src[l], " "); len(bytes.TrimSpace(t)) > 0 {
			indent = len(d.src[l]) - len(t)
			break
		}
	}
	if indent < 0 {
		return nil
	}
	out := make([]Pos, count)
	for i := range out {
		out[i] = Pos{Line: n.Line + 1 + i, Col: indent + 1}
	}
	return out
}

func pos(n *yaml.Node) Pos { return Pos{Line: n.Line, Col: n.Column} }

var (
	locatedType = reflect.TypeFor[Located]()
)

// plain reports whether n may be decoded: no anchor, alias or custom tag.
func (d *decoder) plain(n *yaml.Node) bool {
	switch {
	case n.Kind == yaml.AliasNode:
		d.errs.add(pos(n), ErrUnsupported, "YAML aliases are not supported in a manifest")
		return false
	case n.Anchor != "":
		d.errs.add(pos(n), ErrUnsupported, "YAML anchors are not supported in a manifest")
		return false
	case n.Tag != "" && !strings.HasPrefix(n.Tag, "!!"):
		d.errs.add(pos(n), ErrUnsupported, "YAML tag %s is not supported in a manifest", n.Tag)
		return false
	}
	return true
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// kindName describes a node for error messages.
func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "a document"
}

// decode decodes n into the addressable value v, recording errors.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, what string) {
	if !d.plain(n) {
		return
	}
	if v.Kind() != reflect.Pointer && v.CanAddr() {
		if nd, ok := v.Addr().Interface().(nodeDecoder); ok {
			if !isNull(n) {
				nd.decodeNode(d, n)
			}
			return
		}
		if sd, ok := v.Addr().Interface().(scalarDecoder); ok {
			if isNull(n) {
				return
			}
			if n.Kind != yaml.ScalarNode {
				d.errs.add(pos(n), ErrType, "%s must be a scalar, not %s", what, kindName(n))
				return
			}
			if err := sd.decodeScalar(n); err != nil {
				d.errs.add(pos(n), ErrInvalid, "%s: %v", what, err)
			}
			return
		}
	}
	switch v.Kind() {
	case reflect.Pointer:
		if isNull(n) {
			return
		}
		e := reflect.New(v.Type().Elem())
		d.decode(n, e.Elem(), what)
		v.Set(e)
	case reflect.Struct:
		d.decodeStruct(n, v, what)
	case reflect.Slice:
		if isNull(n) {
			return
		}
		if n.Kind != yaml.SequenceNode {
			d.errs.add(pos(n), ErrType, "%s must be a list, not %s", what, kindName(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(c, s.Index(i), fmt.Sprintf("%s[%d]", what, i))
		}
		v.Set(s)
	case reflect.Map:
		d.decodeMap(n, v, what)
	case reflect.String:
		if isNull(n) {
			return
		}
		if n.Kind != yaml.ScalarNode {
			d.errs.add(pos(n), ErrType, "%s must be a string, not %s", what, kindName(n))
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			d.errs.add(pos(n), ErrType, "%s must be true or false, not %s", what, kindName(n))
			return
		}
		b, _ := strconv.ParseBool(n.Value)
		var yb bool
		if err := n.Decode(&yb); err == nil {
			b = yb
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Uint32:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
			d.errs.add(pos(n), ErrType, "%s must be an integer, not %s", what, kindName(n))
			return
		}
		var i int64
		if err := n.Decode(&i); err != nil {
			d.errs.add(pos(n), ErrInvalid, "%s: %s is out of range", what, n.Value)
			return
		}
		lo, hi := int64(math.MinInt64), int64(math.MaxInt64)
		if v.Kind() == reflect.Uint32 {
			lo, hi = 0, math.MaxUint32
		} else if v.Kind() == reflect.Int {
			lo, hi = math.MinInt32, math.MaxInt32
		}
		if i < lo || i > hi {
			d.errs.add(pos(n), ErrInvalid, "%s: %s is out of range %d..%d", what, n.Value, lo, hi)
			return
		}
		if v.Kind() == reflect.Uint32 {
			v.SetUint(uint64(i))
		} else {
			v.SetInt(i)
		}
	default:
		panic("manifest: no decoder for " + v.Type().String())
	}
}

// yamlFields maps the yaml keys of struct type t to field indexes.
func yamlFields(t reflect.Type) (map[string]int, []string) {
	m := map[string]int{}
	var names []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		m[name] = i
		names = append(names, name)
	}
	return m, names
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, what string) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errs.add(pos(n), ErrType, "%s must be a mapping, not %s", what, kindName(n))
		return
	}
	var loc *Located
	if f, ok := v.Type().FieldByName("Located"); ok && f.Type == locatedType {
		loc = v.FieldByIndex(f.Index).Addr().Interface().(*Located)
		loc.Pos = pos(n)
	}
	fields, names := yamlFields(v.Type())
	seen := map[string]Pos{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if !d.plain(k) {
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.errs.add(pos(k), ErrType, "keys in %s must be names, not %s", what, kindName(k))
			continue
		}
		if k.Value == "<<" && k.Tag == "!!merge" {
			d.errs.add(pos(k), ErrUnsupported, "YAML merge keys are not supported in a manifest")
			continue
		}
		if p, dup := seen[k.Value]; dup {
			d.errs.add(pos(k), ErrDuplicate, "%s already set at line %d", k.Value, p.Line)
			continue
		}
		seen[k.Value] = pos(k)
		idx, ok := fields[k.Value]
		if !ok {
			msg := fmt.Sprintf("unknown field %q in %s", k.Value, what)
			if s := suggest(k.Value, names); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			d.errs.add(pos(k), ErrUnknownField, "%s", msg)
			continue
		}
		if loc != nil {
			loc.setField(k.Value, pos(val))
			if ls := d.blockLines(val); ls != nil {
				if loc.lines == nil {
					loc.lines = map[string][]Pos{}
				}
				loc.lines[k.Value] = ls
			}
		}
		sub := k.Value
		if what != "manifest" {
			sub = what + "." + k.Value
		}
		d.decode(val, v.Field(idx), sub)
	}
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, what string) {
	if isNull(n) {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errs.add(pos(n), ErrType, "%s must be a mapping, not %s", what, kindName(n))
		return
	}
	m := reflect.MakeMap(v.Type())
	seen := map[string]Pos{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if !d.plain(k) {
			continue
		}
		if k.Kind != yaml.ScalarNode || isNull(k) {
			d.errs.add(pos(k), ErrType, "names in %s must be scalars, not %s", what, kindName(k))
			continue
		}
		if p, dup := seen[k.Value]; dup {
			d.errs.add(pos(k), ErrDuplicate, "%s %q already defined at line %d", what, k.Value, p.Line)
			continue
		}
		seen[k.Value] = pos(k)
		e := reflect.New(v.Type().Elem()).Elem()
		d.decode(val, e, what+"."+k.Value)
		m.SetMapIndex(reflect.ValueOf(k.Value), e)
	}
	v.Set(m)
}

// suggest returns the known name closest to s, if it is close enough to be a
// typo.
func suggest(s string, names []string) string {
	best, bestD := "", 3
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)
	for _, n := range sorted {
		if d := editDistance(s, n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
