package service

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/imaforge/imaforge/imasig"
)

// FuzzParseRequest: any body either parses into items that satisfy the
// request's rules or is refused with ErrBadRequest; never a panic.
func FuzzParseRequest(f *testing.F) {
	good, _ := json.Marshal(Request{Entries: []Entry{NewEntry("/usr/bin/a", imasig.SHA256, make([]byte, 32))}})
	f.Add(good)
	f.Add([]byte(`{"entries":[{"path":"/a","hash":"sha512","digest":"00"}]}`))
	f.Add([]byte(`{"entries":[]}`))
	f.Add([]byte(`{"entries":[{"path":"/a/../b","hash":"sha256","digest":""}]} {}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		items, err := ParseRequest(body)
		if err != nil {
			return
		}
		if len(items) == 0 || len(items) > MaxBatch {
			t.Fatalf("%d items", len(items))
		}
		for _, it := range items {
			if len(it.Digest) != it.Hash.Size() || it.Path == "" || it.Path[0] != '/' {
				t.Fatalf("bad item %+v", it)
			}
		}
	})
}

// FuzzReadStream: any stream either gives 1 to MaxStream items that satisfy
// the request's rules or is refused with ErrBadRequest, and the digest is
// always the body's; never a panic.
func FuzzReadStream(f *testing.F) {
	good, _ := EncodeStream([]Entry{NewEntry("/usr/bin/a", imasig.SHA256, make([]byte, 32)), NewEntry("/etc/b", imasig.SHA512, make([]byte, 64))})
	f.Add(good)
	f.Add(append(good, '\n'))
	f.Add([]byte(`{"path":"/a","hash":"sha256","digest":"00"}` + "\n"))
	f.Add([]byte("{\"path\":\"/a\"}\n{}"))
	f.Fuzz(func(t *testing.T, body []byte) {
		items, digest, err := ReadStream(bytes.NewReader(body))
		if digest != RequestDigest(body) {
			t.Fatalf("digest %s is not the body's", digest)
		}
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error %v does not wrap ErrBadRequest", err)
			}
			return
		}
		if len(items) == 0 || len(items) > MaxStream {
			t.Fatalf("%d items", len(items))
		}
		for _, it := range items {
			if len(it.Digest) != it.Hash.Size() || it.Path == "" || it.Path[0] != '/' {
				t.Fatalf("bad item %+v", it)
			}
		}
	})
}

// FuzzReadStreamResponse: an answer either gives exactly n non-empty values
// or an error; never a panic.
func FuzzReadStreamResponse(f *testing.F) {
	f.Add([]byte("{\"value\":\"AwI=\"}\n{\"request_digest\":\"ab\",\"count\":1}\n"), 1)
	f.Add([]byte("{\"value\":\"AwI=\"}\n"), 2)
	f.Fuzz(func(t *testing.T, body []byte, n int) {
		if n < 0 || n > 16 {
			return
		}
		vals, err := ReadStreamResponse(bytes.NewReader(body), n, "ab")
		if err != nil {
			return
		}
		if len(vals) != n {
			t.Fatalf("%d values for %d", len(vals), n)
		}
		for _, v := range vals {
			if len(v) == 0 {
				t.Fatal("empty value")
			}
		}
	})
}
