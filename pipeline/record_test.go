package pipeline

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/imaforge/imaforge/manifest"
	"github.com/imaforge/imaforge/pki"
	"github.com/imaforge/imaforge/rootfs"
	"github.com/imaforge/imaforge/verify"
)

// recordManifest builds a tree with every kind of entry, a setuid program
// and two owners (so that the id table has two entries to swap between).
const recordManifest = `version: 1
image:
  output: out/img.%[1]s
  format: %[1]s
  %[2]s
  epoch: 1700000000
  owner: {uid: 0, gid: 0}
hash: sha256
trust:
  roots: [pki/root.pem]
  intermediates: [pki/owner.pem]
  crls: [pki/root.crl, pki/owner.crl]
keys:
  manufacturer: {cert: pki/mfr.pem, key: pki/mfr.key}
sources:
  - from: src/
    to: /
entries:
  - {path: /dev/console, type: char, mode: 0600, major: 5, minor: 1}
  - {path: /dev/sda, type: block, major: 8, minor: 0}
  - {path: /run/fifo, type: fifo}
  - {path: /bin/sh, type: symlink, target: /usr/bin/tool}
  - {path: /mnt, type: dir, mode: 01777}
overrides:
  - match: /usr/bin/su
    mode: "04755"
  - match: /etc/conf
    uid: 1000
    gid: 1000
rules:
  - match: /**
    key: manufacturer
`

// recordBuild builds the record test tree as squashfs (uncompressed, so
// that tests can patch its inode table) or as a tar archive.
func recordBuild(t *testing.T, format string) *Result {
	t.Helper()
	p := newIntegrityProject(t) // pki/: root -> owner CA -> mfr
	src := filepath.Join(p.dir, "src")
	integMust(t, os.RemoveAll(src))
	for name, content := range map[string]string{
		"usr/bin/tool": strings.Repeat("tool\n", 900),
		"usr/bin/su":   "su\n",
		"etc/conf":     "key=value\n",
	} {
		integMust(t, os.MkdirAll(filepath.Dir(filepath.Join(src, name)), 0o755))
		integMust(t, os.WriteFile(filepath.Join(src, name), []byte(content), 0o644))
	}
	integMust(t, os.Chmod(filepath.Join(src, "usr/bin/tool"), 0o755))
	comp := "compression: none"
	if format == "tar" {
		comp = ""
	}
	path := filepath.Join(p.dir, "m.yaml")
	integMust(t, os.WriteFile(path, []byte(fmt.Sprintf(recordManifest, format, comp)), 0o644))
	m, err := manifest.Load(path)
	integMust(t, err)
	res, err := build(t, m, 0)
	integMust(t, err)
	return res
}

func recordVerify(t *testing.T, res *Result, withRecord bool) *verify.Report {
	t.Helper()
	ts, err := pki.LoadTrustStore(pki.TrustConfig{Roots: []string{"pki/root.pem"},
		Intermediates: []string{"pki/owner.pem", "pki/mfr.pem"}, CRLs: []string{"pki/root.crl", "pki/owner.crl"}}, filepath.Dir(filepath.Dir(res.ImagePath)))
	integMust(t, err)
	opts := verify.Options{Trust: ts, At: time.Now()}
	if withRecord {
		b, err := os.ReadFile(res.RecordPath)
		integMust(t, err)
		rec, err := ParseRecord(b)
		integMust(t, err)
		if opts.Record, err = rec.Expected("img.record.json"); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := verify.File(context.Background(), res.ImagePath, opts)
	integMust(t, err)
	return rep
}

// TestRecordMetadata: the v2 record lists every entry with its type, mode
// and owner (symlink target, device numbers), reads back to the same
// bytes, and a clean image matches it in both formats; the setuid program
// counts as recorded.
func TestRecordMetadata(t *testing.T) {
	for _, format := range []string{"squashfs", "tar"} {
		t.Run(format, func(t *testing.T) {
			res := recordBuild(t, format)
			rec := res.Record
			if rec.Format != RecordFormat || !rec.HasMetadata() {
				t.Fatalf("format %q", rec.Format)
			}
			b, err := rec.Marshal()
			integMust(t, err)
			for _, want := range []string{
				`"path": "/usr/bin/su",
      "type": "file",
      "mode": "4755",
      "uid": 0,
      "gid": 0,`,
				`"path": "/etc/conf",
      "type": "file",
      "mode": "0644",
      "uid": 1000,
      "gid": 1000,`,
				`"path": "/bin/sh",
      "type": "symlink",
      "mode": "0777",`,
				`"target": "/usr/bin/tool"`,
				`"path": "/dev/console",
      "type": "char",
      "mode": "0600",
      "uid": 0,
      "gid": 0,
      "major": 5,
      "minor": 1`,
				`"path": "/mnt",
      "type": "dir",
      "mode": "1777",`,
				`"path": "/run/fifo",
      "type": "fifo",`,
			} {
				if !bytes.Contains(b, []byte(want)) {
					t.Errorf("record lacks\n%s\n%s", want, b)
				}
			}
			if rec.Entries[0].Path != "/" || rec.Entries[0].Type.String() != "dir" {
				t.Errorf("first entry %+v, want the root directory", rec.Entries[0])
			}
			back, err := ParseRecord(b)
			integMust(t, err)
			b2, err := back.Marshal()
			integMust(t, err)
			if !bytes.Equal(b, b2) {
				t.Errorf("record does not read back to the same bytes")
			}
			rep := recordVerify(t, res, true)
			if !rep.OK || rep.Record == nil || len(rep.Record.Problems) != 0 || rep.Record.Entries != rep.Record.Image {
				t.Fatalf("clean image against its record: ok=%v %+v", rep.OK, rep.Record)
			}
			if len(rep.Setuid) != 1 || rep.Setuid[0].Path != "/usr/bin/su" || !rep.Setuid[0].Recorded {
				t.Errorf("setuid %+v, want /usr/bin/su recorded", rep.Setuid)
			}
			if rep := recordVerify(t, res, false); len(rep.Setuid) != 1 || rep.Setuid[0].Recorded {
				t.Errorf("without a record: setuid %+v, want /usr/bin/su not recorded", rep.Setuid)
			}
		})
	}
}

// patchSquashfsInode rewrites the mode or the uid index of the regular
// file inode of the given (unique) mode in an uncompressed image.
func patchSquashfsInode(t *testing.T, img string, mode uint16, newMode uint16, swapUID bool) {
	t.Helper()
	data, err := os.ReadFile(img)
	integMust(t, err)
	le := binary.LittleEndian
	inodes, dirs := le.Uint64(data[64:]), le.Uint64(data[72:])
	table := data[inodes:dirs]
	var hits []int
	for _, typ := range []uint16{2, 9} {
		pat := le.AppendUint16(le.AppendUint16(nil, typ), mode)
		for i := 0; i+len(pat) <= len(table); i++ {
			if bytes.Equal(table[i:i+len(pat)], pat) {
				hits = append(hits, i)
			}
		}
	}
	if len(hits) != 1 {
		t.Fatalf("found %d file inodes of mode %o", len(hits), mode)
	}
	in := table[hits[0]:]
	if newMode != 0 {
		le.PutUint16(in[2:], newMode)
	}
	if swapUID {
		le.PutUint16(in[4:], 1-le.Uint16(in[4:])) // the id table holds 0 and 1000
	}
	integMust(t, os.WriteFile(img, data, 0o644))
}

// patchTarHeader rewrites an octal field of the ustar header of the member
// named name and its checksum.
func patchTarHeader(t *testing.T, img, name string, off, size int, val uint32) {
	t.Helper()
	data, err := os.ReadFile(img)
	integMust(t, err)
	n := 0
	for b := 0; b+512 <= len(data); b += 512 {
		h := data[b : b+512]
		if string(h[257:262]) != "ustar" || h[156] != '0' || strings.TrimPrefix(string(bytes.TrimRight(h[:100], "\x00")), "./") != name {
			continue
		}
		n++
		copy(h[off:off+size], fmt.Sprintf("%0*o\x00", size-1, val))
		copy(h[148:156], "        ")
		sum := 0
		for _, c := range h {
			sum += int(c)
		}
		copy(h[148:156], fmt.Sprintf("%06o\x00 ", sum))
	}
	if n != 1 {
		t.Fatalf("found %d headers of %s", n, name)
	}
	integMust(t, os.WriteFile(img, data, 0o644))
}

// TestVerifyRecordTamper: metadata patched into an image without an image
// signature (a setuid bit, another owner) leaves every security.ima valid,
// so verify without a record passes (as it did before records held
// metadata); with the record, the path fails with the reason, and the
// setuid file is warned about without one.
func TestVerifyRecordTamper(t *testing.T) {
	for _, tc := range []struct {
		name, format string
		patch        func(t *testing.T, img string)
		reason       verify.RecordReason
		setuid       bool
	}{
		{"squashfs setuid", "squashfs", func(t *testing.T, img string) { patchSquashfsInode(t, img, 0o755, 0o4755, false) }, verify.RecordMode, true},
		{"squashfs uid", "squashfs", func(t *testing.T, img string) { patchSquashfsInode(t, img, 0o4755, 0, true) }, verify.RecordOwner, false},
		{"tar setuid", "tar", func(t *testing.T, img string) { patchTarHeader(t, img, "etc/conf", 100, 8, 0o6755) }, verify.RecordMode, true},
		{"tar uid", "tar", func(t *testing.T, img string) { patchTarHeader(t, img, "usr/bin/su", 108, 8, 1000) }, verify.RecordOwner, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := recordBuild(t, tc.format)
			tc.patch(t, res.ImagePath)
			rep := recordVerify(t, res, false)
			if !rep.OK || rep.Summary.Failed != 0 {
				t.Fatalf("without a record: ok=%v %+v", rep.OK, rep.Summary)
			}
			unrecorded := 0
			for _, s := range rep.Setuid {
				if !s.Recorded {
					unrecorded++
				}
			}
			if want := 1 + btoi(tc.setuid); unrecorded != want {
				t.Errorf("without a record: %d setuid files to warn about, want %d: %+v", unrecorded, want, rep.Setuid)
			}
			rep = recordVerify(t, res, true)
			if rep.OK || rep.Record == nil || len(rep.Record.Problems) != 1 || rep.Record.Problems[0].Reason != tc.reason {
				t.Fatalf("with the record: ok=%v %+v", rep.OK, rep.Record)
			}
			if tc.setuid && !strings.Contains(rep.Record.Problems[0].Message, "setuid") && !strings.Contains(rep.Record.Problems[0].Message, "setgid") {
				t.Errorf("message %q does not name the bit", rep.Record.Problems[0].Message)
			}
			for _, s := range rep.Setuid {
				if !s.Recorded && !strings.Contains(fmt.Sprint(rep.Record.Problems), s.Path) {
					t.Errorf("unrecorded setuid file %s is not a record problem", s.Path)
				}
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestVerifyRecordDifferences: each kind of difference between an image
// and its record is one problem at its path, with its reason.
func TestVerifyRecordDifferences(t *testing.T) {
	res := recordBuild(t, "squashfs")
	b, err := os.ReadFile(res.RecordPath)
	integMust(t, err)
	for _, tc := range []struct {
		name   string
		edit   func(e *verify.Expected) string
		reason verify.RecordReason
	}{
		{"missing", func(e *verify.Expected) string {
			e.Entries = append(e.Entries, verify.Entry{Path: "/etc/gone", Type: unix.S_IFREG})
			return "/etc/gone"
		}, verify.RecordMissing},
		{"extra", func(e *verify.Expected) string { return drop(e, "/usr/bin/su") }, verify.RecordExtra},
		{"type", func(e *verify.Expected) string {
			return set(e, "/run/fifo", func(x *verify.Entry) { x.Type = unix.S_IFSOCK })
		}, verify.RecordType},
		{"mode", func(e *verify.Expected) string { return set(e, "/mnt", func(x *verify.Entry) { x.Mode = 0o755 }) }, verify.RecordMode},
		{"owner", func(e *verify.Expected) string { return set(e, "/dev/sda", func(x *verify.Entry) { x.GID = 6 }) }, verify.RecordOwner},
		{"size", func(e *verify.Expected) string { return set(e, "/etc/conf", func(x *verify.Entry) { x.Size++ }) }, verify.RecordSize},
		{"digest", func(e *verify.Expected) string {
			return set(e, "/usr/bin/tool", func(x *verify.Entry) { x.Digest = strings.Repeat("0", 64) })
		}, verify.RecordDigest},
		{"target", func(e *verify.Expected) string {
			return set(e, "/bin/sh", func(x *verify.Entry) { x.Target = "/bin/busybox" })
		}, verify.RecordTarget},
		{"device", func(e *verify.Expected) string { return set(e, "/dev/console", func(x *verify.Entry) { x.Minor = 2 }) }, verify.RecordDevice},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec, err := ParseRecord(b)
			integMust(t, err)
			exp, err := rec.Expected("r")
			integMust(t, err)
			p := tc.edit(exp)
			rep, err := verify.File(context.Background(), res.ImagePath, verify.Options{Record: exp})
			integMust(t, err)
			if rep.OK || len(rep.Record.Problems) != 1 || rep.Record.Problems[0].Path != p || rep.Record.Problems[0].Reason != tc.reason {
				t.Fatalf("ok=%v problems %+v, want one %s at %s", rep.OK, rep.Record.Problems, tc.reason, p)
			}
		})
	}
}

func drop(e *verify.Expected, p string) string {
	for i := range e.Entries {
		if e.Entries[i].Path == p {
			e.Entries = append(e.Entries[:i], e.Entries[i+1:]...)
			return p
		}
	}
	panic(p)
}

func set(e *verify.Expected, p string, f func(*verify.Entry)) string {
	for i := range e.Entries {
		if e.Entries[i].Path == p {
			f(&e.Entries[i])
			return p
		}
	}
	panic(p)
}

// TestParseRecordFormats: a v1 record still reads (attest policy uses
// it) but cannot be compared with (ErrRecordNoMetadata); an unknown format,
// an unknown field or a bad mode or type is refused.
func TestParseRecordFormats(t *testing.T) {
	v1 := `{"format": "imaforge-build-record/v1", "hash": "sha256", "files": [{"path": "/a", "size": 1, "digest": "00"}]}`
	rec, err := ParseRecord([]byte(v1))
	if err != nil || rec.HasMetadata() {
		t.Fatalf("v1: %v", err)
	}
	if _, err := rec.Expected("r"); !errors.Is(err, ErrRecordNoMetadata) {
		t.Errorf("v1 Expected: %v, want ErrRecordNoMetadata", err)
	}
	for _, bad := range []string{
		`{"format": "imaforge-build-record/v3"}`,
		`{"format": "imaforge-build-record/v2", "extra": 1}`,
		`{"format": "imaforge-build-record/v2", "files": [{"path": "/a", "type": "file", "mode": "10000"}]}`,
		`{"format": "imaforge-build-record/v2", "files": [{"path": "/a", "type": "file", "mode": "rwx"}]}`,
		`{"format": "imaforge-build-record/v2", "files": [{"path": "/a", "type": "door", "mode": "0644"}]}`,
		`not json`,
	} {
		if _, err := ParseRecord([]byte(bad)); !errors.Is(err, ErrRecordFormat) {
			t.Errorf("ParseRecord(%s): %v, want ErrRecordFormat", bad, err)
		}
	}
	// A v2 entry without a type cannot be compared.
	rec, err = ParseRecord([]byte(`{"format": "imaforge-build-record/v2", "hash": "sha256", "files": [{"path": "/a", "mode": "0644"}]}`))
	integMust(t, err)
	if _, err := rec.Expected("r"); !errors.Is(err, ErrRecordFormat) {
		t.Errorf("untyped entry: %v", err)
	}
}

// FuzzParseRecord: ParseRecord never panics; a record it accepts encodes
// and reads back to the same bytes, and Expected either fails or lists
// every path.
func FuzzParseRecord(f *testing.F) {
	f.Add([]byte(`{"format": "imaforge-build-record/v1", "hash": "sha256", "files": [{"path": "/a", "size": 1, "digest": "00"}]}`))
	f.Add([]byte(`{"format": "imaforge-build-record/v2", "hash": "sha256", "files": [{"path": "/a", "type": "file", "mode": "4755", "uid": 0, "gid": 0, "size": 1, "digest": "00"}],
"entries": [{"path": "/", "type": "dir", "mode": "0755", "uid": 0, "gid": 0}, {"path": "/l", "type": "symlink", "mode": "0777", "uid": 0, "gid": 0, "target": "/a"},
{"path": "/dev/null", "type": "char", "mode": "0666", "uid": 0, "gid": 0, "major": 1, "minor": 3}],
"policy": [{"name": "p", "path": "/etc/ima/p.policy", "type": "file", "mode": "0644", "uid": 0, "gid": 0, "digest": "00", "key": "k", "key_id": "01020304"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, err := ParseRecord(b)
		if err != nil {
			if !errors.Is(err, ErrRecordFormat) {
				t.Fatalf("error %v does not wrap ErrRecordFormat", err)
			}
			return
		}
		out, err := rec.Marshal()
		if err != nil {
			return // a value the encoder refuses (an unknown type number cannot be parsed, so this is rare)
		}
		var streamed bytes.Buffer
		if _, err := rec.WriteTo(&streamed); err != nil || !bytes.Equal(streamed.Bytes(), out) {
			t.Fatalf("WriteTo (%v) differs from Marshal:\n%s\n%s", err, streamed.Bytes(), out)
		}
		back, err := ParseRecord(out)
		if err != nil {
			t.Fatalf("re-encoded record does not parse: %v\n%s", err, out)
		}
		out2, _ := back.Marshal()
		if !bytes.Equal(out, out2) {
			t.Fatalf("not stable:\n%s\n%s", out, out2)
		}
		if exp, err := rec.Expected("r"); err == nil && len(exp.Entries) != len(rec.Files)+len(rec.Policy)+len(rec.Entries) {
			t.Fatalf("Expected lists %d paths, the record %d", len(exp.Entries), len(rec.Files)+len(rec.Policy)+len(rec.Entries))
		}
	})
}

// WriteTo, which streams the files and entries, writes Marshal's bytes: with
// no files, files only, entries, policy, verity and signature files (whose
// "files" list must not be taken for the top-level one).
func TestRecordWriteTo(t *testing.T) {
	meta := RecordMeta{Type: RecordType(rootfs.TypeReg), Mode: 0o4755}
	for name, rec := range map[string]*Record{
		"empty": {Format: RecordFormat, Files: []RecordFile{}, Keys: []RecordKey{}},
		"files": {Format: RecordFormat, Hash: "sha256", Keys: []RecordKey{{Name: "k", Files: 2}},
			Files: []RecordFile{{Path: "/a<b>", RecordMeta: meta, Size: 1, Digest: "00"}, {Path: "/c", Digest: "01", Key: "k"}}},
		"all": {Format: RecordFormat, Keys: []RecordKey{},
			Files:     []RecordFile{{Path: "/a", Digest: "00"}},
			Entries:   []RecordEntry{{Path: "/", RecordMeta: RecordMeta{Type: RecordType(rootfs.TypeDir), Mode: 0o755}}, {Path: "/l", RecordMeta: RecordMeta{Type: RecordType(rootfs.TypeSymlink)}, Target: "a"}},
			Policy:    []RecordPolicy{{Name: "p", Path: "/p", Digest: "00"}},
			Verity:    &RecordVerity{Hash: "sha256"},
			Signature: &RecordSignature{Key: "k", Files: []string{"x.cms", "y.cms"}}},
	} {
		want, err := rec.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		n, err := rec.WriteTo(&got)
		if err != nil || n != int64(got.Len()) {
			t.Fatalf("%s: WriteTo = %d, %v (wrote %d)", name, n, err, got.Len())
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Errorf("%s: WriteTo differs from Marshal:\n%s\nwant\n%s", name, got.Bytes(), want)
		}
	}
}

// A record written before the image's hash is known (writePending), with
// the hash then written at the offset it gives, is WriteTo's record: also
// when a name, a path and the manifest's digest look like the placeholder,
// and with verity and signature fields after the files.
func TestRecordWritePending(t *testing.T) {
	sum := strings.Repeat("a1", 32)
	for name, rec := range map[string]*Record{
		"plain": {Format: RecordFormat, Image: RecordImage{Name: "img", Size: 12345}, Keys: []RecordKey{},
			Files: []RecordFile{{Path: "/a", Digest: "00"}}},
		"lookalikes": {Format: RecordFormat, Keys: []RecordKey{},
			Manifest:  RecordManifest{Name: pendingSHA256, SHA256: pendingSHA256},
			Image:     RecordImage{Name: pendingSHA256 + "\u0000", Size: 1},
			Files:     []RecordFile{{Path: "/" + pendingSHA256, Digest: pendingSHA256}},
			Entries:   []RecordEntry{{Path: "/", RecordMeta: RecordMeta{Type: RecordType(rootfs.TypeDir), Mode: 0o755}}},
			Verity:    &RecordVerity{Hash: "sha256", RootHash: pendingSHA256},
			Signature: &RecordSignature{Key: "k", Files: []string{"x.cms"}}},
	} {
		var got bytes.Buffer
		at, err := rec.writePending(&got)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if rec.Image.SHA256 != "" {
			t.Fatalf("%s: writePending left image.sha256 %q", name, rec.Image.SHA256)
		}
		b := got.Bytes()
		if string(b[at:at+64]) != pendingSHA256 {
			t.Fatalf("%s: no placeholder at offset %d: %q", name, at, b[at:at+64])
		}
		copy(b[at:], sum)
		rec.Image.SHA256 = sum
		want, err := rec.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(b, want) {
			t.Errorf("%s: filled in:\n%s\nwant\n%s", name, b, want)
		}
	}
}

// fillImageSHA256 writes the digest over the placeholder only: not twice,
// not at another offset, not a digest of another length.
func TestFillImageSHA256(t *testing.T) {
	rec := &Record{Format: RecordFormat, Keys: []RecordKey{}, Files: []RecordFile{{Path: "/a", Digest: "00"}}}
	f, err := os.Create(filepath.Join(t.TempDir(), "r.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	at, err := rec.writePending(f)
	if err != nil {
		t.Fatal(err)
	}
	sum := strings.Repeat("0f", 32)
	for _, bad := range []struct {
		at  int64
		sum string
	}{{at + 1, sum}, {at, sum[:62]}, {at, sum + "00"}, {1 << 20, sum}} {
		if err := fillImageSHA256(f, bad.at, bad.sum); err == nil {
			t.Errorf("fill %q at %d (placeholder at %d): no error", bad.sum, bad.at, at)
		}
	}
	if err := fillImageSHA256(f, at, sum); err != nil {
		t.Fatal(err)
	}
	if err := fillImageSHA256(f, at, strings.Repeat("ee", 32)); err == nil {
		t.Error("filled twice: no error")
	}
	got, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	rec.Image.SHA256 = sum
	if want, _ := rec.Marshal(); !bytes.Equal(got, want) {
		t.Errorf("record file:\n%s\nwant\n%s", got, want)
	}
}

// encodedRecordFile is f as writeArray's json.Encoder writes it.
func encodedRecordFile(t testing.TB, f RecordFile) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("    ", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(&f); err != nil {
		return "", err
	}
	return strings.TrimSuffix(buf.String(), "\n"), nil
}

// checkAppendRecordFile fails unless appendRecordFile writes what the
// encoder writes, or declines where the encoder fails.
func checkAppendRecordFile(t testing.TB, f RecordFile) {
	want, werr := encodedRecordFile(t, f)
	got, ok := appendRecordFile([]byte("x"), &f)
	switch {
	case werr != nil && ok:
		t.Errorf("%+v: appended %s, the encoder fails: %v", f, got, werr)
	case werr == nil && !ok:
		t.Errorf("%+v: declined, the encoder writes %s", f, want)
	case ok && string(got) != "x"+want:
		t.Errorf("%+v: appended\n%s\nwant\n%s", f, got[1:], want)
	}
}

// TestAppendRecordFile: the files of the record, written without
// reflection, are the encoder's bytes.
func TestAppendRecordFile(t *testing.T) {
	for _, f := range []RecordFile{
		{},
		{Path: "/a", Digest: "00"},
		{Path: "/usr/bin/su", RecordMeta: RecordMeta{Type: RecordType(rootfs.TypeReg), Mode: 0o4755, UID: 1, GID: 4294967295}, Size: 1 << 40, Digest: "ab", Key: "k", KeyID: "01", EVMKey: "e"},
		{Path: "/q\"u\\o\tte\x01\u2028\xff<>&", RecordMeta: RecordMeta{Type: RecordType(rootfs.TypeReg)}, Size: -1, Key: "k\"", EVMKey: "e"},
		{Path: "/m", RecordMeta: RecordMeta{Mode: 0o7777}, KeyID: "only"},
		{Path: "/bad-mode", RecordMeta: RecordMeta{Mode: 0o10000}},
		{Path: "/bad-type", RecordMeta: RecordMeta{Type: 200}},
	} {
		checkAppendRecordFile(t, f)
	}
	// a mode MarshalText refuses fails WriteTo, as it fails Marshal
	rec := &Record{Format: RecordFormat, Keys: []RecordKey{}, Files: []RecordFile{{Path: "/x", RecordMeta: RecordMeta{Mode: 0o10000}}}}
	if _, err := rec.WriteTo(io.Discard); err == nil {
		t.Error("WriteTo of a mode beyond 07777: no error")
	}
}

// FuzzAppendRecordFile: appendRecordFile writes the encoder's bytes.
func FuzzAppendRecordFile(f *testing.F) {
	f.Add("/a", uint8(2), uint32(0o644), uint32(0), uint32(0), int64(5), "00ff", "k", "01", "")
	f.Add("/\"\\\n\xff\u2029", uint8(0), uint32(0o10000), uint32(1), uint32(2), int64(-1), "", "", "", "e")
	f.Add("", uint8(9), uint32(0o7777), uint32(1<<31), uint32(7), int64(1<<62), "d", "", "id", "")
	f.Fuzz(func(t *testing.T, path string, typ uint8, mode, uid, gid uint32, size int64, digest, key, keyID, evmKey string) {
		checkAppendRecordFile(t, RecordFile{Path: path, RecordMeta: RecordMeta{Type: RecordType(typ), Mode: RecordMode(mode), UID: uid, GID: gid},
			Size: size, Digest: digest, Key: key, KeyID: keyID, EVMKey: evmKey})
	})
}
