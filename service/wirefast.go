package service

import "encoding/base64"

// The fast paths of the wire format. encoding/json decodes a batch of 256
// entries in about 0.5 ms and its answer in about 0.65 ms (streamed: 1 ms
// each), reflection and a byte-at-a-time scanner for a few fixed keys,
// which BenchmarkSign counted among the service's costs per signature.
// Each function here reads only the compact form that encoding/json's
// Marshal and Encoder write (the keys in the order of the struct, no
// whitespace, nothing after the object) with strings of printable ASCII
// without escapes, and says ok=false for anything else: the caller then
// decodes the same bytes with encoding/json as before, so that the fast path
// changes no result and no error (FuzzWireFast: whenever it accepts bytes,
// encoding/json accepts them with the same values).

// wireScan reads b from i.
type wireScan struct {
	b []byte
	i int
}

// lit consumes s if b continues with it.
func (w *wireScan) lit(s string) bool {
	if len(w.b)-w.i < len(s) || string(w.b[w.i:w.i+len(s)]) != s {
		return false
	}
	w.i += len(s)
	return true
}

// str consumes a JSON string of printable ASCII other than `"` and `\`
// (a string encoding/json decodes to its bytes as they are) and returns
// its contents.
func (w *wireScan) str() ([]byte, bool) {
	if w.i >= len(w.b) || w.b[w.i] != '"' {
		return nil, false
	}
	start := w.i + 1
	for j := start; j < len(w.b); j++ {
		switch c := w.b[j]; {
		case c == '"':
			w.i = j + 1
			return w.b[start:j], true
		case c < 0x20 || c > 0x7e || c == '\\':
			return nil, false
		}
	}
	return nil, false
}

func (w *wireScan) end() bool { return w.i == len(w.b) }

// field consumes key (a literal with its punctuation) and the string after
// it.
func (w *wireScan) field(key string) ([]byte, bool) {
	if !w.lit(key) {
		return nil, false
	}
	return w.str()
}

// entry consumes an Entry object. (After a failed field the next ones are
// read from wherever it stopped: the result is not ok either way.)
func (w *wireScan) entry() (Entry, bool) {
	p, ok1 := w.field(`{"path":`)
	h, ok2 := w.field(`,"hash":`)
	d, ok3 := w.field(`,"digest":`)
	if !ok1 || !ok2 || !ok3 || !w.lit(`}`) {
		return Entry{}, false
	}
	return Entry{Path: string(p), Hash: string(h), Digest: string(d)}, true
}

// fastRequest decodes a request body {"entries":[...]} of at least one
// entry.
func fastRequest(body []byte) ([]Entry, bool) {
	w := wireScan{b: body}
	if !w.lit(`{"entries":[`) {
		return nil, false
	}
	// a valid entry takes more than 96 bytes (path "/", sha256's 64 hex
	// digits: 104), so this is room enough for every valid request
	entries := make([]Entry, 0, min(len(body)/96+1, MaxBatch+1))
	for {
		e, ok := w.entry()
		if !ok {
			return nil, false
		}
		entries = append(entries, e)
		if w.lit(`,`) {
			continue
		}
		if w.lit(`]}`) && w.end() {
			return entries, true
		}
		return nil, false
	}
}

// fastEntry decodes one line of a streamed request (without its "\n").
func fastEntry(line []byte) (Entry, bool) {
	w := wireScan{b: line}
	e, ok := w.entry()
	if !ok || !w.end() {
		return Entry{}, false
	}
	return e, true
}

// base64Value decodes a value as encoding/json decodes a []byte
// (base64.StdEncoding) into buf's free capacity, or a new array if it
// does not fit, and returns it with no spare capacity.
func base64Value(s []byte, buf *[]byte) ([]byte, bool) {
	if len(s) == 0 {
		return []byte{}, true // encoding/json's empty value is not nil
	}
	n := base64.StdEncoding.DecodedLen(len(s))
	if cap(*buf)-len(*buf) < n {
		*buf = make([]byte, 0, max(n, 64<<10))
	}
	b := *buf
	m, err := base64.StdEncoding.Decode(b[len(b):len(b)+n], s)
	if err != nil {
		return nil, false
	}
	*buf = b[:len(b)+m]
	return b[len(b) : len(b)+m : len(b)+m], true
}

// fastResponse decodes a Response {"request_digest":..,"key":..,"values":
// [...]} of at least one value.
func fastResponse(blob []byte) (Response, bool) {
	w := wireScan{b: blob}
	var r Response
	d, ok1 := w.field(`{"request_digest":`)
	k, ok2 := w.field(`,"key":`)
	if !ok1 || !ok2 || !w.lit(`,"values":[`) {
		return Response{}, false
	}
	r.RequestDigest, r.Key = string(d), string(k)
	var buf []byte
	for {
		s, ok := w.str()
		if !ok {
			return Response{}, false
		}
		v, ok := base64Value(s, &buf)
		if !ok {
			return Response{}, false
		}
		r.Values = append(r.Values, v)
		if w.lit(`,`) {
			continue
		}
		if w.lit(`]}`) && w.end() {
			return r, true
		}
		return Response{}, false
	}
}

// fastValueLine decodes a line {"value":"..."} of a streamed answer
// (without its "\n") into buf's free capacity (base64Value).
func fastValueLine(line []byte, buf *[]byte) ([]byte, bool) {
	w := wireScan{b: line}
	s, ok := w.field(`{"value":`)
	if !ok || !w.lit(`}`) || !w.end() {
		return nil, false
	}
	return base64Value(s, buf)
}

// AppendValueLine appends the line of value v of a streamed answer, the
// bytes json.Encoder writes for StreamLine{Value: v} (base64 has no
// character that JSON escapes), without reflection.
func AppendValueLine(dst, v []byte) []byte {
	dst = append(dst, `{"value":"`...)
	dst = base64.StdEncoding.AppendEncode(dst, v)
	return append(dst, "\"}\n"...)
}
