package service

import (
	"encoding/json"
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
