package manifest

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/imaforge/imaforge/squashfs"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata")

// TestSchemaGolden keeps the published schema under review: a change to the
// types shows up as a diff of testdata/manifest/schema.json
// (go test ./manifest -run Schema -update rewrites it).
func TestSchemaGolden(t *testing.T) {
	golden := filepath.Join("..", "testdata", "manifest", "schema.json")
	got := Schema()
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("Schema() differs from %s; run go test ./manifest -run Schema -update and review the diff", golden)
	}
}

// fieldPaths lists every manifest field as a dotted path ("image.owner.uid",
// "sources[].from") by walking the Go types.
func fieldPaths(t reflect.Type, prefix string, out map[string]reflect.Type) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		if _, custom := reflect.PointerTo(t).MethodByName("decodeScalar"); custom {
			return
		}
		fields, _ := yamlFields(t)
		for name, i := range fields {
			p := name
			if prefix != "" {
				p = prefix + "." + name
			}
			out[p] = t.Field(i).Type
			fieldPaths(t.Field(i).Type, p, out)
		}
	case reflect.Slice:
		if t == reflect.TypeFor[Xattrs]() {
			return
		}
		fieldPaths(t.Elem(), prefix+"[]", out)
	case reflect.Map:
		fieldPaths(t.Elem(), prefix+".NAME", out)
	}
}

// schemaPaths lists the same paths from the generated JSON Schema.
func schemaPaths(s map[string]any, defs map[string]any, prefix string, out map[string]bool) {
	if ref, ok := s["$ref"].(string); ok {
		schemaPaths(defs[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any), defs, prefix, out)
		return
	}
	if all, ok := s["allOf"].([]any); ok {
		schemaPaths(all[0].(map[string]any), defs, prefix, out)
		return
	}
	if items, ok := s["items"].(map[string]any); ok {
		schemaPaths(items, defs, prefix+"[]", out)
	}
	if ap, ok := s["additionalProperties"].(map[string]any); ok {
		if _, isStr := ap["type"]; !isStr || s["propertyNames"] != nil && ap["type"] == nil {
			schemaPaths(ap, defs, prefix+".NAME", out)
		}
	}
	props, _ := s["properties"].(map[string]any)
	for name, sub := range props {
		p := name
		if prefix != "" {
			p = prefix + "." + name
		}
		out[p] = true
		if s["additionalProperties"] != false {
			panic("object without additionalProperties: false at " + prefix)
		}
		schemaPaths(sub.(map[string]any), defs, p, out)
	}
}

func TestSchemaMatchesTypes(t *testing.T) {
	var s map[string]any
	if err := json.Unmarshal(Schema(), &s); err != nil {
		t.Fatal(err)
	}
	if s["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
		t.Errorf("$schema = %v", s["$schema"])
	}
	types := map[string]reflect.Type{}
	fieldPaths(reflect.TypeFor[Manifest](), "", types)
	inSchema := map[string]bool{}
	schemaPaths(s, s["$defs"].(map[string]any), "", inSchema)
	for p := range types {
		if !inSchema[p] {
			t.Errorf("field %s is missing from the schema", p)
		}
	}
	for p := range inSchema {
		if _, ok := types[p]; !ok {
			t.Errorf("schema has %s, which the Go types do not", p)
		}
	}
	if len(types) < 50 {
		t.Errorf("only %d fields found", len(types))
	}
}

// TestDocsNameEveryField checks that docs/manifest.md documents every field.
func TestDocsNameEveryField(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "manifest.md"))
	if err != nil {
		t.Fatal(err)
	}
	types := map[string]reflect.Type{}
	fieldPaths(reflect.TypeFor[Manifest](), "", types)
	var missing []string
	for p := range types {
		if !bytes.Contains(doc, []byte("`"+p+"`")) {
			missing = append(missing, p)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("docs/manifest.md does not name (in backquotes) %s", strings.Join(missing, ", "))
	}
}

// compressorTable renders squashfs's compressor table as the Markdown table
// docs/manifest.md shows under image.level.
func compressorTable() string {
	var b strings.Builder
	b.WriteString("  | compressor | levels | default | meaning |\n  |---|---|---|---|\n")
	for _, ci := range squashfs.Compressors() {
		lv, def := "(no level)", ""
		if ci.TakesLevel() {
			lv, def = ci.LevelRange(), strconv.Itoa(ci.DefaultLevel)
		}
		fmt.Fprintf(&b, "  | %s | %s | %s | %s |\n", ci.Name, lv, def, ci.Levels)
	}
	return b.String()
}

// TestDocsCompressorTable: the compressor table of docs/manifest.md is the
// one the manifest validates with and the build uses (squashfs.Compressors);
// -update rewrites it in place.
func TestDocsCompressorTable(t *testing.T) {
	path := filepath.Join("..", "docs", "manifest.md")
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := compressorTable()
	if *update {
		start := bytes.Index(doc, []byte("  | compressor |"))
		end := bytes.Index(doc[start:], []byte("\n- "))
		if start < 0 || end < 0 {
			t.Fatal("docs/manifest.md: no compressor table to update")
		}
		doc = append(append(append([]byte(nil), doc[:start]...), want...), doc[start+end+1:]...)
		if err := os.WriteFile(path, doc, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Contains(doc, []byte(want)) {
		t.Errorf("docs/manifest.md lacks the compressor table of squashfs.Compressors (go test ./manifest -run DocsCompressor -update rewrites it):\n%s", want)
	}
}
