package pipeline

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/internal/atomicfile"
	"github.com/imaforge/imaforge/internal/countio"
	"github.com/imaforge/imaforge/internal/jsonrecord"
	"github.com/imaforge/imaforge/rootfs"
	"github.com/imaforge/imaforge/squashfs"
	"github.com/imaforge/imaforge/verify"
	"golang.org/x/sys/unix"
)

// RecordFormat names the build record's schema; it changes when a field
// changes meaning. v2 added every entry's type, mode and owner (files,
// entries, policy) so that verify --record can compare an image's metadata
// with its record; v1 records (RecordFormatV1) are still read, but hold no
// metadata to compare.
const RecordFormat = "imaforge-build-record/v2"

// RecordFormatV1 is the first schema: regular files' paths and digests only.
const RecordFormatV1 = "imaforge-build-record/v1"

// Record is the build record written next to the image
// (IMAGE.record.json). It holds no time, host name or absolute path, so the
// same inputs give the same record bytes.
type Record struct {
	Format   string         `json:"format"`
	Tool     RecordTool     `json:"tool"`
	Manifest RecordManifest `json:"manifest"`
	Image    RecordImage    `json:"image"`
	Hash     string         `json:"hash"`
	// Reproducible says whether every key used signs deterministically, so
	// that a rebuild gives the same bytes.
	Reproducible bool        `json:"reproducible"`
	Keys         []RecordKey `json:"keys"`
	// Files lists the regular files of the image in image order, policy
	// fragments aside (hard links once per path). A build's record leaves
	// it empty and yields them from the build's state while it is written
	// (FileList returns them).
	Files []RecordFile `json:"files"`
	// Entries lists every other entry of the image (directories, the root
	// "/" first, symlinks, devices, fifos, sockets) in image order (v2).
	Entries []RecordEntry `json:"entries,omitempty"`
	// Policy lists the signed IMA policy fragments; they are in the image
	// and, with detached signatures, in IMAGE.policy/.
	Policy []RecordPolicy `json:"policy,omitempty"`
	// Verity describes the dm-verity hash tree appended to the image
	// (image.verity; docs/integrity.md).
	Verity *RecordVerity `json:"verity,omitempty"`
	// Signature describes the detached CMS signatures beside the image
	// (image.signature_key).
	Signature *RecordSignature `json:"signature,omitempty"`

	// files, when set, yields the regular files in place of Files: a build
	// of a million files makes each one as it is written, never holding
	// them all (about 170 bytes per file with its digest in hex).
	files iter.Seq[RecordFile]
}

// FileList returns the regular files of the record, made one by one for a
// build's record.
func (r *Record) FileList() []RecordFile {
	if r.files == nil {
		return r.Files
	}
	fs := []RecordFile{}
	for f := range r.files {
		fs = append(fs, f)
	}
	return fs
}

// RecordPolicy is one policy fragment of the image.
type RecordPolicy struct {
	Name string `json:"name"`
	Path string `json:"path"`
	RecordMeta
	Digest string `json:"digest"`
	Key    string `json:"key"`
	KeyID  string `json:"key_id"`
}

// RecordTool names the program that built the image.
type RecordTool struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// RecordManifest identifies the manifest by name and content.
type RecordManifest struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
}

// RecordImage describes the image file.
type RecordImage struct {
	Name string `json:"name"`
	// Format is image.format when it is not squashfs (tar, tar.gz,
	// tar.zst); Compression and BlockSize are then empty.
	Format      string `json:"format,omitempty"`
	SHA256      string `json:"sha256"`
	Size        int64  `json:"size"`
	Compression string `json:"compression"`
	Level       int    `json:"level"`
	BlockSize   int    `json:"block_size"`
	Epoch       int64  `json:"epoch"`
	// Codec names the compressor's implementation and version, which the
	// image bytes depend on (docs/reproducibility.md); absent when nothing
	// is compressed.
	Codec *squashfs.Encoder `json:"codec,omitempty"`
}

// RecordKey describes a signing key used by the build.
type RecordKey struct {
	Name          string `json:"name"`
	KeyID         string `json:"key_id"`
	Subject       string `json:"subject"`
	CertSHA256    string `json:"cert_sha256"`
	Deterministic bool   `json:"deterministic"`
	Files         int    `json:"files"`
	Signatures    int    `json:"signatures"`
	// Precomputed names the files the key's signatures came from in a
	// build from a ceremony response or evmctl output (build
	// --signatures): their digests and, for a response, the request's and
	// the response's own digests.
	Precomputed []SignatureSource `json:"precomputed,omitempty"`
}

// RecordFile is one regular file of the image. Key and KeyID are empty for a
// file its rule leaves unsigned.
type RecordFile struct {
	Path string `json:"path"`
	RecordMeta
	Size   int64  `json:"size"`
	Digest string `json:"digest"`
	Key    string `json:"key,omitempty"`
	KeyID  string `json:"key_id,omitempty"`
	// EVMKey names the key of the file's portable security.evm, if any.
	EVMKey string `json:"evm_key,omitempty"`
}

// Marshal encodes the record as indented JSON with a final newline.
func (r *Record) Marshal() ([]byte, error) {
	if r.files == nil {
		return jsonrecord.Marshal(r)
	}
	var b bytes.Buffer
	_, err := r.WriteTo(&b)
	return b.Bytes(), err
}

// WriteTo writes the bytes Marshal returns, encoding the files and entries
// one at a time, so that a build of a million files does not hold its
// record's JSON (about 300 bytes per file, twice while encoding) in memory.
func (r *Record) WriteTo(w io.Writer) (int64, error) {
	cw := &countio.Writer{W: w}
	bw := bufio.NewWriterSize(cw, 64<<10)
	hb, err := r.marshalHead()
	if err != nil {
		return cw.N, err
	}
	i := bytes.Index(hb, []byte(filesSlot))
	if i < 0 {
		return cw.N, errors.New("build record: no files slot")
	}
	bw.Write(hb[:i+len(filesSlot)-1])
	files := r.files
	if files == nil {
		files = slices.Values(r.Files)
	}
	if err := writeArray(bw, files, appendRecordFile); err != nil {
		return cw.N, err
	}
	if len(r.Entries) > 0 {
		bw.WriteString(",\n  \"entries\": [")
		if err := writeArray(bw, slices.Values(r.Entries), nil); err != nil {
			return cw.N, err
		}
	}
	bw.Write(hb[i+len(filesSlot):])
	err = bw.Flush()
	return cw.N, err
}

// filesSlot is where WriteTo writes the files into the record's head (its
// other fields, marshalHead): "files" is a top-level field, always present;
// "entries" (omitted when empty) follows it.
const filesSlot = "\n  \"files\": []"

// marshalHead is the record without its files and entries, the bytes
// WriteTo writes around them.
func (r *Record) marshalHead() ([]byte, error) {
	head := *r
	head.Files, head.Entries = []RecordFile{}, nil
	return jsonrecord.Marshal(&head)
}

// pendingSHA256 holds the place of image.sha256 in a record written before
// the image's hash is known (writePending): as long as the hex digest, and
// never one.
var pendingSHA256 = strings.Repeat("-", 2*sha256.Size)

// writePending writes the record as WriteTo does but with pendingSHA256 as
// image.sha256, and returns the offset of that value in what it wrote:
// writing the hex digest there gives WriteTo's bytes with it.
func (r *Record) writePending(w io.Writer) (int64, error) {
	saved := r.Image.SHA256
	defer func() { r.Image.SHA256 = saved }()
	// The offset: where the head's bytes with the placeholder and with
	// another value of its length first differ (whatever else in the
	// head, a name or a path, looks like the placeholder).
	r.Image.SHA256 = strings.Repeat("0", 2*sha256.Size)
	other, err := r.marshalHead()
	if err != nil {
		return 0, err
	}
	r.Image.SHA256 = pendingSHA256
	head, err := r.marshalHead()
	if err != nil {
		return 0, err
	}
	at := 0
	for at < min(len(head), len(other)) && head[at] == other[at] {
		at++
	}
	end := at + len(pendingSHA256)
	if len(head) != len(other) || end > len(head) || string(head[at:end]) != pendingSHA256 ||
		!bytes.Equal(head[end:], other[end:]) || end > bytes.Index(head, []byte(filesSlot)) {
		return 0, errors.New("build record: image.sha256 not found in the record's head")
	}
	_, err = r.WriteTo(w)
	return int64(at), err
}

// writeRecordFile writes rec to a new temporary file for path (committed
// when the build's outputs are published), its pages handed to the disk as
// they are written. With pending, the image's hash is not known yet: its
// place is held (writePending) at the offset returned, for
// fillImageSHA256.
func writeRecordFile(path string, rec *Record, pending bool) (*atomicfile.File, int64, error) {
	f, err := atomicfile.Create(path, 0o644)
	if err != nil {
		return nil, 0, err
	}
	at := int64(-1)
	if pending {
		at, err = rec.writePending(f.WriteBehind())
	} else {
		_, err = rec.WriteTo(f.WriteBehind())
	}
	if err != nil {
		f.Abort()
		return nil, 0, fmt.Errorf("write %s: %w", path, err)
	}
	return f, at, nil
}

// fillImageSHA256 writes the image's hex digest over the placeholder
// writePending left at offset at of the record file f; it fails, writing
// nothing, unless the placeholder is there.
func fillImageSHA256(f *os.File, at int64, sum string) error {
	if len(sum) != len(pendingSHA256) {
		return fmt.Errorf("write %s: internal: image digest %q", f.Name(), sum)
	}
	held := make([]byte, len(pendingSHA256))
	if _, err := f.ReadAt(held, at); err != nil {
		return fmt.Errorf("read %s at offset %d: %w", f.Name(), at, err)
	}
	if string(held) != pendingSHA256 {
		return fmt.Errorf("write %s: internal: no image digest placeholder at offset %d", f.Name(), at)
	}
	if _, err := f.WriteAt([]byte(sum), at); err != nil {
		return fmt.Errorf("write %s at offset %d: %w", f.Name(), at, err)
	}
	return nil
}

// writeArray writes the elements of a top-level array in jsonrecord's form
// and the closing bracket, after the opening one. fast, if not nil, appends
// an element's bytes without reflection, or reports false for the encoder
// to write it (and its error).
func writeArray[T any](w *bufio.Writer, xs iter.Seq[T], fast func([]byte, *T) ([]byte, bool)) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("    ", "  ")
	enc.SetEscapeHTML(false)
	var fb []byte
	n := 0
	for x := range xs {
		var out []byte
		ok := false
		if fast != nil {
			fb, ok = fast(fb[:0], &x)
			out = fb
		}
		if !ok {
			buf.Reset()
			if err := enc.Encode(&x); err != nil {
				return err
			}
			out = bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
		}
		if n > 0 {
			w.WriteByte(',')
		}
		n++
		w.WriteString("\n    ")
		w.Write(out)
	}
	if n > 0 {
		w.WriteString("\n  ")
	}
	_, err := w.WriteString("]")
	return err
}

// appendRecordFile appends f as writeArray's encoder writes it (the
// element of the top-level "files" array): encoding/json's reflection took
// about as much CPU as the rest of writing the record of 50,000 files.
// It reports false, for the encoder to give the error, for a type or mode
// that MarshalText refuses. TestAppendRecordFile and FuzzAppendRecordFile
// compare the two.
func appendRecordFile(b []byte, f *RecordFile) ([]byte, bool) {
	t, m := f.Type, f.Mode
	if int(t) >= len(recordTypeNames) || t != 0 && recordTypeNames[t] == "" || m&^0o7777 != 0 {
		return b, false
	}
	const field = ",\n      \""
	b = append(b, "{\n      \"path\": "...)
	b = jsonrecord.AppendString(b, f.Path)
	if t != 0 {
		b = append(b, field+`type": "`...)
		b = append(b, recordTypeNames[t]...)
		b = append(b, '"')
	}
	b = append(b, field+`mode": "`...)
	b = append(b, '0'+byte(m>>9&7), '0'+byte(m>>6&7), '0'+byte(m>>3&7), '0'+byte(m&7), '"')
	b = append(b, field+`uid": `...)
	b = strconv.AppendUint(b, uint64(f.UID), 10)
	b = append(b, field+`gid": `...)
	b = strconv.AppendUint(b, uint64(f.GID), 10)
	b = append(b, field+`size": `...)
	b = strconv.AppendInt(b, f.Size, 10)
	b = append(b, field+`digest": `...)
	b = jsonrecord.AppendString(b, f.Digest)
	for _, kv := range [...]struct{ name, v string }{{"key", f.Key}, {"key_id", f.KeyID}, {"evm_key", f.EVMKey}} {
		if kv.v != "" {
			b = append(b, field...)
			b = append(b, kv.name...)
			b = append(b, `": `...)
			b = jsonrecord.AppendString(b, kv.v)
		}
	}
	return append(b, "\n    }"...), true
}

// RecordVerity is the dm-verity hash tree of the image: the image file is
// the data device (its first DataBlocks 4 KiB blocks, the SquashFS image)
// and the hash device (from HashOffset: veritysetup's superblock, then the
// tree). `veritysetup verify IMAGE IMAGE ROOT --hash-offset HASH_OFFSET`.
type RecordVerity struct {
	Hash          string `json:"hash"`
	DataBlockSize int    `json:"data_block_size"`
	HashBlockSize int    `json:"hash_block_size"`
	DataBlocks    uint64 `json:"data_blocks"`
	DataSize      uint64 `json:"data_size"`
	HashOffset    uint64 `json:"hash_offset"`
	HashSize      uint64 `json:"hash_size"`
	Salt          string `json:"salt"`
	UUID          string `json:"uuid"`
	RootHash      string `json:"root_hash"`
}

// RecordSignature names the key of the image's CMS signatures and the files
// written (relative to the image's directory).
type RecordSignature struct {
	Key   string   `json:"key"`
	KeyID string   `json:"key_id"`
	Files []string `json:"files"`
}

// RecordEntry is an entry of the image other than a regular file.
type RecordEntry struct {
	Path string `json:"path"`
	RecordMeta
	// Target is a symlink's target, as stored.
	Target string `json:"target,omitempty"`
	// Major and Minor are a device's numbers.
	Major uint32 `json:"major,omitempty"`
	Minor uint32 `json:"minor,omitempty"`
}

// RecordMeta is an entry's type, permission bits and owner as the image
// stores them (v2; zero in a v1 record). It is 16 bytes in memory: a record
// of a million files keeps no strings for it.
type RecordMeta struct {
	Type RecordType `json:"type,omitempty"`
	Mode RecordMode `json:"mode"`
	UID  uint32     `json:"uid"`
	GID  uint32     `json:"gid"`
}

func recordMeta(e *rootfs.Entry) RecordMeta {
	return RecordMeta{Type: RecordType(e.Type), Mode: RecordMode(e.Mode & 0o7777), UID: e.UID, GID: e.GID}
}

// RecordType is an entry's type (rootfs.Type's values), written as a word:
// "file", "dir", "symlink", "block", "char", "fifo", "socket".
type RecordType uint8

var recordTypeNames = [...]string{rootfs.TypeDir: "dir", rootfs.TypeReg: "file", rootfs.TypeSymlink: "symlink",
	rootfs.TypeBlock: "block", rootfs.TypeChar: "char", rootfs.TypeFifo: "fifo", rootfs.TypeSocket: "socket"}

func (t RecordType) String() string {
	if int(t) < len(recordTypeNames) && recordTypeNames[t] != "" {
		return recordTypeNames[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// MarshalText writes the type's word; the zero type (a v1 record) is "".
func (t RecordType) MarshalText() ([]byte, error) {
	if t == 0 {
		return nil, nil
	}
	if int(t) >= len(recordTypeNames) || recordTypeNames[t] == "" {
		return nil, fmt.Errorf("record: unknown entry type %d", uint8(t))
	}
	return []byte(recordTypeNames[t]), nil
}

// UnmarshalText reads a type word.
func (t *RecordType) UnmarshalText(b []byte) error {
	for i, n := range recordTypeNames {
		if n != "" && n == string(b) {
			*t = RecordType(i)
			return nil
		}
	}
	return fmt.Errorf("record: unknown entry type %q", b)
}

// RecordMode is the permission bits with setuid, setgid and sticky
// (07777), written as an octal string ("0755", "4755").
type RecordMode uint32

// MarshalText writes the mode as four octal digits.
func (m RecordMode) MarshalText() ([]byte, error) {
	if m&^0o7777 != 0 {
		return nil, fmt.Errorf("record: mode %o has more than permission bits", uint32(m))
	}
	return fmt.Appendf(nil, "%04o", uint32(m)), nil
}

// UnmarshalText reads an octal mode of at most 07777.
func (m *RecordMode) UnmarshalText(b []byte) error {
	v, err := strconv.ParseUint(string(b), 8, 32)
	if err != nil || v&^0o7777 != 0 {
		return fmt.Errorf("record: mode %q: want octal digits up to 7777", b)
	}
	*m = RecordMode(v)
	return nil
}

// ErrRecordFormat is wrapped by ParseRecord's errors.
var ErrRecordFormat = errors.New("not a build record")

// ParseRecord decodes a build record of either format (RecordFormat or
// RecordFormatV1), refusing unknown fields and formats. Callers that need
// the entries' metadata check HasMetadata.
func ParseRecord(b []byte) (*Record, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var r Record
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrRecordFormat, err)
	}
	if r.Format != RecordFormat && r.Format != RecordFormatV1 {
		return nil, fmt.Errorf("%w: format %q, want %s (or %s)", ErrRecordFormat, r.Format, RecordFormat, RecordFormatV1)
	}
	return &r, nil
}

// HasMetadata reports whether the record holds every entry's type, mode
// and owner (format v2); a v1 record lists regular files' digests only.
func (r *Record) HasMetadata() bool { return r.Format == RecordFormat }

// ErrRecordNoMetadata is returned by Expected for a v1 record.
var ErrRecordNoMetadata = errors.New("the record holds no types, modes or owners (format " + RecordFormatV1 + "): rebuild the image to get a " + RecordFormat + " record")

// Expected turns the record into what verify compares an image with: every
// path of the image (files, policy fragments, other entries) with its
// metadata, and each regular file's size and digest. A v1 record is refused
// (ErrRecordNoMetadata): it cannot tell a changed mode from an unchanged one.
func (r *Record) Expected(name string) (*verify.Expected, error) {
	if !r.HasMetadata() {
		return nil, ErrRecordNoMetadata
	}
	h, err := imasig.ParseHash(r.Hash)
	if err != nil {
		return nil, fmt.Errorf("%w: hash: %w", ErrRecordFormat, err)
	}
	files := r.FileList()
	exp := &verify.Expected{Name: name, Hash: h, Entries: make([]verify.Entry, 0, len(files)+len(r.Policy)+len(r.Entries))}
	add := func(p string, m RecordMeta, size int64, digest string) (*verify.Entry, error) {
		t, ok := stType[m.Type]
		if !ok {
			return nil, fmt.Errorf("%w: %s: no entry type", ErrRecordFormat, p)
		}
		exp.Entries = append(exp.Entries, verify.Entry{Path: p, Type: t, Mode: uint32(m.Mode), UID: m.UID, GID: m.GID, Size: size, Digest: digest})
		return &exp.Entries[len(exp.Entries)-1], nil
	}
	for _, f := range files {
		if _, err := add(f.Path, f.RecordMeta, f.Size, f.Digest); err != nil {
			return nil, err
		}
	}
	for _, p := range r.Policy {
		if _, err := add(p.Path, p.RecordMeta, -1, p.Digest); err != nil {
			return nil, err
		}
	}
	for _, e := range r.Entries {
		ve, err := add(e.Path, e.RecordMeta, 0, "")
		if err != nil {
			return nil, err
		}
		ve.Target, ve.Major, ve.Minor = e.Target, e.Major, e.Minor
	}
	return exp, nil
}

// stType maps a RecordType to its st_mode file type.
var stType = map[RecordType]uint32{
	RecordType(rootfs.TypeReg): unix.S_IFREG, RecordType(rootfs.TypeDir): unix.S_IFDIR,
	RecordType(rootfs.TypeSymlink): unix.S_IFLNK, RecordType(rootfs.TypeBlock): unix.S_IFBLK,
	RecordType(rootfs.TypeChar): unix.S_IFCHR, RecordType(rootfs.TypeFifo): unix.S_IFIFO,
	RecordType(rootfs.TypeSocket): unix.S_IFSOCK,
}
