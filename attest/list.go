package attest

import (
	"bufio"
	"bytes"
	"crypto"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/imaforge/imaforge/imasig"
)

// ErrFormat is wrapped by every error about a malformed measurement list.
var ErrFormat = errors.New("malformed measurement list")

// FormatError names where a measurement list is malformed: the entry index
// (0-based) and, for the binary form, the byte offset of the entry and of
// the fault, or for the ascii form the line number.
type FormatError struct {
	Index  int   // entry index
	Offset int64 // byte offset of the fault (binary form), -1 otherwise
	Line   int   // line number, 1-based (ascii form), 0 otherwise
	Msg    string
	Err    error // ErrFormat or a more precise cause wrapping it
}

func (e *FormatError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d (entry %d): %s", e.Line, e.Index, e.Msg)
	}
	return fmt.Sprintf("entry %d at byte %d (0x%x): %s", e.Index, e.Offset, e.Offset, e.Msg)
}

func (e *FormatError) Unwrap() error { return e.Err }

// Entry is one measurement: struct ima_template_entry as the kernel shows it
// in binary_runtime_measurements (ima_fs.c, ima_measurements_show) or
// ascii_runtime_measurements (ima_ascii_measurements_show).
type Entry struct {
	Index  int   // position in the list, 0-based
	Offset int64 // byte offset in the binary list, -1 for ascii
	Line   int   // line number in the ascii list, 0 for binary

	PCR uint32 // the PCR the entry extends (10 unless the policy says pcr=)
	// TemplateHash is the digest listed in the entry: the template hash
	// for the list's bank (sha1 in binary_runtime_measurements; all zeros
	// for a violation, which extends the PCR with all ones).
	TemplateHash []byte
	Template     string   // template name (or custom format)
	Fields       [][]byte // template data, one slice per field, as hashed
	// Known is false for a template whose fields are unknown: the entry is
	// kept (and reported), its fields are not interpreted.
	Known bool
	raw   []byte // binary template data (u32 len | data per field), when contiguous

	// Interpreted fields (empty when absent).
	DigestAlgo string // "sha256", from d-ng ("sha1" for the "ima" template)
	DigestKind string // d-ngv2: "ima" or "verity"
	Digest     []byte // the file's (or buffer's) digest
	Name       string // the file path, or for ima-buf the buffer's name
	Sig        []byte // security.ima signature value (ima-sig, ima-modsig)
	Buf        []byte // ima-buf buffer
	Modsig     []byte // appended signature (ima-modsig)
}

// Violation reports whether the entry records a violation (a file measured
// while open for writing, or ToMToU): its template hash is all zeros.
func (e *Entry) Violation() bool {
	for _, b := range e.TemplateHash {
		if b != 0 {
			return false
		}
	}
	return true
}

// Where names the entry for messages: "entry 12 (byte 0x1f3)" or
// "entry 12 (line 13)".
func (e *Entry) Where() string {
	if e.Line > 0 {
		return fmt.Sprintf("entry %d (line %d)", e.Index, e.Line)
	}
	return fmt.Sprintf("entry %d (byte 0x%x)", e.Index, e.Offset)
}

// ComputeTemplateHash returns the entry's template hash with h, as the
// kernel computes it for the PCR bank of h (ima_calc_field_array_hash).
func (e *Entry) ComputeTemplateHash(h crypto.Hash) []byte {
	hh := h.New()
	if e.raw != nil {
		hh.Write(e.raw)
	} else {
		hashTemplate(hh, e)
	}
	return hh.Sum(nil)
}

// List is a parsed measurement list.
type List struct {
	// Hash is the algorithm of the listed template hashes (sha1 for
	// binary_runtime_measurements and ascii_runtime_measurements; the
	// kernel's per-bank files _sha256 etc. use that bank's).
	Hash    crypto.Hash
	Entries []*Entry
}

// ParseOptions tune Parse.
type ParseOptions struct {
	// Hash is the template hash algorithm of a binary list (its digest
	// size is not in the format); zero means sha1. The ascii form gives it
	// by the digest length.
	Hash crypto.Hash
}

// Parse reads a measurement list in either form: binary when the data
// does not look like ascii text (every ascii list begins with a decimal
// PCR index and a space).
func Parse(data []byte, opts ParseOptions) (*List, error) {
	if looksASCII(data) {
		return ParseASCII(bytes.NewReader(data))
	}
	return ParseBinary(data, opts)
}

func looksASCII(b []byte) bool {
	i := 0
	for i < len(b) && i < 4 && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i > 0 && i < len(b) && b[i] == ' '
}

// ParseBinary parses binary_runtime_measurements (the canonical,
// little-endian format, ima_canonical_fmt; native order on little-endian
// machines). The entries' slices point into data.
func ParseBinary(data []byte, opts ParseOptions) (*List, error) {
	h := opts.Hash
	if h == 0 {
		h = crypto.SHA1
	}
	l := &List{Hash: h}
	hsize := h.Size()
	off := 0
	for idx := 0; off < len(data); idx++ {
		start := off
		fail := func(at int, format string, args ...any) error {
			return &FormatError{Index: idx, Offset: int64(at), Msg: fmt.Sprintf(format, args...), Err: ErrFormat}
		}
		need := func(n int, what string) error {
			if len(data)-off < n {
				return fail(off, "truncated: %s needs %d bytes, %d left", what, n, len(data)-off)
			}
			return nil
		}
		if err := need(4+hsize+4, "entry header"); err != nil {
			return nil, err
		}
		e := &Entry{Index: idx, Offset: int64(start)}
		e.PCR = binary.LittleEndian.Uint32(data[off:])
		if e.PCR > 23 {
			return nil, fail(off, "PCR index %d out of range 0-23 (a big-endian list, or not a measurement list)", e.PCR)
		}
		off += 4
		e.TemplateHash = data[off : off+hsize : off+hsize]
		off += hsize
		nlen := binary.LittleEndian.Uint32(data[off:])
		if nlen == 0 || nlen > maxTemplateLen {
			return nil, fail(off, "template name length %d out of range 1-%d", nlen, maxTemplateLen)
		}
		off += 4
		if err := need(int(nlen), "template name"); err != nil {
			return nil, err
		}
		e.Template = string(data[off : off+int(nlen)])
		off += int(nlen)
		if e.Template == templateIMA {
			if err := parseBinaryIMA(e, data, &off, fail, need); err != nil {
				return nil, err
			}
			l.Entries = append(l.Entries, e)
			continue
		}
		if err := need(4, "template data length"); err != nil {
			return nil, err
		}
		dlen := binary.LittleEndian.Uint32(data[off:])
		if dlen > maxEntryData {
			return nil, fail(off, "template data length %d over the limit %d", dlen, maxEntryData)
		}
		off += 4
		if err := need(int(dlen), "template data"); err != nil {
			return nil, err
		}
		e.raw = data[off : off+int(dlen) : off+int(dlen)]
		fields, known := templateFields(e.Template)
		e.Known = known
		// split the data into fields: u32 length | data, as many as it has
		p := 0
		for p < len(e.raw) {
			if len(e.raw)-p < 4 {
				return nil, fail(off+p, "template data: field %d length truncated", len(e.Fields))
			}
			fl := int(binary.LittleEndian.Uint32(e.raw[p:]))
			p += 4
			if fl > len(e.raw)-p {
				return nil, fail(off+p-4, "template data: field %d length %d exceeds the %d bytes left", len(e.Fields), fl, len(e.raw)-p)
			}
			e.Fields = append(e.Fields, e.raw[p:p+fl:p+fl])
			p += fl
		}
		if known && len(e.Fields) != len(fields) {
			return nil, fail(off, "template %s has %d fields, the data holds %d", e.Template, len(fields), len(e.Fields))
		}
		if known {
			if err := e.interpret(fields); err != nil {
				return nil, fail(off, "%v", err)
			}
		}
		off += int(dlen)
		l.Entries = append(l.Entries, e)
	}
	return l, nil
}

func parseBinaryIMA(e *Entry, data []byte, off *int, fail func(int, string, ...any) error, need func(int, string) error) error {
	if err := need(imaDigestSize+4, "ima template digest and name length"); err != nil {
		return err
	}
	d := data[*off : *off+imaDigestSize : *off+imaDigestSize]
	*off += imaDigestSize
	nl := binary.LittleEndian.Uint32(data[*off:])
	if nl > imaNameHashLen-1 {
		return fail(*off, "ima template: name length %d over %d", nl, imaNameHashLen-1)
	}
	*off += 4
	if err := need(int(nl), "ima template name"); err != nil {
		return err
	}
	n := data[*off : *off+int(nl) : *off+int(nl)]
	*off += int(nl)
	e.Fields = [][]byte{d, n}
	e.Known = true
	return e.interpret(templates[templateIMA])
}

// interpret fills the named fields from e.Fields.
func (e *Entry) interpret(fields []string) error {
	for i, id := range fields {
		f := e.Fields[i]
		switch id {
		case fieldD:
			e.DigestAlgo, e.Digest = "sha1", f
		case fieldN:
			if bytes.IndexByte(f, 0) >= 0 {
				return fmt.Errorf("field n: name contains a NUL byte")
			}
			e.Name = string(f)
		case fieldDNG, fieldDNGv2:
			kind, algo, d, err := parseDigestField(f, id == fieldDNGv2)
			if err != nil {
				return fmt.Errorf("field %s: %w", id, err)
			}
			e.DigestKind, e.DigestAlgo, e.Digest = kind, algo, d
		case fieldNNG:
			if len(f) == 0 || f[len(f)-1] != 0 {
				return fmt.Errorf("field n-ng: name not NUL-terminated")
			}
			if bytes.IndexByte(f[:len(f)-1], 0) >= 0 {
				return fmt.Errorf("field n-ng: name contains a NUL byte")
			}
			e.Name = string(f[:len(f)-1])
		case fieldSig:
			e.Sig = f
		case fieldBuf:
			e.Buf = f
		case fieldDModsig:
			if len(f) > 0 {
				if _, _, _, err := parseDigestField(f, false); err != nil {
					return fmt.Errorf("field d-modsig: %w", err)
				}
			}
		case fieldModsig:
			e.Modsig = f
		}
	}
	return nil
}

// parseDigestField decodes "algo:" NUL digest (d-ng) or "kind:algo:" NUL
// digest (d-ngv2), checking the digest size against the algorithm.
func parseDigestField(f []byte, v2 bool) (kind, algo string, digest []byte, err error) {
	z := bytes.IndexByte(f, 0)
	if z < 2 || f[z-1] != ':' {
		return "", "", nil, fmt.Errorf("no \"algo:\" NUL prefix")
	}
	prefix := string(f[:z-1])
	if v2 {
		k, a, ok := strings.Cut(prefix, ":")
		if !ok || (k != "ima" && k != "verity") {
			return "", "", nil, fmt.Errorf("prefix %q is not ima:ALGO or verity:ALGO", prefix)
		}
		kind, prefix = k, a
	}
	h, err := imasig.ParseHash(prefix)
	if err != nil {
		return "", "", nil, fmt.Errorf("digest algorithm %q: %w", prefix, err)
	}
	digest = f[z+1:]
	if len(digest) != h.Size() {
		return "", "", nil, fmt.Errorf("%s digest of %d bytes, want %d", prefix, len(digest), h.Size())
	}
	return kind, prefix, digest, nil
}

// maxLine bounds one ascii line (a 16 MiB buffer in hex, and more).
const maxLine = 2*maxEntryData + 4096

// ParseASCII parses ascii_runtime_measurements: one entry per line,
// "PCR template-hash template-name field...", fields separated by one
// space as ima_ascii_measurements_show prints them (an empty field leaves
// a trailing space). A name may contain spaces: it is the one field whose
// extent follows from the others. The template data is rebuilt from the
// fields, so every template hash can be recomputed; an unknown template
// is kept as an entry whose data cannot be rebuilt (Known false).
func ParseASCII(r io.Reader) (*List, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	l := &List{}
	line := 0
	for sc.Scan() {
		line++
		text := sc.Text()
		if text == "" {
			continue
		}
		idx := len(l.Entries)
		fail := func(format string, args ...any) error {
			return &FormatError{Index: idx, Offset: -1, Line: line, Msg: fmt.Sprintf(format, args...), Err: ErrFormat}
		}
		tok := strings.Split(text, " ")
		if len(tok) < 3 {
			return nil, fail("want \"PCR template-hash template fields\", got %d fields", len(tok))
		}
		pcr, err := strconv.ParseUint(tok[0], 10, 32)
		if err != nil || pcr > 23 {
			return nil, fail("PCR %q is not a number 0-23", tok[0])
		}
		th, err := hex.DecodeString(tok[1])
		if err != nil {
			return nil, fail("template hash %q is not hex", tok[1])
		}
		var h crypto.Hash
		switch len(th) {
		case 20:
			h = crypto.SHA1
		case 32:
			h = crypto.SHA256
		case 48:
			h = crypto.SHA384
		case 64:
			h = crypto.SHA512
		default:
			return nil, fail("template hash of %d bytes is no known digest size", len(th))
		}
		if l.Hash == 0 {
			l.Hash = h
		} else if l.Hash != h {
			return nil, fail("template hash of %d bytes, earlier entries have %d", len(th), l.Hash.Size())
		}
		e := &Entry{Index: idx, Offset: -1, Line: line, PCR: uint32(pcr), TemplateHash: th, Template: tok[2]}
		if len(e.Template) == 0 || len(e.Template) > maxTemplateLen {
			return nil, fail("template name of %d bytes", len(e.Template))
		}
		fields, known := templateFields(e.Template)
		e.Known = known
		if known {
			if err := e.fromASCII(fields, tok[3:]); err != nil {
				return nil, fail("template %s: %v", e.Template, err)
			}
		}
		l.Entries = append(l.Entries, e)
	}
	if err := sc.Err(); err != nil {
		return nil, &FormatError{Index: len(l.Entries), Offset: -1, Line: line + 1, Msg: err.Error(), Err: errors.Join(ErrFormat, err)}
	}
	if l.Hash == 0 {
		l.Hash = crypto.SHA1
	}
	return l, nil
}

// fromASCII rebuilds the template data from the shown fields
// (ima_show_template_digest_ng, _string, _sig, _buf).
func (e *Entry) fromASCII(fields []string, tok []string) error {
	nameAt := -1
	for i, f := range fields {
		if f == fieldN || f == fieldNNG {
			nameAt = i
		}
	}
	if len(tok) < len(fields) || (nameAt < 0 && len(tok) != len(fields)) {
		return fmt.Errorf("%d fields, want %d", len(tok), len(fields))
	}
	// the name takes the extra space-separated words
	extra := len(tok) - len(fields)
	vals := make([]string, len(fields))
	j := 0
	for i := range fields {
		if i == nameAt {
			vals[i] = strings.Join(tok[j:j+1+extra], " ")
			j += 1 + extra
			continue
		}
		vals[i] = tok[j]
		j++
	}
	e.Fields = make([][]byte, len(fields))
	for i, id := range fields {
		v := vals[i]
		var b []byte
		var err error
		switch id {
		case fieldD:
			b, err = hex.DecodeString(v)
			if err == nil && len(b) != imaDigestSize {
				err = fmt.Errorf("digest of %d bytes, want %d", len(b), imaDigestSize)
			}
		case fieldN:
			b = []byte(v)
		case fieldNNG:
			b = append([]byte(v), 0)
		case fieldDNG, fieldDModsig, fieldDNGv2:
			if v == "" && id == fieldDModsig {
				break
			}
			k := strings.LastIndexByte(v, ':')
			if k < 0 {
				err = fmt.Errorf("digest %q has no \"algo:\" prefix", v)
				break
			}
			var d []byte
			d, err = hex.DecodeString(v[k+1:])
			b = append(append([]byte(v[:k+1]), 0), d...)
		case fieldSig, fieldBuf, fieldModsig, fieldEVMSig, fieldXattrVals:
			b, err = hex.DecodeString(v)
		default:
			err = fmt.Errorf("field %s is not shown in a form that can be rebuilt", id)
		}
		if err != nil {
			return fmt.Errorf("field %d (%s): %w", i, id, err)
		}
		e.Fields[i] = b
	}
	return e.interpret(fields)
}

// AppendBinary appends the entry in the binary list format (the inverse of
// ParseBinary), for tests and for converting an ascii list. An entry of an
// unknown template parsed from ascii has no data and cannot be encoded.
func (e *Entry) AppendBinary(b []byte) ([]byte, error) {
	if !e.Known && e.raw == nil {
		return nil, fmt.Errorf("%s: template %s unknown, no data to encode", e.Where(), e.Template)
	}
	b = binary.LittleEndian.AppendUint32(b, e.PCR)
	b = append(b, e.TemplateHash...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(e.Template)))
	b = append(b, e.Template...)
	if e.Template == templateIMA {
		b = append(b, e.Fields[0]...)
		b = binary.LittleEndian.AppendUint32(b, uint32(len(e.Fields[1])))
		return append(b, e.Fields[1]...), nil
	}
	n := 0
	for _, f := range e.Fields {
		n += 4 + len(f)
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(n))
	for _, f := range e.Fields {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(f)))
		b = append(b, f...)
	}
	return b, nil
}

// AppendASCII appends the entry as ascii_runtime_measurements shows it
// (without the newline). The inverse of ParseASCII for known templates.
func (e *Entry) AppendASCII(b []byte) ([]byte, error) {
	fields, ok := templateFields(e.Template)
	if !ok || len(fields) != len(e.Fields) {
		return nil, fmt.Errorf("%s: template %s cannot be shown", e.Where(), e.Template)
	}
	b = strconv.AppendUint(b, uint64(e.PCR), 10)
	b = append(b, ' ')
	b = hex.AppendEncode(b, e.TemplateHash)
	b = append(b, ' ')
	b = append(b, e.Template...)
	for i, id := range fields {
		f := e.Fields[i]
		b = append(b, ' ')
		switch id {
		case fieldN:
			b = append(b, f...)
		case fieldNNG:
			b = append(b, bytes.TrimSuffix(f, []byte{0})...)
		case fieldDNG, fieldDNGv2, fieldDModsig:
			if z := bytes.IndexByte(f, 0); z >= 0 {
				b = append(b, f[:z]...)
				b = hex.AppendEncode(b, f[z+1:])
			}
		default:
			b = hex.AppendEncode(b, f)
		}
	}
	return b, nil
}
