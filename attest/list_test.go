package attest

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"errors"
	"os"
	"strings"
	"testing"
)

// The list the Debian 6.1 kernel wrote in the kernel end-to-end test (no
// TPM: boot_aggregate zero), template ima-sig.
func TestParseKernelASCII(t *testing.T) {
	data, err := os.ReadFile("testdata/enforce.ascii")
	if err != nil {
		t.Fatal(err)
	}
	l, err := Parse(data, ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Hash != crypto.SHA1 || len(l.Entries) < 5 {
		t.Fatalf("hash %v, %d entries", l.Hash, len(l.Entries))
	}
	for _, e := range l.Entries {
		if got := e.ComputeTemplateHash(crypto.SHA1); !bytes.Equal(got, e.TemplateHash) {
			t.Errorf("%s %s: recomputed %x, kernel %x", e.Where(), e.Name, got, e.TemplateHash)
		}
	}
	if e := l.Entries[1]; e.Name != "/mnt/bin/good" || e.DigestAlgo != "sha256" || len(e.Sig) == 0 || e.Sig[0] != 3 {
		t.Errorf("entry 1: %+v", e)
	}
	// ascii -> binary -> ascii gives the same bytes
	var bin []byte
	for _, e := range l.Entries {
		if bin, err = e.AppendBinary(bin); err != nil {
			t.Fatal(err)
		}
	}
	lb, err := Parse(bin, ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := encodeASCII(t, lb.Entries); !bytes.Equal(got, data) {
		t.Errorf("binary round trip changed the list:\n%s", got)
	}
}

func TestTemplatesRoundTrip(t *testing.T) {
	d := sha256.Sum256([]byte("x"))
	d1 := make([]byte, 20)
	d1[0] = 1
	es := []*Entry{
		newEntry("ima", "/bin/old", d1, nil),
		newEntry("ima-ng", "/bin/a b", d[:], nil),
		newEntry("ima-sig", "/bin/s", d[:], []byte{3, 2, 4, 1, 2, 3, 4, 0, 1, 9}),
		newEntry("ima-sig", "/bin/unsigned", d[:], []byte{}),
		newEntry("ima-buf", "kernel_version", d[:], []byte("6.1.0")),
		newEntry("ima-modsig", "/lib/m.ko", d[:], nil),
	}
	for _, form := range []string{"binary", "ascii"} {
		var data []byte
		if form == "binary" {
			data = encodeBinary(t, es)
		} else {
			data = encodeASCII(t, es)
		}
		l, err := Parse(data, ParseOptions{})
		if err != nil {
			t.Fatalf("%s: %v", form, err)
		}
		if len(l.Entries) != len(es) {
			t.Fatalf("%s: %d entries", form, len(l.Entries))
		}
		for i, e := range l.Entries {
			if e.Name != es[i].Name || !bytes.Equal(e.Digest, es[i].Digest) || e.Template != es[i].Template {
				t.Errorf("%s entry %d: %q %x, want %q %x", form, i, e.Name, e.Digest, es[i].Name, es[i].Digest)
			}
			if got := e.ComputeTemplateHash(crypto.SHA1); !bytes.Equal(got, es[i].TemplateHash) {
				t.Errorf("%s entry %d (%s): template hash %x, want %x", form, i, e.Template, got, es[i].TemplateHash)
			}
		}
		if !bytes.Equal(l.Entries[4].Buf, []byte("6.1.0")) {
			t.Errorf("%s: ima-buf buffer %q", form, l.Entries[4].Buf)
		}
	}
}

func TestParseErrors(t *testing.T) {
	d := sha256.Sum256([]byte("x"))
	good := encodeBinary(t, []*Entry{newEntry("ima-ng", "/a", d[:], nil), newEntry("ima-ng", "/b", d[:], nil)})
	first := len(good) / 2
	tests := []struct {
		name   string
		data   []byte
		index  int
		offset int64
		line   int
		msg    string
	}{
		{"truncated header", good[:first+10], 1, int64(first), 0, "truncated"},
		{"truncated data", good[:len(good)-1], 1, -2, 0, "truncated"},
		{"bad pcr", append(append([]byte{}, good[:first]...), append([]byte{99, 0, 0, 0}, good[first+4:]...)...), 1, int64(first), 0, "PCR index 99"},
		{"zero name", func() []byte { b := bytes.Clone(good); copy(b[24:], []byte{0, 0, 0, 0}); return b }(), 0, 24, 0, "template name length 0"},
		{"ascii bad hash", []byte("10 zz ima-ng sha256:00 /a\n"), 0, -1, 1, "not hex"},
		{"ascii second line", []byte("10 " + strings.Repeat("0", 40) + " ima-ng sha256:" + strings.Repeat("00", 32) + " /a\n10 00 ima-ng\n"), 1, -1, 2, ""},
		{"ascii bad digest size", []byte("10 " + strings.Repeat("1", 40) + " ima-ng sha256:00 /a\n"), 0, -1, 1, "digest of 1 bytes"},
		{"ascii no prefix", []byte("10 " + strings.Repeat("1", 40) + " ima-ng 00 /a\n"), 0, -1, 1, "prefix"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(tt.data, ParseOptions{})
			var fe *FormatError
			if !errors.As(err, &fe) || !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v, want a FormatError", err)
			}
			if fe.Index != tt.index || (tt.offset >= -1 && fe.Offset != tt.offset) || fe.Line != tt.line || !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("got %v (index %d offset %d line %d)", err, fe.Index, fe.Offset, fe.Line)
			}
		})
	}
}

// An unknown template is kept as an entry (not skipped) and judged failed;
// in the binary form its data is still hashed and replayed.
func TestUnknownTemplateKept(t *testing.T) {
	d := sha256.Sum256([]byte("x"))
	e := newEntry("ima-ng", "/a", d[:], nil)
	e.Template = "my-tmpl"
	e.TemplateHash = e.ComputeTemplateHash(crypto.SHA1)
	bin := encodeBinary(t, []*Entry{newEntry("ima-ng", "/b", d[:], nil), e})
	l, err := Parse(bin, ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Entries) != 2 || l.Entries[1].Known || l.Entries[1].Template != "my-tmpl" {
		t.Fatalf("entries %+v", l.Entries)
	}
	rep, err := Verify(l, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r := rep.Entries[1]; r.Verdict != VerdictFailed || r.Reason != ReasonUnknownTemplate {
		t.Errorf("entry 1: %+v", r)
	}
	asc := []byte("10 " + strings.Repeat("1", 40) + " my-tmpl whatever fields\n")
	la, err := Parse(asc, ParseOptions{})
	if err != nil || len(la.Entries) != 1 || la.Entries[0].Known {
		t.Fatalf("ascii: %v %+v", err, la)
	}
}
