package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imaforge/imaforge/manifest"
	"github.com/imaforge/imaforge/squashfs"
)

// TestOutputIsInput: an output that is, or whose sidecar is, an input is
// refused before anything is written, and the input keeps its bytes. Before,
// image.output: keys/mfr.key overwrote the signing key with the image
// (exit 0).
func TestOutputIsInput(t *testing.T) {
	for _, tt := range []struct{ output, victim, what string }{
		{"keys/mfr.key", "keys/mfr.key", "keys.manufacturer.key"},
		{"keys/ten.pem", "keys/ten.pem", "keys.tenant.cert"},
		{"m.yaml", "m.yaml", "the manifest"},
		{"src/etc/conf", "src/etc/conf", "sources["}, // also a file source
		{"src/usr/bin/tool", "src/usr/bin/tool", "a file of sources[0].from"},
		{"keys/mfr", "keys/mfr.key", ""},           // only the names beside it
		{"src", "src/etc/conf", "sources[0].from"}, // the source directory itself
		{"m.yaml.x/../m", "m.yaml", ""},            // not an input: m.record.json etc.
	} {
		t.Run(tt.output, func(t *testing.T) {
			p := newProject(t)
			writeTree(t, filepath.Join(p.dir, "src"), sortedPaths(false), 0o644)
			body := strings.Replace(fmt.Sprintf(manifestTmpl, "gzip", "src"), "output: out/img.sqsh", "output: "+tt.output, 1)
			if tt.what == "sources[" {
				body = strings.Replace(body, "  - from: src/\n    to: /\n", "  - from: src/\n    to: /\n  - from: src/etc/conf\n    to: /etc/conf2\n", 1)
			}
			m := p.manifest(t, "", "", body)
			before, err := os.ReadFile(filepath.Join(p.dir, tt.victim))
			integMust(t, err)
			_, err = build(t, m, 0)
			after, _ := os.ReadFile(filepath.Join(p.dir, tt.victim))
			if !bytes.Equal(before, after) {
				t.Fatalf("%s was overwritten", tt.victim)
			}
			if tt.what == "" {
				if tt.output == "keys/mfr" {
					// keys/mfr.key is not one of the names beside keys/mfr.
					if err != nil {
						t.Fatal(err)
					}
				}
				return
			}
			var me *manifest.Error
			if !errors.Is(err, ErrOutputIsInput) || !errors.As(err, &me) || !strings.Contains(err.Error(), tt.what) {
				t.Fatalf("err %v, want ErrOutputIsInput naming %s", err, tt.what)
			}
		})
	}
}

// TestOutputInsideSource: an image written inside its own source directory
// never packs itself, its record, its policy files or a killed build's
// temporary files. Before, the second build packed the first's image and
// record.
func TestOutputInsideSource(t *testing.T) {
	p := newProject(t)
	src := filepath.Join(p.dir, "src")
	writeTree(t, src, sortedPaths(false), 0o644)
	body := strings.Replace(fmt.Sprintf(manifestTmpl, "gzip", "src"), "output: out/img.sqsh", "output: src/img.sqsh", 1)
	m := p.manifest(t, "", "", body)
	for i := range 2 {
		// What a killed build leaves (the next build removes it, too).
		integMust(t, os.WriteFile(filepath.Join(src, ".img.sqsh.tmp-123"), []byte("partial"), 0o644))
		var notes []string
		res, err := Build(context.Background(), Options{Manifest: m, ToolVersion: "test", Logf: func(f string, a ...any) { notes = append(notes, fmt.Sprintf(f, a...)) }})
		if err != nil {
			t.Fatal(err)
		}
		img, err := squashfs.OpenReader(res.ImagePath)
		integMust(t, err)
		ents, err := img.ReadDir(".")
		integMust(t, err)
		var names []string
		for _, e := range ents {
			names = append(names, e.Name())
		}
		img.Close()
		if got := strings.Join(names, " "); got != "etc opt usr var" {
			t.Errorf("build %d: top of the image: %s", i, got)
		}
		if _, err := os.Stat(filepath.Join(src, ".img.sqsh.tmp-123")); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("build %d: the killed build's temporary file is still there", i)
		}
		if i == 1 && !strings.Contains(strings.Join(notes, "\n"), "img.sqsh is an output of this build: not packed") {
			t.Errorf("no note about the skipped outputs: %q", notes)
		}
	}
}

// TestKeyInSource: a source directory that would pack a private key file
// the manifest names is refused (or, with AllowKeyInSource, warned about);
// excluding the key makes it fine. Before, the key was packed and signed
// without a word.
func TestKeyInSource(t *testing.T) {
	p := newProject(t)
	writeTree(t, filepath.Join(p.dir, "keys"), []string{"etc/conf"}, 0o644)
	body := strings.Replace(fmt.Sprintf(manifestTmpl, "gzip", "keys"), "  - match: /var/**\n", "  - match: /var/**\n", 1)
	m := p.manifest(t, "", "", body)
	_, err := build(t, m, 0)
	if !errors.Is(err, ErrKeyInSource) || !strings.Contains(err.Error(), `key "manufacturer"`) || !strings.Contains(err.Error(), "as /mfr.key") {
		t.Fatalf("err %v, want ErrKeyInSource for mfr.key", err)
	}
	var warned []string
	if _, err := Build(context.Background(), Options{Manifest: m, ToolVersion: "test", AllowKeyInSource: true,
		Logf: func(f string, a ...any) { warned = append(warned, fmt.Sprintf(f, a...)) }}); err != nil {
		t.Fatal(err)
	}
	if w := strings.Join(warned, "\n"); !strings.Contains(w, "warning:") || !strings.Contains(w, "mfr.key") {
		t.Errorf("no warning: %q", warned)
	}
	m = p.manifest(t, "", "", body+"exclude: [/*.key]\n")
	if _, err := build(t, m, 0); err != nil {
		t.Fatalf("with the keys excluded: %v", err)
	}
}
