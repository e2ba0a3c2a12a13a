package pipeline

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"unsafe"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/internal/testenv"
	"github.com/imaforge/imaforge/internal/testkeys"
	"github.com/imaforge/imaforge/manifest"
	"github.com/imaforge/imaforge/rootfs"
	"github.com/imaforge/imaforge/signer"
	"github.com/imaforge/imaforge/squashfs"
)

// project is a manifest directory with keys and a source tree.
type project struct {
	dir      string
	mfr, ten *testkeys.Key
}

const manifestTmpl = `version: 1
image:
  output: out/img.sqsh
  compression: %s
  block_size: 4K
  epoch: 1700000000
  owner: {uid: 0, gid: 0}
hash: sha256
keys:
  manufacturer: {cert: keys/mfr.pem, key: keys/mfr.key}
  tenant: {cert: keys/ten.pem, key: keys/ten.key}
sources:
  - from: %s/
    to: /
rules:
  - match: /opt/tenant/**
    key: tenant
  - match: /var/**
    sign: false
  - match: /**
    key: manufacturer
`

func newProject(t *testing.T) *project {
	t.Helper()
	dir := t.TempDir()
	p := &project{
		dir: dir,
		mfr: testkeys.New(t, filepath.Join(dir, "keys"), "mfr", "rsa2048"),
		ten: testkeys.New(t, filepath.Join(dir, "keys"), "ten", "p256"),
	}
	return p
}

// files is the source tree of the tests: path -> content.
var files = map[string]string{
	"usr/bin/tool":        strings.Repeat("tool binary\n", 1000),
	"usr/bin/same":        strings.Repeat("tool binary\n", 1000), // a duplicate
	"usr/lib/empty":       "",
	"etc/conf":            "key=value\n",
	"opt/tenant/bin/app":  strings.Repeat("app", 5000),
	"opt/tenant/bin/copy": strings.Repeat("tool binary\n", 1000), // same bytes, another key
	"var/log/boot.log":    "booted\n",
}

// writeTree creates files under root, in the given order of paths.
func writeTree(t *testing.T, root string, order []string, perm fs.FileMode) {
	t.Helper()
	for _, p := range order {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(files[p]), perm); err != nil {
			t.Fatal(err)
		}
	}
}

func sortedPaths(reverse bool) []string {
	var ps []string
	for p := range files {
		ps = append(ps, p)
	}
	// a simple insertion sort keeps the test free of sort import games
	for i := 1; i < len(ps); i++ {
		for j := i; j > 0 && (ps[j] < ps[j-1]) != reverse; j-- {
			ps[j], ps[j-1] = ps[j-1], ps[j]
		}
	}
	return ps
}

func (p *project) manifest(t *testing.T, comp, src, body string) *manifest.Manifest {
	t.Helper()
	if body == "" {
		body = fmt.Sprintf(manifestTmpl, comp, src)
	}
	path := filepath.Join(p.dir, "m.yaml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := manifest.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func build(t *testing.T, m *manifest.Manifest, workers int) (*Result, error) {
	t.Helper()
	return Build(context.Background(), Options{Manifest: m, ToolVersion: "test", Workers: workers})
}

func TestBuildSignsWithTheRuleKey(t *testing.T) {
	p := newProject(t)
	writeTree(t, filepath.Join(p.dir, "src"), sortedPaths(false), 0o755)
	m := p.manifest(t, "zstd", "src", "")
	res, err := build(t, m, 0)
	if err != nil {
		t.Fatal(err)
	}
	if res.Files != len(files) || res.Signed != len(files)-1 {
		t.Errorf("files %d signed %d, want %d and %d", res.Files, res.Signed, len(files), len(files)-1)
	}
	// tool and same share a digest and a key: one signature for both.
	if res.Signatures != len(files)-2 {
		t.Errorf("unique signatures %d, want %d", res.Signatures, len(files)-2)
	}

	img := openImage(t, res.ImagePath)
	want := map[string]*x509.Certificate{}
	for path := range files {
		switch {
		case strings.HasPrefix(path, "var/"):
			want["/"+path] = nil
		case strings.HasPrefix(path, "opt/tenant/"):
			want["/"+path] = p.ten.Cert
		default:
			want["/"+path] = p.mfr.Cert
		}
	}
	for path, cert := range want {
		data, err := img.ReadFile(strings.TrimPrefix(path, "/"))
		if err != nil {
			t.Fatal(err)
		}
		if string(data) != files[path[1:]] {
			t.Errorf("%s: content differs", path)
		}
		value := imaXattr(t, img, path)
		if cert == nil {
			if value != nil {
				t.Errorf("%s: unsigned by its rule but has security.ima %x", path, value)
			}
			continue
		}
		digest, _ := imasig.DigestReader(imasig.SHA256, bytes.NewReader(data))
		if err := imasig.Verify(value, digest, cert); err != nil {
			t.Errorf("%s: %v", path, err)
		}
		other := p.mfr.Cert
		if cert == p.mfr.Cert {
			other = p.ten.Cert
		}
		if err := imasig.Verify(value, digest, other); err == nil {
			t.Errorf("%s: signature verifies with the key its rule does not name", path)
		}
	}

	// The record names every file with its key.
	rec := res.Record
	if len(rec.Files) != 0 {
		t.Errorf("a build's record holds %d files: they are made while it is written", len(rec.Files))
	}
	if got := rec.FileList(); len(got) != len(files) {
		t.Fatalf("record lists %d files, want %d", len(got), len(files))
	}
	for _, f := range rec.FileList() {
		switch c := want[f.Path]; {
		case c == nil && f.Key != "":
			t.Errorf("record: %s has key %q, want none", f.Path, f.Key)
		case c == p.mfr.Cert && f.Key != "manufacturer", c == p.ten.Cert && f.Key != "tenant":
			t.Errorf("record: %s has key %q", f.Path, f.Key)
		}
	}
	onDisk, err := os.ReadFile(res.RecordPath)
	if err != nil {
		t.Fatal(err)
	}
	if enc, _ := rec.Marshal(); !bytes.Equal(enc, onDisk) {
		t.Error("record on disk differs from the returned record")
	}
}

func imaXattr(t *testing.T, img *squashfs.ReadCloser, path string) []byte {
	t.Helper()
	xs, err := img.Xattrs(strings.TrimPrefix(path, "/"))
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range xs {
		if x.Name == imasig.XattrName {
			return x.Value
		}
	}
	return nil
}

// TestBuildEvmctlVerifies is the peer's judgement: every signature in the
// image, written out as evmctl's .sig convention next to the content read
// back from the image, verifies with evmctl and the certificate its rule names.
func TestBuildEvmctlVerifies(t *testing.T) {
	evmctl := testenv.NeedTool(t, "evmctl")
	p := newProject(t)
	writeTree(t, filepath.Join(p.dir, "src"), sortedPaths(false), 0o755)
	res, err := build(t, p.manifest(t, "gzip", "src", ""), 0)
	if err != nil {
		t.Fatal(err)
	}
	img := openImage(t, res.ImagePath)
	x := t.TempDir()
	checked := 0
	for path := range files {
		if strings.HasPrefix(path, "var/") {
			continue
		}
		data, err := img.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(x, strings.ReplaceAll(path, "/", "_"))
		if err := os.WriteFile(f, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f+".sig", imaXattr(t, img, "/"+path), 0o644); err != nil {
			t.Fatal(err)
		}
		cert := p.mfr.DERPath
		if strings.HasPrefix(path, "opt/tenant/") {
			cert = p.ten.DERPath
		}
		out, err := exec.Command(evmctl, "ima_verify", "--sigfile", "--key", cert, f).CombinedOutput()
		if err != nil {
			t.Errorf("evmctl rejects %s: %v\n%s", path, err, out)
		}
		checked++
	}
	if checked != len(files)-1 {
		t.Fatalf("checked %d files", checked)
	}
}

// TestBuildReproducible builds the same sources twice (identical image and
// record bytes), then from a copy created in the opposite order with other
// mtimes, other owners (image.owner normalizes them), under umask 077 and
// GOMAXPROCS=1 instead of 2 workers: the same image and the same record.
func TestBuildReproducible(t *testing.T) {
	for _, comp := range []string{"zstd", "gzip", "xz", "lz4", "none"} {
		t.Run(comp, func(t *testing.T) {
			p := newProject(t)
			writeTree(t, filepath.Join(p.dir, "a"), sortedPaths(false), 0o755)
			writeTree(t, filepath.Join(p.dir, "b"), sortedPaths(true), 0o755)
			filepath.WalkDir(filepath.Join(p.dir, "b"), func(path string, d fs.DirEntry, err error) error {
				if os.Geteuid() == 0 {
					os.Lchown(path, 1234, 5678)
				}
				return os.Chtimes(path, d2001, d2001)
			})
			ra, err := build(t, p.manifest(t, comp, "a", ""), 2)
			if err != nil {
				t.Fatal(err)
			}
			imgA, _ := os.ReadFile(ra.ImagePath)
			recA, _ := os.ReadFile(ra.RecordPath)

			again, err := build(t, p.manifest(t, comp, "a", ""), 2)
			if err != nil {
				t.Fatal(err)
			}
			imgA2, _ := os.ReadFile(again.ImagePath)
			recA2, _ := os.ReadFile(again.RecordPath)
			if !bytes.Equal(imgA, imgA2) || !bytes.Equal(recA, recA2) {
				t.Error("two builds of the same sources differ")
			}

			old := syscall.Umask(0o077)
			procs := runtime.GOMAXPROCS(1)
			rb, err := build(t, p.manifest(t, comp, "b", ""), 0)
			runtime.GOMAXPROCS(procs)
			syscall.Umask(old)
			if err != nil {
				t.Fatal(err)
			}
			imgB, _ := os.ReadFile(rb.ImagePath)
			recB, _ := os.ReadFile(rb.RecordPath)
			if !bytes.Equal(imgA, imgB) {
				t.Error("images differ")
			}
			// The manifests differ in their source path, so compare the
			// records without the manifest digest.
			ra.Record.Manifest, rb.Record.Manifest = RecordManifest{}, RecordManifest{}
			ea, _ := ra.Record.Marshal()
			eb, _ := rb.Record.Marshal()
			if !bytes.Equal(ea, eb) {
				t.Errorf("records differ:\n%s\n%s", recA, recB)
			}
		})
	}
}

// TestBuildErrors: bad input fails with an error naming what is wrong and
// leaves no output behind.
func TestBuildErrors(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, p *project) string // returns the manifest text
		want  []string                              // substrings of the error
		is    error
	}{
		{
			name: "missing source",
			setup: func(t *testing.T, p *project) string {
				return fmt.Sprintf(manifestTmpl, "zstd", "nosuchdir")
			},
			want: []string{"m.yaml:", "nosuchdir"},
		},
		{
			name: "file matching no rule",
			setup: func(t *testing.T, p *project) string {
				writeTree(t, filepath.Join(p.dir, "src"), sortedPaths(false), 0o644)
				s := fmt.Sprintf(manifestTmpl, "zstd", "src")
				return strings.Replace(s, "  - match: /**\n    key: manufacturer\n", "  - match: /usr/**\n    key: manufacturer\n", 1)
			},
			want: []string{"/etc/conf"},
			is:   manifest.ErrNoRule,
		},
		{
			name: "key does not match its certificate",
			setup: func(t *testing.T, p *project) string {
				writeTree(t, filepath.Join(p.dir, "src"), sortedPaths(false), 0o644)
				s := fmt.Sprintf(manifestTmpl, "zstd", "src")
				return strings.Replace(s, "cert: keys/mfr.pem", "cert: keys/ten.pem", 1)
			},
			want: []string{"m.yaml:", "manufacturer", "mfr.key"},
			is:   signer.ErrKeyMismatch,
		},
		{
			name: "two sources, one path, two types",
			setup: func(t *testing.T, p *project) string {
				writeTree(t, filepath.Join(p.dir, "src"), sortedPaths(false), 0o644)
				if err := os.MkdirAll(filepath.Join(p.dir, "src2", "etc", "conf"), 0o755); err != nil {
					t.Fatal(err)
				}
				s := fmt.Sprintf(manifestTmpl, "zstd", "src")
				return strings.Replace(s, "rules:", "  - from: src2/\n    to: /\nrules:", 1)
			},
			want: []string{"/etc/conf"},
			is:   rootfs.ErrTypeConflict,
		},
		{
			name: "symlink loop as a source",
			setup: func(t *testing.T, p *project) string {
				os.Symlink("loop", filepath.Join(p.dir, "loop"))
				s := fmt.Sprintf(manifestTmpl, "zstd", "src")
				return strings.Replace(s, "from: src/", "from: loop/", 1)
			},
			want: []string{"loop"},
		},
		{
			name: "name with /..",
			setup: func(t *testing.T, p *project) string {
				writeTree(t, filepath.Join(p.dir, "src"), sortedPaths(false), 0o644)
				s := fmt.Sprintf(manifestTmpl, "zstd", "src")
				return strings.Replace(s, "rules:", "  - from: src/etc/conf\n    to: /etc/../../x\nrules:", 1)
			},
			want: []string{"m.yaml:", ".."},
		},
		{
			name: "malformed YAML",
			setup: func(t *testing.T, p *project) string {
				return "version: 1\nimage: [\n"
			},
			want: []string{"m.yaml:"},
			is:   manifest.ErrSyntax,
		},
		{
			name: "unknown field",
			setup: func(t *testing.T, p *project) string {
				s := fmt.Sprintf(manifestTmpl, "zstd", "src")
				return strings.Replace(s, "compression:", "comprssion:", 1)
			},
			want: []string{"m.yaml:4:3", "comprssion"},
			is:   manifest.ErrUnknownField,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newProject(t)
			text := tt.setup(t, p)
			path := filepath.Join(p.dir, "m.yaml")
			if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			m, err := manifest.Load(path)
			if err == nil {
				_, err = build(t, m, 0)
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %q is not %v", err, tt.is)
			}
			assertNoOutput(t, p)
		})
	}
}

func assertNoOutput(t *testing.T, p *project) {
	t.Helper()
	ents, _ := os.ReadDir(filepath.Join(p.dir, "out"))
	for _, e := range ents {
		t.Errorf("output left behind: out/%s", e.Name())
	}
}

// modifyingProgress changes a file that has not been read yet when the
// first file has been read: the build must notice.
type modifyingProgress struct {
	victim string
	done   bool
}

func (m *modifyingProgress) Start(int, int64) {}
func (m *modifyingProgress) Done()            {}
func (m *modifyingProgress) Add(int, int64) {
	if !m.done {
		m.done = true
		f, _ := os.OpenFile(m.victim, os.O_APPEND|os.O_WRONLY, 0)
		f.WriteString("changed")
		f.Close()
	}
}

func TestBuildFileModifiedDuringBuild(t *testing.T) {
	p := newProject(t)
	writeTree(t, filepath.Join(p.dir, "src"), sortedPaths(false), 0o644)
	m := p.manifest(t, "zstd", "src", "")
	// Files are read in sorted path order: /etc/conf first, /var/log/boot.log last.
	prog := &modifyingProgress{victim: filepath.Join(p.dir, "src", "var", "log", "boot.log")}
	_, err := Build(context.Background(), Options{Manifest: m, Workers: 1, Progress: prog})
	if !errors.Is(err, rootfs.ErrModified) {
		t.Fatalf("error %v, want ErrModified", err)
	}
	if !strings.Contains(err.Error(), "boot.log") {
		t.Errorf("error %q does not name the file", err)
	}
	assertNoOutput(t, p)
}

// TestBuildKeepsPreviousOutput: a failed build must not destroy the image a
// previous build left.
func TestBuildKeepsPreviousOutput(t *testing.T) {
	p := newProject(t)
	writeTree(t, filepath.Join(p.dir, "src"), sortedPaths(false), 0o644)
	res, err := build(t, p.manifest(t, "zstd", "src", ""), 0)
	if err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(res.ImagePath)
	os.Remove(filepath.Join(p.dir, "keys", "ten.key"))
	if _, err := build(t, p.manifest(t, "zstd", "src", ""), 0); err == nil {
		t.Fatal("build without a key file succeeded")
	}
	after, _ := os.ReadFile(res.ImagePath)
	if !bytes.Equal(before, after) {
		t.Error("a failed build changed the previous image")
	}
	ents, _ := os.ReadDir(filepath.Join(p.dir, "out"))
	if len(ents) != 2 {
		t.Errorf("out/ has %d entries after a failed build, want the 2 of the previous one", len(ents))
	}
}

// TestBuildHonoursUmask: the image and its record get 0644 less what the
// umask clears, as files open(2) creates do (they were 0644 under any umask:
// readable by others under umask 077).
func TestBuildHonoursUmask(t *testing.T) {
	p := newProject(t)
	writeTree(t, filepath.Join(p.dir, "src"), sortedPaths(false), 0o644)
	old := syscall.Umask(0o027)
	res, err := build(t, p.manifest(t, "zstd", "src", ""), 0)
	syscall.Umask(old)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{res.ImagePath, res.RecordPath} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o640 {
			t.Errorf("%s: mode %v under umask 027, want -rw-r-----", path, st.Mode().Perm())
		}
	}
}

var d2001 = mustTime("2001-02-03T04:05:06Z")

// TestBuildHardLinkAcrossKeys: two names of one inode whose rules name
// different keys cannot both be honoured (the inode has one security.ima):
// the build fails before reading anything, naming both paths.
func TestBuildHardLinkAcrossKeys(t *testing.T) {
	p := newProject(t)
	src := filepath.Join(p.dir, "src")
	writeTree(t, src, sortedPaths(false), 0o644)
	if err := os.Link(filepath.Join(src, "usr/bin/tool"), filepath.Join(src, "opt/tenant/bin/tool-link")); err != nil {
		t.Fatal(err)
	}
	_, err := build(t, p.manifest(t, "zstd", "src", ""), 0)
	if err == nil {
		t.Fatal("build with a hard link across keys succeeded")
	}
	for _, w := range []string{"m.yaml:", "/opt/tenant/bin/tool-link", "/usr/bin/tool", `"tenant"`, `"manufacturer"`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %s", err, w)
		}
	}
	assertNoOutput(t, p)
}

// A build without a manifest is an error, not a panic (it was a nil
// dereference before Build was split into stages).
func TestBuildNoManifest(t *testing.T) {
	if _, err := Build(context.Background(), Options{}); err == nil {
		t.Fatal("Build without a manifest succeeded")
	}
}

// TestPerFileStateSize: a build holds a fileState for every file to its
// end (a million files, a million of them) and a sigResult per unique
// digest until its files are sealed, so they must not grow back (issue 22:
// 104 and 112 bytes before, then 48 and 64, 40 and 48, 12 and 48 now, on
// 64-bit).
func TestPerFileStateSize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("sizes are for 64-bit")
	}
	if got := unsafe.Sizeof(fileState{}); got > 12 {
		t.Errorf("fileState is %d bytes, want at most 12", got)
	}
	if got := unsafe.Sizeof(sigResult{}); got > 48 {
		t.Errorf("sigResult is %d bytes, want at most 48", got)
	}
}

// TestPerFileStatePointerFree: what a build keeps per file to its end in
// the layout (the files' states, the entries in image order, the digests)
// holds no pointer, so the garbage collector never scans it: a pointer per
// file there was scanned, looked up and marked in every cycle of a
// million-file build (issue 22).
func TestPerFileStatePointerFree(t *testing.T) {
	lay := reflect.TypeFor[layout]()
	elem := func(field string) reflect.Type {
		f, ok := lay.FieldByName(field)
		if !ok {
			t.Fatalf("layout has no field %s", field)
		}
		return f.Type
	}
	digests, ok := elem("digests").FieldByName("b")
	if !ok {
		t.Fatal("digestStore has no field b")
	}
	for name, typ := range map[string]reflect.Type{
		"layout.files":     elem("files").Elem(),
		"layout.entries":   elem("entries").Elem(),
		"layout.digests.b": digests.Type.Elem(),
		"layout.primary":   elem("primary").Elem(),
	} {
		if p := pointerIn(typ); p != "" {
			t.Errorf("%s: %s holds a pointer (%s)", name, typ, p)
		}
	}
	// the check itself finds one
	if pointerIn(reflect.TypeFor[struct {
		a uint32
		b [2]struct{ s string }
	}]()) == "" {
		t.Error("pointerIn finds no pointer in a string")
	}
}

// pointerIn names a part of t that is or holds a pointer (a pointer, string,
// slice, map, channel, function or interface), or "" if none does.
func pointerIn(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
		reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return ""
	case reflect.Array:
		return pointerIn(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if p := pointerIn(t.Field(i).Type); p != "" {
				return t.Field(i).Name + ": " + p
			}
		}
		return ""
	}
	return t.String()
}
