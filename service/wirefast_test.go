package service

import (
	"bytes"
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/imaforge/imaforge/imasig"
)

// slowRequest decodes a request body as ParseRequest did before
// fastRequest: encoding/json, no unknown field, nothing after the object.
func slowRequest(body []byte) ([]Entry, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var req Request
	if err := dec.Decode(&req); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("data after the object")
	}
	return req.Entries, nil
}

// checkWireFast fails t if a fast path accepts b and encoding/json does
// not, or decodes it otherwise.
func checkWireFast(t *testing.T, b []byte) {
	t.Helper()
	if es, ok := fastRequest(b); ok {
		want, err := slowRequest(b)
		if err != nil || !reflect.DeepEqual(es, want) {
			t.Errorf("fastRequest(%q) = %+v; encoding/json: %+v, %v", b, es, want, err)
		}
	}
	if e, ok := fastEntry(b); ok {
		want, err := slowRequest(append(append([]byte(`{"entries":[`), b...), "]}"...))
		if err != nil || len(want) != 1 || want[0] != e {
			t.Errorf("fastEntry(%q) = %+v; encoding/json: %+v, %v", b, e, want, err)
		}
	}
	if r, ok := fastResponse(b); ok {
		var want Response
		if err := json.Unmarshal(b, &want); err != nil || !reflect.DeepEqual(r, want) {
			t.Errorf("fastResponse(%q) = %+v; encoding/json: %+v, %v", b, r, want, err)
		}
	}
	var buf []byte
	if v, ok := fastValueLine(b, &buf); ok {
		var want StreamLine
		if err := json.Unmarshal(b, &want); err != nil || !bytes.Equal(v, want.Value) || want.RequestDigest != "" || want.Count != 0 || want.Key != "" {
			t.Errorf("fastValueLine(%q) = %x; encoding/json: %+v, %v", b, v, want, err)
		}
	}
}

// wireSamples are what the client and the server write (which the fast
// paths must take) and near misses (which they must leave to
// encoding/json).
func wireSamples() (fast, other [][]byte) {
	d := sha512.Sum512([]byte("x"))
	entries := []Entry{NewEntry("/usr/bin/a", imasig.SHA256, d[:32]), NewEntry("/etc/b c", imasig.SHA512, d[:])}
	req, _ := json.Marshal(Request{Entries: entries})
	line, _ := json.Marshal(entries[1])
	resp, _ := json.Marshal(Response{RequestDigest: "ab01", Key: "mfr", Values: [][]byte{{3, 2, 4}, d[:], {0xff}}})
	val, _ := json.Marshal(StreamLine{Value: d[:]})
	fast = [][]byte{req, line, resp, val}
	other = [][]byte{
		[]byte(`{"entries":[]}`),
		[]byte(`{"entries":[{"path":"/a","hash":"sha256","digest":"00"}]} `),
		[]byte(`{"entries":[{"path":"/a","hash":"sha256","digest":"00"}]}{}`),
		[]byte(`{"entries":[{"path":"/a","hash":"sha256","digest":"00"}],}`),
		[]byte(`{"entries":[{"path":"/a","hash":"sha256","digest":"00","x":1}]}`),
		[]byte(`{"entries":[{"path":"/a\u0041","hash":"sha256","digest":"00"}]}`),
		[]byte(`{"entries":[{"path":"/\xc3\xa9","hash":"sha256","digest":"00"}]}`),
		[]byte(`{"entries":[{"path":"/a","hash":"sha256","digest":"00"},]}`),
		[]byte(`{"Entries":[{"Path":"/a","hash":"sha256","digest":"00"}]}`),
		[]byte(`{"path":"/a","hash":"sha256","digest":"00"} `),
		[]byte(`{"path":"/a","hash":"sha256","digest":"00"`),
		[]byte(`{"path":"/a","digest":"00","hash":"sha256"}`),
		[]byte(`{"request_digest":"ab","key":"k","values":[]}`),
		[]byte(`{"request_digest":"ab","key":"k","values":null}`),
		[]byte(`{"request_digest":"ab","key":"k","values":["AwI"]}`),
		[]byte(`{"request_digest":"ab","key":"k","values":["A\nwI="]}`),
		[]byte(`{"request_digest":"ab","key":"k","values":["AwI=",]}`),
		[]byte(`{"request_digest":"ab","key":"k","values":["AwI="]}x`),
		[]byte(`{"value":"AwI"}`),
		[]byte(`{"value":"AwI=","count":1}`),
		[]byte(`{"value":"AwI=" }`),
		[]byte(`{"value":"A\u0077I="}`),
		[]byte(`{"request_digest":"ab","count":1}`),
	}
	return fast, other
}

// TestWireFast: the fast paths take what the client and the server write,
// giving what encoding/json gives, and leave the rest to encoding/json.
func TestWireFast(t *testing.T) {
	fast, other := wireSamples()
	took := func(b []byte) bool {
		var buf []byte
		_, a := fastRequest(b)
		_, c := fastEntry(b)
		_, d := fastResponse(b)
		_, e := fastValueLine(b, &buf)
		return a || c || d || e
	}
	for _, b := range fast {
		if !took(b) {
			t.Errorf("no fast path takes %q", b)
		}
		checkWireFast(t, b)
	}
	for _, b := range other {
		if took(b) {
			t.Errorf("a fast path takes %q", b)
		}
		checkWireFast(t, b)
	}
}

// TestAppendValueLine: the line of a value is the bytes json.Encoder
// writes for it.
func TestAppendValueLine(t *testing.T) {
	for _, v := range [][]byte{{0}, {0xfb, 0xff, 0xfe}, bytes.Repeat([]byte{0xf8, 0x3e}, 200)} {
		var want bytes.Buffer
		if err := json.NewEncoder(&want).Encode(StreamLine{Value: v}); err != nil {
			t.Fatal(err)
		}
		if got := AppendValueLine([]byte("x"), v); !bytes.Equal(got[1:], want.Bytes()) || got[0] != 'x' {
			t.Errorf("AppendValueLine(%x) = %q, want %q", v, got[1:], want.Bytes())
		}
	}
}

// TestValuesDoNotShare: values decoded into one buffer cannot grow into
// each other.
func TestValuesDoNotShare(t *testing.T) {
	r, ok := fastResponse([]byte(`{"request_digest":"ab","key":"k","values":["AQI=","AwQ="]}`))
	if !ok || len(r.Values) != 2 {
		t.Fatalf("%+v %v", r, ok)
	}
	_ = append(r.Values[0], 9)
	if !bytes.Equal(r.Values[1], []byte{3, 4}) {
		t.Fatalf("appending to a value changed the next: %x", r.Values[1])
	}
}

// FuzzWireFast: whenever a fast path accepts bytes, encoding/json accepts
// them with the same values.
func FuzzWireFast(f *testing.F) {
	fast, other := wireSamples()
	for _, b := range append(fast, other...) {
		f.Add(b)
	}
	f.Fuzz(checkWireFast)
}

// BenchmarkWire: the wire format's cost for a batch of 256 entries on each
// side (BenchmarkSign's batches): the server reading the request (JSON and
// streamed) and the client reading the answer.
func BenchmarkWire(b *testing.B) {
	entries := make([]Entry, 256)
	vals := make([][]byte, len(entries))
	for i := range entries {
		d := sha512.Sum512(fmt.Append(nil, i))
		entries[i] = NewEntry(fmt.Sprintf("/usr/bin/f%d", i), imasig.SHA256, d[:32])
		vals[i] = bytes.Repeat(d[:], 5)[:265] // an RSA-2048 value's length
	}
	req, _ := json.Marshal(Request{Entries: entries})
	stream, _ := EncodeStream(entries)
	resp, _ := json.Marshal(Response{RequestDigest: "ab", Key: "mfr", Values: vals})
	var answer []byte
	for _, v := range vals {
		answer = AppendValueLine(answer, v)
	}
	answer = append(answer, `{"request_digest":"ab","key":"mfr","count":256}`+"\n"...)
	b.Run("request/json", func(b *testing.B) {
		for b.Loop() {
			if _, err := ParseRequest(req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("request/ndjson", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := ReadStream(bytes.NewReader(stream)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("answer/json", func(b *testing.B) {
		for b.Loop() {
			r, ok := fastResponse(resp)
			if !ok {
				if err := json.Unmarshal(resp, &r); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("answer/ndjson", func(b *testing.B) {
		for b.Loop() {
			if _, err := ReadStreamResponse(bytes.NewReader(answer), len(vals), "ab"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
