package service

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
)

// The request formats of the module, chosen by the query parameter
// FormatParam of a request (relic passes it to the module as a flag).
const (
	// FormatParam names the format: FormatJSON (the default) or
	// FormatNDJSON.
	FormatParam = "ima-format"
	// FormatJSON is a Request object of at most MaxBatch entries, answered
	// by a Response object.
	FormatJSON = "json"
	// FormatNDJSON is a stream of Entry objects, one a line (newline-
	// delimited JSON, https://github.com/ndjson/ndjson-spec), at most
	// MaxStream entries in at most MaxStreamBody bytes, answered by one
	// StreamLine with the value of each entry, in order, and a last
	// StreamLine naming the request digest and the count.
	FormatNDJSON = "ndjson"
)

// Limits of a streamed request. A stream beyond them is refused whole.
const (
	MaxStream     = 65536
	MaxStreamBody = 64 << 20
	// MaxLine bounds one line of a stream: an entry with a MaxPath path
	// and a SHA-512 digest fits, with room for JSON escapes.
	MaxLine = 3*MaxPath + 512
)

// StreamLine is one line of the answer to a streamed request: Value (the
// security.ima value of the next entry), or, last, RequestDigest (the hex
// SHA-256 of the request body), Key and Count (the number of values).
type StreamLine struct {
	Value         []byte `json:"value,omitempty"`
	RequestDigest string `json:"request_digest,omitempty"`
	Key           string `json:"key,omitempty"`
	Count         int    `json:"count,omitempty"`
}

// ReadStream reads a streamed request from r an entry at a time, checking
// each as ParseRequest does, and returns the items and the hex SHA-256 of
// the body. It stops at the first bad line: the error wraps ErrBadRequest
// and names the line (1-based) and the entry's path; the digest is then
// that of the body up to MaxStreamBody+1 bytes (the rest is read and
// hashed but not parsed), so a refusal names the request too.
func ReadStream(r io.Reader) ([]Item, string, error) {
	h := sha256.New()
	lr := &io.LimitedReader{R: r, N: MaxStreamBody + 1}
	br := bufio.NewReaderSize(io.TeeReader(lr, h), 64<<10)
	items, err := readStream(br, lr)
	if err != nil {
		_, _ = io.Copy(io.Discard, br)
		return nil, digestOf(h), err
	}
	return items, digestOf(h), nil
}

func digestOf(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

func readStream(br *bufio.Reader, lr *io.LimitedReader) ([]Item, error) {
	var items []Item
	for line := 1; ; line++ {
		b, err := readLine(br)
		if lr.N <= 0 {
			return nil, fmt.Errorf("%w: stream of more than %d bytes", ErrBadRequest, MaxStreamBody)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %w", ErrBadRequest, line, err)
		}
		if len(items) == MaxStream {
			return nil, fmt.Errorf("%w: more than %d entries in one stream", ErrBadRequest, MaxStream)
		}
		e, ok := fastEntry(b)
		if !ok {
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&e); err != nil {
				return nil, fmt.Errorf("%w: line %d: %w", ErrBadRequest, line, err)
			}
			if dec.More() {
				return nil, fmt.Errorf("%w: line %d: data after the entry", ErrBadRequest, line)
			}
		}
		it, err := e.Parse()
		if err != nil {
			return nil, fmt.Errorf("%w: line %d (%q): %w", ErrBadRequest, line, e.Path, err)
		}
		items = append(items, it)
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("%w: no entries", ErrBadRequest)
	}
	return items, nil
}

// readLine returns the next line of br without its "\n"; io.EOF at the
// end. A last line without "\n", an empty line and a line longer than
// MaxLine are errors. The line may be br's buffer, valid until br is read
// again.
func readLine(br *bufio.Reader) ([]byte, error) {
	chunk, err := br.ReadSlice('\n')
	if err == nil && len(chunk) > 1 && len(chunk) <= MaxLine+1 {
		return chunk[:len(chunk)-1], nil // the whole line in br's buffer
	}
	var buf []byte
	for {
		buf = append(buf, chunk...)
		if len(buf) > MaxLine+1 {
			return nil, fmt.Errorf("line longer than %d bytes", MaxLine)
		}
		switch {
		case err == nil:
			if len(buf) == 1 {
				return nil, errors.New("empty line")
			}
			return buf[:len(buf)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			chunk, err = br.ReadSlice('\n')
		case errors.Is(err, io.EOF):
			if len(buf) == 0 {
				return nil, io.EOF
			}
			return nil, errors.New("last line does not end with a newline")
		default:
			return nil, err
		}
	}
}

// EncodeStream returns the streamed request of entries: one JSON object a
// line.
func EncodeStream(entries []Entry) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b) // Encode ends each object with "\n"
	for _, e := range entries {
		if err := enc.Encode(e); err != nil {
			return nil, err
		}
	}
	return b.Bytes(), nil
}

// ReadStreamResponse reads the answer to a streamed request of n entries
// whose body had the digest want, a line at a time, and returns the
// values. It fails unless there are exactly n values followed by the last
// line naming want: a cut answer is an error, never a shorter batch.
func ReadStreamResponse(r io.Reader, n int, want string) ([][]byte, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	vals := make([][]byte, 0, n)
	var buf []byte // the values' bytes (fastValueLine)
	for line := 1; ; line++ {
		b, err := readLine(br)
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("answer ends after %d of %d values, without the request digest", len(vals), n)
		}
		if err != nil {
			return nil, fmt.Errorf("answer line %d: %w", line, err)
		}
		var l StreamLine
		if v, ok := fastValueLine(b, &buf); ok {
			l.Value = v
		} else if err := json.Unmarshal(b, &l); err != nil {
			return nil, fmt.Errorf("answer line %d: %w", line, err)
		}
		if l.RequestDigest == "" {
			if len(l.Value) == 0 || len(vals) == n {
				return nil, fmt.Errorf("answer line %d: not one of the %d values", line, n)
			}
			vals = append(vals, l.Value)
			continue
		}
		if l.RequestDigest != want {
			return nil, fmt.Errorf("answer names request %s, sent %s", l.RequestDigest, want)
		}
		if l.Count != n || len(vals) != n {
			return nil, fmt.Errorf("answer has %d values (count %d) for %d entries", len(vals), l.Count, n)
		}
		if _, err := readLine(br); !errors.Is(err, io.EOF) {
			return nil, errors.New("data after the answer's last line")
		}
		return vals, nil
	}
}
