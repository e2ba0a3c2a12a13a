package imasig

import (
	"bytes"
	"crypto/sha256"
	"testing"
)

// FuzzParse: the parser never panics, and whatever it accepts re-encodes to
// exactly the input (no two encodings of one value: a value is malleable
// otherwise). Seeds are the known-answer vectors and hand-made edge cases;
// crashers found by `go test -fuzz` are kept in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	for _, v := range loadVectors(f) {
		f.Add(v.Value)
	}
	for _, s := range []string{
		"", "03", "03 02 04 6ad9d99c 0000", "03 02 04 6ad9d99c 0001 00",
		"04 04" + "11", "06 03 04 01020304 0001 ff", "05 02 06 01020304 0001 ff",
		"01" + "2222222222222222222222222222222222222222", "02 33",
	} {
		f.Add(unhex(s))
	}
	v, err := NewVerifier(loadCert(f, "rsa2048.pem"))
	if err != nil {
		f.Fatal(err)
	}
	digest := sha256.Sum256(nil)
	f.Fuzz(func(t *testing.T, b []byte) {
		val, err := Parse(b)
		if err == nil {
			out, err := val.MarshalBinary()
			if err != nil {
				t.Fatalf("parsed %x but cannot re-encode: %v", b, err)
			}
			if !bytes.Equal(out, b) {
				t.Fatalf("re-encoding differs:\n in %x\nout %x", b, out)
			}
		}
		if s, err := ParseSignature(b); err == nil {
			out, _ := s.MarshalBinary()
			if !bytes.Equal(out, b) {
				t.Fatalf("signature re-encoding differs:\n in %x\nout %x", b, out)
			}
		}
		_ = v.Verify(b, digest[:]) // must not panic
	})
}
