// Package jsonrecord encodes the JSON records imaforge writes next to its
// outputs (the build record, attestation reference values) in one
// deterministic form: two-space indentation, no HTML escaping of <, > and &,
// and a final newline. encoding/json sorts map keys and keeps struct field
// order, so the same value always gives the same bytes.
package jsonrecord

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// Marshal encodes v as an indented JSON record with a final newline.
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// AppendString appends s as a JSON string exactly as Marshal writes it
// (encoding/json without HTML escaping): '"' and '\' escaped with a
// backslash, \b, \f, \n, \r and \t as such, other bytes below 0x20 as
// \u00XX, a byte that is not valid UTF-8 as \ufffd, U+2028 and U+2029 as
// \u2028 and \u2029; everything else as is. It is for encoders of records
// too large to go through reflection (FuzzAppendString compares them).
func AppendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < utf8.RuneSelf && c != '"' && c != '\\' {
			i++
			continue
		}
		var esc []byte
		var short [6]byte
		size := 1
		switch c {
		case '"', '\\':
			esc = append(short[:0], '\\', c)
		case '\b':
			esc = append(short[:0], '\\', 'b')
		case '\f':
			esc = append(short[:0], '\\', 'f')
		case '\n':
			esc = append(short[:0], '\\', 'n')
		case '\r':
			esc = append(short[:0], '\\', 'r')
		case '\t':
			esc = append(short[:0], '\\', 't')
		default:
			if c < 0x20 {
				esc = append(short[:0], '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
				break
			}
			var r rune
			r, size = utf8.DecodeRuneInString(s[i:])
			switch {
			case r == utf8.RuneError && size == 1:
				esc = append(short[:0], `\ufffd`...)
			case r == '\u2028' || r == '\u2029':
				esc = append(short[:0], '\\', 'u', '2', '0', '2', hex[r&0xf])
			default:
				i += size
				continue
			}
		}
		b = append(b, s[start:i]...)
		b = append(b, esc...)
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
