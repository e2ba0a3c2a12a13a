// Package service is imaforge's part of the signing service: an "ima"
// signature module registered in relic's server (github.com/sassoftware/
// relic/v8, its server, TLS client-certificate authentication, key ACLs and
// audit are relic's own) and the client that sends it batches.
//
// A request is POST /sign?key=NAME&sigtype=ima&filename=F with a JSON body
// (Request): a batch of (path, hash algorithm, digest) for the one key. The
// module checks every entry and every path against the tenant scope of the
// key's certificate chain (pki.ParseScope) before signing any, signs each
// digest as a security.ima v2 value (imasig, type 0x03 version 2) and
// answers a Response naming the SHA-256 of the request body. A bad batch is
// refused whole with a problem document (RFC 7807) and nothing in it is
// signed. A larger batch (up to MaxStream entries) is sent as a stream of
// entries, one JSON object a line (FormatNDJSON, ReadStream), with the
// same all-or-nothing rule; its answer is a line per value and a last line
// naming the request digest (StreamLine).
package service

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path"

	"github.com/imaforge/imaforge/imasig"
)

// SigType is the relic signature type (the "sigtype" query parameter) of
// the module.
const SigType = "ima"

// Limits of one request. A larger batch is refused whole (ErrBadRequest):
// the client splits its work into batches of at most MaxBatch entries.
const (
	MaxBatch = 4096
	// MaxBody bounds the request body: MaxBatch entries of a 4 KiB path
	// and a SHA-512 digest fit.
	MaxBody = 24 << 20
	// MaxPath is the longest path accepted (PATH_MAX).
	MaxPath = 4096
)

// ErrBadRequest is matched by every error ParseRequest returns.
var ErrBadRequest = errors.New("bad signing request")

// Entry is one file to sign: its absolute path in the image, the hash
// algorithm (imasig names: sha256, sha384, sha512, ...) and the digest of
// its content, in hex.
type Entry struct {
	Path   string `json:"path"`
	Hash   string `json:"hash"`
	Digest string `json:"digest"`
}

// Request is the body of an ima signing request.
type Request struct {
	Entries []Entry `json:"entries"`
}

// Response is the body of the answer: Values[i] is the security.ima value
// of Entries[i]; RequestDigest is the SHA-256 of the request body, in hex,
// so that the client knows which batch it answers.
type Response struct {
	RequestDigest string   `json:"request_digest"`
	Key           string   `json:"key"`
	Values        [][]byte `json:"values"`
}

// Item is a parsed, checked Entry.
type Item struct {
	Path   string
	Hash   imasig.Hash
	Digest []byte
}

// RequestDigest returns the hex SHA-256 of a request body.
func RequestDigest(body []byte) string {
	d := sha256.Sum256(body)
	return hex.EncodeToString(d[:])
}

// ParseRequest decodes and checks a request body: well-formed JSON with no
// unknown field, 1 to MaxBatch entries, each with an absolute clean path,
// a hash imaforge may sign with and a digest of that hash's length.
// Errors wrap ErrBadRequest and name the entry.
func ParseRequest(body []byte) ([]Item, error) {
	if len(body) > MaxBody {
		return nil, fmt.Errorf("%w: body of more than %d bytes", ErrBadRequest, MaxBody)
	}
	var req Request
	if es, ok := fastRequest(body); ok {
		req.Entries = es
	} else {
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadRequest, err)
		}
		if dec.More() {
			return nil, fmt.Errorf("%w: data after the request object", ErrBadRequest)
		}
	}
	if len(req.Entries) == 0 {
		return nil, fmt.Errorf("%w: no entries", ErrBadRequest)
	}
	if len(req.Entries) > MaxBatch {
		return nil, fmt.Errorf("%w: %d entries, at most %d in one batch", ErrBadRequest, len(req.Entries), MaxBatch)
	}
	items := make([]Item, len(req.Entries))
	for i, e := range req.Entries {
		it, err := e.Parse()
		if err != nil {
			return nil, fmt.Errorf("%w: entry %d (%q): %w", ErrBadRequest, i, e.Path, err)
		}
		items[i] = it
	}
	return items, nil
}

// Parse checks one entry of a request and decodes it.
func (e Entry) Parse() (Item, error) {
	if e.Path == "" || e.Path[0] != '/' || len(e.Path) > MaxPath || path.Clean(e.Path) != e.Path {
		return Item{}, fmt.Errorf("path must be absolute and clean, at most %d bytes", MaxPath)
	}
	h, err := imasig.ParseHash(e.Hash)
	if err != nil {
		return Item{}, err
	}
	if !h.SigningAllowed() || !h.Available() {
		return Item{}, fmt.Errorf("%w: %s cannot be used to sign", imasig.ErrUnsupportedHash, h)
	}
	d, err := hex.DecodeString(e.Digest)
	if err != nil {
		return Item{}, fmt.Errorf("digest: %w", err)
	}
	if len(d) != h.Size() {
		return Item{}, fmt.Errorf("%s digest of %d bytes, want %d", h, len(d), h.Size())
	}
	return Item{Path: e.Path, Hash: h, Digest: d}, nil
}

// NewEntry returns the Entry of one file.
func NewEntry(p string, h imasig.Hash, digest []byte) Entry {
	return Entry{Path: p, Hash: h.String(), Digest: hex.EncodeToString(digest)}
}
