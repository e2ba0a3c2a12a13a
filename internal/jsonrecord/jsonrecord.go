// Package jsonrecord encodes the JSON records imaforge writes next to its
// outputs (the build record, attestation reference values) in one
// deterministic form: two-space indentation, no HTML escaping of <, > and &,
// and a final newline. encoding/json sorts map keys and keeps struct field
// order, so the same value always gives the same bytes.
package jsonrecord

import (
	"bytes"
	"encoding/json"
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
