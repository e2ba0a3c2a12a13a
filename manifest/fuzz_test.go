package manifest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse checks that no input makes Parse panic or hang, that every
// error is positioned in the file, and that a manifest that parses keeps its
// promises: image paths absolute and clean, every rule's key defined.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "manifest", "*.yaml"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(base))
	f.Add([]byte("version: 1\nsources: [{from: a}]\nentries: [{path: /dev/x, type: block, major: 1, minor: 2}]\n"))
	f.Add([]byte("a: &x [*x, *x]\n"))
	f.Add([]byte("version: 1\nimage: {block_size: 1M, level: 3, compression: xz}\nsources: [{from: /}]\n"))
	f.Add([]byte("version: 1\nimage: {format: tar, evm_xattrs: [security.ima, security.SMACK64, [x]]}\nsources: [{from: /}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse("f.yaml", data)
		if err != nil {
			var list ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("error is not an ErrorList: %T %v", err, err)
			}
			for _, e := range list {
				if !strings.HasPrefix(e.Error(), "f.yaml") {
					t.Fatalf("error without the file name: %q", e.Error())
				}
			}
			return
		}
		for _, s := range m.Sources {
			if _, err := CleanImagePath(s.To); err != nil || !filepath.IsAbs(s.From) {
				t.Fatalf("source %+v passed validation", s)
			}
		}
		for _, e := range m.Entries {
			if cp, err := CleanImagePath(e.Path); err != nil || cp != e.Path {
				t.Fatalf("entry path %q passed validation", e.Path)
			}
		}
		for _, r := range m.Rules {
			if r.Signed() {
				if _, ok := m.Keys[r.Key]; !ok {
					t.Fatalf("rule with undefined key %q passed validation", r.Key)
				}
			}
		}
	})
}
