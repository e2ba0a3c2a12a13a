package sigpack

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func entries(n int) []Entry {
	var es []Entry
	for i := range n {
		d := sha256.Sum256([]byte(fmt.Sprint(i)))
		es = append(es, Entry{Digest: d[:], Value: bytes.Repeat([]byte{byte(i)}, 10+i%300)})
	}
	return es
}

// countingReader counts ReadAt calls.
type countingReader struct {
	r *bytes.Reader
	n int
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) { c.n++; return c.r.ReadAt(p, off) }

// TestOneRead: a pack of a few MB is read with three reads (header, index,
// values), whatever is looked up; a larger one with one read per value.
func TestOneRead(t *testing.T) {
	es := entries(2000)
	b, err := Encode(32, es)
	if err != nil {
		t.Fatal(err)
	}
	for _, whole := range []bool{true, false} {
		if !whole {
			defer func(v int64) { wholeValues = v }(wholeValues)
			wholeValues = int64(len(b)) / 2
		}
		cr := &countingReader{r: bytes.NewReader(b)}
		p, err := Parse("PACK", cr, int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if v, ok, err := p.Get(e.Digest); !ok || err != nil || !bytes.Equal(v, e.Value) {
				t.Fatalf("whole %v: %x: %v %v", whole, e.Digest, ok, err)
			}
		}
		if want := map[bool]int{true: 3, false: 2 + len(es)}[whole]; cr.n != want {
			t.Fatalf("whole %v: %d reads, want %d", whole, cr.n, want)
		}
	}
}

// TestRoundTrip: every entry written is found with its value, digests not
// written are not, duplicates keep the first value, and the pack lists
// newest first.
func TestRoundTrip(t *testing.T) {
	dir := t.TempDir()
	es := entries(500)
	dup := Entry{Digest: es[7].Digest, Value: []byte("second")}
	first, err := Write(dir, 32, append(es, dup))
	if err != nil {
		t.Fatal(err)
	}
	p, err := Open(first)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if p.Len() != len(es) {
		t.Fatalf("%d entries, want %d", p.Len(), len(es))
	}
	for _, e := range es {
		v, ok, err := p.Get(e.Digest)
		if err != nil || !ok || !bytes.Equal(v, e.Value) {
			t.Fatalf("digest %x: %q %v %v", e.Digest, v, ok, err)
		}
	}
	other := sha256.Sum256([]byte("absent"))
	if _, ok, err := p.Get(other[:]); ok || err != nil {
		t.Fatalf("absent digest found: %v %v", ok, err)
	}
	if _, ok, _ := p.Get(other[:20]); ok {
		t.Fatal("a digest of another size found")
	}
	all, err := p.Entries()
	if err != nil || len(all) != len(es) {
		t.Fatalf("Entries: %d, %v", len(all), err)
	}
	second, err := Write(dir, 32, es[:1])
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, ".tmp-123"), nil, 0o644)
	names, err := List(dir)
	if err != nil || len(names) != 2 || names[0] != second || names[1] != first {
		t.Fatalf("List: %v %v; want %s first", names, err, second)
	}
	if names, err := List(filepath.Join(dir, "none")); err != nil || names != nil {
		t.Fatalf("List of a missing dir: %v %v", names, err)
	}
}

// TestDamaged: a pack with any of its checked fields damaged is refused,
// naming its path; a pack cut short before its values are read fails Parse;
// a large one (read value by value) cut short after Open fails Get.
func TestDamaged(t *testing.T) {
	good, err := Encode(32, entries(20))
	if err != nil {
		t.Fatal(err)
	}
	reindex := func(b []byte) []byte { // recompute the CRC after a change
		binary.LittleEndian.PutUint32(b[16:], indexCRC(b[:16], b[headerSize:headerSize+20*38]))
		return b
	}
	cases := map[string]func(b []byte) []byte{
		"magic":        func(b []byte) []byte { b[0] = 'X'; return b },
		"short":        func(b []byte) []byte { return b[:20] },
		"index crc":    func(b []byte) []byte { b[headerSize+3] ^= 1; return b },
		"count":        func(b []byte) []byte { binary.LittleEndian.PutUint32(b[8:], 1<<30); return b },
		"digest size":  func(b []byte) []byte { binary.LittleEndian.PutUint16(b[12:], 0); return b },
		"reserved":     func(b []byte) []byte { b[25] = 1; return b },
		"offset":       func(b []byte) []byte { binary.LittleEndian.PutUint32(b[headerSize+32:], 5); return reindex(b) },
		"past the end": func(b []byte) []byte { return b[:len(b)-1] },
		"length 0":     func(b []byte) []byte { binary.LittleEndian.PutUint16(b[headerSize+36:], 0); return reindex(b) },
		"order": func(b []byte) []byte {
			e0 := bytes.Clone(b[headerSize : headerSize+38])
			copy(b[headerSize:], b[headerSize+38:headerSize+76])
			copy(b[headerSize+38:], e0)
			return reindex(b)
		},
	}
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			b := f(bytes.Clone(good))
			_, err := Parse("PACK", bytes.NewReader(b), int64(len(b)))
			if err == nil || !errors.Is(err, ErrBadPack) && name != "short" || !bytes.Contains([]byte(err.Error()), []byte("PACK")) {
				t.Fatalf("accepted or unnamed: %v", err)
			}
		})
	}
	// values read at once: a reader shorter than the size given fails Parse
	if _, err := Parse("PACK", bytes.NewReader(good[:len(good)-1]), int64(len(good))); err == nil || !bytes.Contains([]byte(err.Error()), []byte("PACK: values")) {
		t.Fatalf("a pack cut short before its values were read: %v", err)
	}
	// values read one by one (a large pack): one cut short after Open
	defer func(v int64) { wholeValues = v }(wholeValues)
	wholeValues = 0
	path := filepath.Join(t.TempDir(), "x"+Ext)
	os.WriteFile(path, good, 0o644)
	p, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	os.Truncate(path, headerSize+20*38)
	e := entries(20)[3]
	if _, ok, err := p.Get(e.Digest); ok || err == nil {
		t.Fatalf("a value of a pack cut short: %v %v", ok, err)
	}
	if _, err := Open(t.TempDir()); err == nil {
		t.Fatal("a directory opened as a pack")
	}
}

// FuzzParse: whatever parses gives, for every index entry, a value inside
// the file, and re-encodes to a pack that parses to the same entries.
func FuzzParse(f *testing.F) {
	for _, n := range []int{0, 1, 5} {
		b, _ := Encode(32, entries(n))
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Parse("fuzz", bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		es, err := p.Entries()
		if err != nil {
			t.Fatalf("parsed, but: %v", err)
		}
		for _, e := range es {
			v, ok, err := p.Get(e.Digest)
			if !ok || err != nil || !bytes.Equal(v, e.Value) {
				t.Fatalf("Get(%x) = %x %v %v, want %x", e.Digest, v, ok, err, e.Value)
			}
		}
		if len(es) == 0 {
			return
		}
		b2, err := Encode(len(es[0].Digest), es)
		if err != nil {
			t.Fatal(err)
		}
		p2, err := Parse("again", bytes.NewReader(b2), int64(len(b2)))
		if err != nil || p2.Len() != len(es) {
			t.Fatalf("re-encoded: %v", err)
		}
	})
}
