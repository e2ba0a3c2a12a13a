package ceremony

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
)

// Requests and responses are sealed JSON documents: one field holds the
// lowercase hex SHA-256 of the document's compact JSON (encoding/json
// field order) with that field empty. sealJSON writes the seal, checkSeal
// checks it.

// selfDigest returns the SHA-256 of v's compact JSON with *field empty;
// *field is left as it was.
func selfDigest(v any, field *string) (string, error) {
	saved := *field
	*field = ""
	b, err := json.Marshal(v)
	*field = saved
	if err != nil {
		return "", err
	}
	d := sha256.Sum256(b)
	return hex.EncodeToString(d[:]), nil
}

// sealJSON sets *field, which must be one of v's fields, to v's own digest
// and returns v's indented JSON followed by a newline.
func sealJSON(v any, field *string) ([]byte, error) {
	d, err := selfDigest(v, field)
	if err != nil {
		return nil, err
	}
	*field = d
	return indentJSON(v)
}

// checkSeal reports (ErrSelfDigest) whether *field, v's JSON field name,
// differs from v's own digest: the document was altered after sealing.
func checkSeal(v any, field *string, name string) error {
	got, err := selfDigest(v, field)
	if err != nil {
		return err
	}
	if *field != got {
		return fmt.Errorf("%w: %s %q, content has %s", ErrSelfDigest, name, *field, got)
	}
	return nil
}

func indentJSON(v any) ([]byte, error) {
	b, err := json.MarshalIndent(v, "", "  ")
	return append(b, '\n'), err
}

// readDocument reads path and parses it with parse; a parse error is
// wrapped in a FileError naming path.
func readDocument[T any](path string, parse func([]byte) (*T, error)) (*T, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	v, err := parse(b)
	if err != nil {
		return nil, &FileError{Path: path, Err: err}
	}
	return v, nil
}
