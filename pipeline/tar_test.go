package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/imaforge/imaforge/internal/testenv"
	"github.com/imaforge/imaforge/internal/testkeys"
	"github.com/imaforge/imaforge/manifest"
	"github.com/imaforge/imaforge/tarimage"
)

// tarManifest signs the tree with EVM: the tenant's files with the tenant
// key (RSA: Debian's 6.1 verifies only RSA), everything else but /var with
// the manufacturer's key, and declares a setuid file and an owner.
const tarManifest = `version: 1
image:
  output: out/pkg.%[1]s
  format: %[1]s
  epoch: 1700000000
  owner: {uid: 0, gid: 0}
hash: %[3]s
keys:
  manufacturer: {cert: keys/mfr.pem, key: keys/mfr.key}
  tenant: {cert: keys/tenrsa.pem, key: keys/tenrsa.key}
sources:
  - from: %[2]s/
    to: /
overrides:
  - match: /usr/bin/tool
    mode: "04755"
    uid: 1000
    gid: 1001
rules:
  - match: /opt/tenant/**
    key: tenant
    evm: true
  - match: /var/**
    sign: false
  - match: /**
    key: manufacturer
    evm_key: tenant
`

func tarProject(t *testing.T) *project {
	p := newProject(t)
	testkeys.New(t, filepath.Join(p.dir, "keys"), "tenrsa", "rsa2048")
	return p
}

// TestBuildTarReproducible: tar, tar.gz and tar.zst builds of two copies
// of the tree made in opposite orders, with other mtimes and owners, and
// with other worker counts are identical, records included.
func TestBuildTarReproducible(t *testing.T) {
	for _, format := range []string{"tar", "tar.gz", "tar.zst"} {
		t.Run(format, func(t *testing.T) {
			p := tarProject(t)
			writeTree(t, filepath.Join(p.dir, "a"), sortedPaths(false), 0o755)
			writeTree(t, filepath.Join(p.dir, "b"), sortedPaths(true), 0o755)
			filepath.WalkDir(filepath.Join(p.dir, "b"), func(path string, d fs.DirEntry, err error) error {
				if os.Geteuid() == 0 {
					os.Lchown(path, 1234, 5678)
				}
				return os.Chtimes(path, d2001, d2001)
			})
			ra, err := build(t, p.manifest(t, "", "", fmt.Sprintf(tarManifest, format, "a", "sha256")), 2)
			if err != nil {
				t.Fatal(err)
			}
			a, _ := os.ReadFile(ra.ImagePath)
			rb, err := build(t, p.manifest(t, "", "", fmt.Sprintf(tarManifest, format, "b", "sha256")), 1)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(rb.ImagePath)
			if !bytes.Equal(a, b) {
				t.Fatal("archives of the shuffled copies differ")
			}
			ra.Record.Manifest, rb.Record.Manifest = RecordManifest{}, RecordManifest{}
			ea, _ := ra.Record.Marshal()
			eb, _ := rb.Record.Marshal()
			if !bytes.Equal(ea, eb) {
				t.Errorf("records differ:\n%s\n%s", ea, eb)
			}
			if ra.Record.Image.Format != format || ra.Record.Image.Compression != "" {
				t.Errorf("record image %+v", ra.Record.Image)
			}
			// The codec is the implementation that made the bytes: libzstd
			// for tar.zst (as for zstd SquashFS), klauspost/compress for
			// tar.gz, none for tar.
			want := map[string]string{"tar": "", "tar.gz": "github.com/klauspost/compress", "tar.zst": "libzstd"}[format]
			if c := ra.Record.Image.Codec; (c == nil) != (want == "") || (c != nil && (c.Library != want || c.Version == "")) {
				t.Errorf("record image.codec %+v, want library %q", c, want)
			}
			if ra.Signed != 6 || ra.Files != 7 {
				t.Errorf("%d of %d files signed", ra.Signed, ra.Files)
			}
		})
	}
}

// TestBuildTarInstalls: GNU tar and bsdtar extract the archive as root with
// its security.* xattrs, owners and modes; evmctl ima_verify and verify
// accept every signed file with the key its rule names, and reject a file
// whose mode or owner is changed afterwards.
func TestBuildTarInstalls(t *testing.T) {
	testenv.NeedRoot(t)
	gnutar := testenv.NeedTool(t, "tar")
	bsdtar := testenv.NeedTool(t, "bsdtar")
	testenv.NeedTool(t, "evmctl")
	testenv.NeedTool(t, "getfattr")
	for _, hash := range []string{"sha256", "sha512"} {
		p := tarProject(t)
		writeTree(t, filepath.Join(p.dir, "a"), sortedPaths(false), 0o755)
		res, err := build(t, p.manifest(t, "", "", fmt.Sprintf(tarManifest, "tar.zst", "a", hash)), 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, tool := range [][]string{
			{gnutar, "--xattrs", "--xattrs-include=security.*", "-xpf", res.ImagePath, "-C"},
			{bsdtar, "-xpf", res.ImagePath, "-C"},
		} {
			t.Run(hash+"/"+filepath.Base(tool[0]), func(t *testing.T) {
				dst := t.TempDir()
				if out, err := exec.Command(tool[0], append(tool[1:], dst)...).CombinedOutput(); err != nil {
					t.Fatalf("%v: %v\n%s", tool, err, out)
				}
				var st unix.Stat_t
				if err := unix.Stat(filepath.Join(dst, "usr/bin/tool"), &st); err != nil || st.Mode&0o7777 != 0o4755 || st.Uid != 1000 || st.Gid != 1001 {
					t.Fatalf("usr/bin/tool: mode %o owner %d:%d (%v)", st.Mode, st.Uid, st.Gid, err)
				}
				ten := p.dir + "/keys/tenrsa.der"
				for path := range files {
					f := filepath.Join(dst, path)
					out, _ := exec.Command("getfattr", "-d", "-m", "security", f).CombinedOutput()
					if strings.HasPrefix(path, "var/") {
						if strings.Contains(string(out), "security.") {
							t.Errorf("%s: unsigned file has %s", path, out)
						}
						continue
					}
					if !strings.Contains(string(out), "security.ima=") || !strings.Contains(string(out), "security.evm=") {
						t.Errorf("%s: getfattr shows %q", path, out)
						continue
					}
					imaKey := p.mfr.DERPath
					if strings.HasPrefix(path, "opt/tenant/") {
						imaKey = ten
					}
					if out, err := exec.Command("evmctl", "ima_verify", "--key", imaKey, f).CombinedOutput(); err != nil {
						t.Errorf("evmctl ima_verify %s: %v\n%s", path, err, out)
					}
					if out, err := exec.Command("evmctl", "verify", "--key", ten, f).CombinedOutput(); err != nil {
						t.Errorf("evmctl verify %s: %v\n%s", path, err, out)
					}
				}
				// Metadata changed after installing: evmctl refuses.
				tool := filepath.Join(dst, "usr/bin/tool")
				if err := unix.Chmod(tool, 0o6755); err != nil {
					t.Fatal(err)
				}
				if exec.Command("evmctl", "verify", "--key", ten, tool).Run() == nil {
					t.Error("evmctl accepts usr/bin/tool after chmod g+s")
				}
				app := filepath.Join(dst, "opt/tenant/bin/app")
				if err := os.Lchown(app, 0, 1); err != nil {
					t.Fatal(err)
				}
				if exec.Command("evmctl", "verify", "--key", ten, app).Run() == nil {
					t.Error("evmctl accepts opt/tenant/bin/app after chgrp")
				}
			})
		}
	}
}

// TestBuildTarBadInput: what the archive or the target kernel cannot take
// fails at the manifest line that asked for it, and nothing is written.
func TestBuildTarBadInput(t *testing.T) {
	p := tarProject(t)
	writeTree(t, filepath.Join(p.dir, "a"), sortedPaths(false), 0o755)
	writeTree(t, filepath.Join(p.dir, "bad"), nil, 0)
	if err := os.MkdirAll(filepath.Join(p.dir, "bad", "x\xffy"), 0o755); err != nil {
		t.Fatal(err)
	}
	base := fmt.Sprintf(tarManifest, "tar", "a", "sha256")
	for _, tc := range []struct {
		name, from, to string
		want           error
		line           int
	}{
		{"ecdsa-evm-key", "  tenant: {cert: keys/tenrsa.pem, key: keys/tenrsa.key}", "  tenant: {cert: keys/ten.pem, key: keys/ten.key}", ErrKernelCannotVerify, 25},
		{"owner", "    uid: 1000\n", "    uid: 4294967295\n", tarimage.ErrOwner, 0},
		{"socket", "rules:\n", "entries:\n  - {path: /run/sock, type: socket}\nrules:\n", tarimage.ErrType, 20},
		// A name from a source that is not UTF-8 (YAML cannot write one).
		{"name", "    to: /\n", "    to: /\n  - from: bad/\n    to: /opt\n", tarimage.ErrName, 14},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := strings.Replace(base, tc.from, tc.to, 1)
			if body == base {
				t.Fatal("test edit did not apply")
			}
			path := filepath.Join(p.dir, "m.yaml")
			if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			m, err := manifest.Load(path)
			if err != nil {
				t.Fatalf("manifest: %v", err)
			}
			_, err = build(t, m, 2)
			if !errors.Is(err, tc.want) {
				t.Fatalf("%v, want %v", err, tc.want)
			}
			if tc.line != 0 && !strings.Contains(err.Error(), fmt.Sprintf("m.yaml:%d:", tc.line)) {
				t.Errorf("error does not name line %d: %v", tc.line, err)
			}
			if _, err := os.Stat(filepath.Join(p.dir, "out/pkg.tar")); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("output written: %v", err)
			}
		})
	}
}

// TestBuildEVMXattrList: image.evm_xattrs written as a list gives the
// bytes of the named configuration with the same list, and another list
// (one that protects security.selinux, which a file carries) other bytes.
func TestBuildEVMXattrList(t *testing.T) {
	p := tarProject(t)
	writeTree(t, filepath.Join(p.dir, "a"), sortedPaths(false), 0o755)
	body := fmt.Sprintf(tarManifest, "tar", "a", "sha256") +
		"entries:\n  - {path: /etc/conf, type: file, xattrs: {security.selinux: \"system_u:object_r:etc_t:s0\"}}\n"
	if !strings.Contains(body, "/etc/conf") {
		t.Fatal("no entry")
	}
	image := func(list string) []byte {
		t.Helper()
		b := strings.Replace(body, "  epoch:", "  evm_xattrs: "+list+"\n  epoch:", 1)
		res, err := build(t, p.manifest(t, "", "", b), 2)
		if err != nil {
			t.Fatalf("evm_xattrs %s: %v", list, err)
		}
		data, err := os.ReadFile(res.ImagePath)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	named := image("evmctl")
	if written := image("[security.selinux, security.SMACK64, security.apparmor, security.ima, security.capability]"); !bytes.Equal(named, written) {
		t.Error("the written list gives other bytes than evm_xattrs: evmctl")
	}
	if other := image("[security.ima, security.capability]"); bytes.Equal(named, other) {
		t.Error("a list without security.selinux gives the same EVM signatures for a file that has it")
	}
}

// TestBuildReproducibleEVM: a SquashFS build with EVM on more files than
// sealEarly's window (begunWindow), identical contents under two modes
// (shared IMA signatures, distinct EVM ones), gives the same image and
// record with 1 or 8 workers and with GOMAXPROCS=1: the order in which
// EVM signatures are made and released does not reach the bytes.
func TestBuildReproducibleEVM(t *testing.T) {
	p := tarProject(t)
	const files, contents = begunWindow + 404, 900
	for i := range files {
		d := filepath.Join(p.dir, "src", "opt", "tenant", fmt.Sprintf("d%02d", i%50))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		mode := os.FileMode(0o644)
		if i/contents%2 == 1 { // the copies of one content alternate
			mode = 0o600
		}
		f := filepath.Join(d, fmt.Sprintf("f%04d", i))
		if err := os.WriteFile(f, []byte(fmt.Sprint(i%contents)), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(f, mode); err != nil { // past the umask
			t.Fatal(err)
		}
	}
	body := strings.Replace(fmt.Sprintf(tarManifest, "tar", "src", "sha256"),
		"output: out/pkg.tar\n  format: tar\n", "output: out/img.sqsh\n  compression: zstd\n  block_size: 4K\n", 1)
	m := p.manifest(t, "", "", body)
	var ref, refRec []byte
	for _, tc := range []struct{ workers, procs int }{{1, 0}, {8, 0}, {2, 1}} {
		if tc.procs != 0 {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(tc.procs))
		}
		res, err := build(t, m, tc.workers)
		if err != nil {
			t.Fatal(err)
		}
		// the tenant key's IMA pairs, one per content, and its EVM pairs,
		// two per content (two modes)
		if res.Signatures < 3*contents {
			t.Fatalf("workers %d: %d unique signatures: EVM not in play", tc.workers, res.Signatures)
		}
		run := readRun(t, res) // sigsource_disk_test.go
		img, rec := run.img, run.rec
		if ref == nil {
			ref, refRec = img, rec
			continue
		}
		if !bytes.Equal(img, ref) || !bytes.Equal(rec, refRec) {
			t.Fatalf("workers %d, GOMAXPROCS %d: image equal %v, record equal %v",
				tc.workers, tc.procs, bytes.Equal(img, ref), bytes.Equal(rec, refRec))
		}
	}
}
