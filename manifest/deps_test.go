package manifest

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/imaforge/imaforge/internal/testenv"
)

// TestLinksNoCgo: the manifest reads the compressor table from the cgo-free
// squashfs/compinfo, so validating a manifest links no module's C code,
// none of squashfs's C compressors (before, manifest imported squashfs and
// with it libzstd, zlib, liblzma and liblz4).
func TestLinksNoCgo(t *testing.T) {
	goTool := testenv.NeedTool(t, "go")
	cmd := exec.Command(goTool, "list", "-deps", "-f", "{{if .CgoFiles}}{{.ImportPath}}{{end}}", ".")
	cmd.Env = append(cmd.Environ(), "CGO_ENABLED=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	// The standard library's (net's resolver, runtime/cgo through
	// crypto/x509) have pure-Go fallbacks; a module's C code has none.
	for _, p := range strings.Fields(string(out)) {
		if first, _, _ := strings.Cut(p, "/"); strings.Contains(first, ".") {
			t.Errorf("manifest links %s, which uses cgo", p)
		}
	}
}
