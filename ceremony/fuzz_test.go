package ceremony

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var testTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func seedGolden(f *testing.F, name string) {
	if b, err := os.ReadFile(filepath.Join(golden, name)); err == nil {
		f.Add(b)
	}
}

// FuzzParseRequest: no input panics, and an accepted request re-encodes to
// a request that parses to the same bytes.
func FuzzParseRequest(f *testing.F) {
	seedGolden(f, "request.golden.json")
	f.Add([]byte(`{"format":"imaforge-signing-request/1"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRequest(b)
		if err != nil {
			return
		}
		b1, err := r.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		r2, err := ParseRequest(b1)
		if err != nil {
			t.Fatalf("re-encoded request refused: %v", err)
		}
		if b2, _ := r2.Marshal(); !bytes.Equal(b1, b2) {
			t.Fatal("request encoding is not stable")
		}
	})
}

// FuzzParseResponse: no input panics; accepted responses re-encode stably.
func FuzzParseResponse(f *testing.F) {
	seedGolden(f, "response.golden.json")
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseResponse(b)
		if err != nil {
			return
		}
		b1, _ := r.Marshal()
		r2, err := ParseResponse(b1)
		if err != nil {
			t.Fatalf("re-encoded response refused: %v", err)
		}
		if b2, _ := r2.Marshal(); !bytes.Equal(b1, b2) {
			t.Fatal("response encoding is not stable")
		}
	})
}

// FuzzParseSignHash: no input panics; every accepted line has a digest of
// the size its signature's hash needs.
func FuzzParseSignHash(f *testing.F) {
	seedGolden(f, "sums.golden.txt")
	f.Add([]byte("00  a 030204000000000000\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := ParseSignHash(strings.NewReader(string(b)), "fuzz")
		if err != nil {
			return
		}
		for _, l := range got {
			if len(l.Digest) != l.Sig.Hash.Size() {
				t.Fatalf("line %d: %d-byte digest for %s", l.Line, len(l.Digest), l.Sig.Hash)
			}
		}
	})
}

// FuzzVerifyAudit: no transcript panics VerifyAudit, and one it accepts has
// one record per line, its head the SHA-256 of the last line. Seeded with a
// transcript of a declined, a started and a complete record.
func FuzzVerifyAudit(f *testing.F) {
	req := &Request{Image: "i", Hash: "sha256", Keys: []RequestKey{}}
	if _, err := req.Marshal(); err != nil {
		f.Fatal(err)
	}
	path := filepath.Join(f.TempDir(), "audit.jsonl")
	a, err := OpenAudit(path)
	if err != nil {
		f.Fatal(err)
	}
	var started string
	for _, o := range []string{OutcomeDeclined, OutcomeStarted, OutcomeComplete} {
		rec := NewAuditRecord(req, "r.json", testTime)
		rec.Outcome = o
		if o == OutcomeComplete {
			rec.Started = started
		}
		if started, err = a.Append(rec); err != nil {
			f.Fatal(err)
		}
	}
	a.Close()
	b, _ := os.ReadFile(path)
	f.Add(b)
	f.Add([]byte("{}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := VerifyAudit(bytes.NewReader(b), "audit.jsonl")
		if err != nil {
			return
		}
		lines := bytes.Split(b, []byte("\n"))
		if s.Records != len(lines)-1 {
			t.Fatalf("%d records in %d lines", s.Records, len(lines)-1)
		}
		if s.Records > 0 && s.Head != lineSum(lines[len(lines)-2]) {
			t.Fatal("head is not the last line's digest")
		}
	})
}
