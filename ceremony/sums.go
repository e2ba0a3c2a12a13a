package ceremony

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/imaforge/imaforge/imasig"
)

// SumLine is one line of a sha256sum-style digest list.
type SumLine struct {
	Digest []byte
	Name   string
}

// WriteSums writes one "HEX  NAME" line per entry, the input of `evmctl
// sign_hash`. The name is for the reader only (ParseSignHash ignores it):
// one that is not plain text (a backslash, a control character such as a
// newline, bytes that are not UTF-8) is written Go-quoted ("a\\b"), never
// in GNU sha256sum's escaped form, whose leading backslash evmctl 1.4 does
// not understand: it signs the previous line's digest for such a line.
func WriteSums(w io.Writer, lines []SumLine) error {
	bw := bufio.NewWriter(w)
	for _, l := range lines {
		fmt.Fprintf(bw, "%x  %s\n", l.Digest, QuotePath(l.Name))
	}
	return bw.Flush()
}

// QuotePath returns name for display on one line: as it is when it is
// plain text, else Go-quoted (as in WriteSums lines).
func QuotePath(name string) string {
	plain := utf8.ValidString(name) && !strings.HasPrefix(name, `"`)
	for _, r := range name {
		if r == '\\' || unicode.IsControl(r) {
			plain = false
			break
		}
	}
	if plain {
		return name
	}
	return strconv.Quote(name)
}

// SignedDigest is a digest with its security.ima value, as read from
// `evmctl sign_hash` output.
type SignedDigest struct {
	Digest []byte
	Value  []byte
	Sig    *imasig.Signature
	Line   int
}

// ParseSignHash reads `evmctl sign_hash` output: each input line (a digest
// in hex, optionally followed by a separator ", \t" and anything) followed
// by a space and the hex security.ima value (ima-evm-utils src/evmctl.c cmd_sign_hash). Empty
// lines are skipped. name labels errors.
func ParseSignHash(r io.Reader, name string) ([]SignedDigest, error) {
	var out []SignedDigest
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		ferr := func(format string, args ...any) error {
			return &FileError{Path: name, Line: n, Err: formatErr(format, args...)}
		}
		body := strings.TrimPrefix(line, "\\")
		end := strings.IndexAny(body, ", \t")
		last := strings.LastIndexByte(body, ' ')
		if end <= 0 || last < end {
			return nil, ferr("want \"DIGEST  NAME IMA-HEX\" (evmctl sign_hash output)")
		}
		d, err := hex.DecodeString(body[:end])
		if err != nil {
			return nil, ferr("digest: %v", err)
		}
		v, err := hex.DecodeString(body[last+1:])
		if err != nil {
			return nil, ferr("security.ima value: %v", err)
		}
		sig, err := imasig.ParseSignature(v)
		if err != nil {
			return nil, &FileError{Path: name, Line: n, Err: err}
		}
		if len(d) != sig.Hash.Size() {
			return nil, ferr("%d-byte digest with a %s signature", len(d), sig.Hash)
		}
		out = append(out, SignedDigest{Digest: d, Value: v, Sig: sig, Line: n})
	}
	if err := sc.Err(); err != nil {
		return nil, &FileError{Path: name, Err: err}
	}
	return out, nil
}

// IsSignHash reports whether data looks like sign_hash output rather than a
// JSON response.
func IsSignHash(data []byte) bool {
	t := bytes.TrimSpace(data)
	return len(t) > 0 && t[0] != '{'
}
