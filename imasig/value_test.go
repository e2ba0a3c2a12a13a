package imasig

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func unhex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

func TestHashTable(t *testing.T) {
	for _, tc := range []struct {
		h    Hash
		id   uint8
		name string
		size int
		ok   bool // computable here
	}{
		{SHA1, 2, "sha1", 20, true},
		{SHA256, 4, "sha256", 32, true},
		{SHA384, 5, "sha384", 48, true},
		{SHA512, 6, "sha512", 64, true},
		{SHA224, 7, "sha224", 28, true},
		{SM3, 17, "sm3", 32, false},
		{SHA3_256, 20, "sha3-256", 32, true},
		{SHA3_512, 22, "sha3-512", 64, true},
	} {
		if uint8(tc.h) != tc.id || tc.h.String() != tc.name || tc.h.Size() != tc.size || tc.h.Available() != tc.ok {
			t.Errorf("%d: got id %d name %q size %d available %v", tc.id, uint8(tc.h), tc.h, tc.h.Size(), tc.h.Available())
		}
		p, err := ParseHash(tc.name)
		if err != nil || p != tc.h {
			t.Errorf("ParseHash(%q) = %v, %v", tc.name, p, err)
		}
		if tc.ok {
			hh, err := tc.h.New()
			if err != nil || hh.Size() != tc.size {
				t.Errorf("%s.New(): %v", tc.h, err)
			}
			if back, err := HashFromCrypto(tc.h.CryptoHash()); err != nil || back != tc.h {
				t.Errorf("HashFromCrypto(%v) = %v, %v", tc.h.CryptoHash(), back, err)
			}
		} else if _, err := tc.h.New(); !errors.Is(err, ErrUnsupportedHash) {
			t.Errorf("%s.New(): err %v, want ErrUnsupportedHash", tc.h, err)
		}
	}
	for _, s := range []string{"SHA-256", "SHA256", " sha256"} {
		if h, err := ParseHash(s); err != nil || h != SHA256 {
			t.Errorf("ParseHash(%q) = %v, %v", s, h, err)
		}
	}
	if _, err := ParseHash("md6"); !errors.Is(err, ErrUnsupportedHash) {
		t.Errorf("ParseHash(md6): %v", err)
	}
	if Hash(23).Known() || Hash(23).String() != "hash(23)" {
		t.Error("Hash(23) is not an unknown id")
	}
}

// ParseHash takes every id's kernel name and Go name (as "sm3-256", SM3's),
// in any case, and allocates nothing for a name it knows: the signing
// service parses one per entry.
func TestParseHashNames(t *testing.T) {
	for h := Hash(0); h < hashLast; h++ {
		names := []string{h.String(), strings.ToUpper(h.String())}
		if c := h.CryptoHash(); c != 0 {
			names = append(names, c.String())
		}
		for _, n := range names {
			if p, err := ParseHash(n); err != nil || p != h {
				t.Errorf("ParseHash(%q) = %v, %v; want %v", n, p, err, h)
			}
		}
	}
	if p, err := ParseHash("SM3-256"); err != nil || p != SM3 {
		t.Errorf("ParseHash(SM3-256) = %v, %v", p, err)
	}
	for _, n := range []string{"", "sha", "sha-2", "sha256x"} {
		if _, err := ParseHash(n); !errors.Is(err, ErrUnsupportedHash) {
			t.Errorf("ParseHash(%q): %v, want ErrUnsupportedHash", n, err)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = ParseHash("sha256") }); n != 0 {
		t.Errorf("ParseHash(sha256): %v allocations, want 0", n)
	}
}

func TestParse(t *testing.T) {
	sig := "03 02 04 6ad9d99c 0003 aabbcc"
	for _, tc := range []struct {
		name  string
		in    string
		want  error // nil: valid, and re-encodes to the same bytes
		off   int   // FormatError offset
		typ   Type
		isSig bool // ParseSignature accepts it
	}{
		{"signature", sig, nil, 0, TypeSignature, true},
		{"evm portable", "05 02 06 01020304 0001 ff", nil, 0, TypePortableSignature, false},
		{"verity v3", "06 03 04 01020304 0002 ffee", nil, 0, TypeVeritySignature, false},
		{"digest-ng sha256", "04 04" + strings.Repeat("11", 32), nil, 0, TypeDigestNG, false},
		{"digest-ng sha1", "04 02" + strings.Repeat("11", 20), nil, 0, TypeDigestNG, false},
		{"digest sha1", "01" + strings.Repeat("22", 20), nil, 0, TypeDigest, false},
		{"evm hmac", "02" + strings.Repeat("33", 20), nil, 0, TypeHMAC, false},
		{"empty", "", ErrTruncated, 0, 0, false},
		{"unknown type", "07 02", ErrWrongType, 0, 0, false},
		{"header short", "03 02 04 6ad9d99c 00", ErrTruncated, 8, 0, false},
		{"sig_size too big", "03 02 04 6ad9d99c 0004 aabbcc", ErrTruncated, 12, 0, false},
		{"sig_size too small", "03 02 04 6ad9d99c 0002 aabbcc", ErrFormat, 11, 0, false},
		{"sig_size zero", "03 02 04 6ad9d99c 0000", ErrFormat, 7, 0, false},
		{"version 1", "03 01 04 6ad9d99c 0003 aabbcc", ErrFormat, 1, 0, false},
		{"version 3 in 03", "03 03 04 6ad9d99c 0003 aabbcc", ErrFormat, 1, 0, false},
		{"unknown hash", "03 02 17 6ad9d99c 0003 aabbcc", ErrUnsupportedHash, 2, 0, false},
		{"digest-ng short", "04 04" + strings.Repeat("11", 31), ErrTruncated, 33, 0, false},
		{"digest-ng long", "04 04" + strings.Repeat("11", 33), ErrFormat, 34, 0, false},
		{"digest-ng no algo", "04", ErrTruncated, 1, 0, false},
		{"digest short", "01" + strings.Repeat("22", 19), ErrTruncated, 20, 0, false},
		{"digest long", "01" + strings.Repeat("22", 21), ErrFormat, 21, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := unhex(tc.in)
			v, err := Parse(in)
			if tc.want != nil {
				var fe *FormatError
				if !errors.Is(err, tc.want) || !errors.As(err, &fe) || fe.Off != tc.off {
					t.Fatalf("Parse: err %v, want %v at byte %d", err, tc.want, tc.off)
				}
				if _, err := ParseSignature(in); err == nil {
					t.Fatal("ParseSignature accepted it")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v.Type() != tc.typ {
				t.Errorf("type %v, want %v", v.Type(), tc.typ)
			}
			out, err := v.MarshalBinary()
			if err != nil || !bytes.Equal(out, in) {
				t.Errorf("re-encoded %x, %v; want %x", out, err, in)
			}
			s, err := ParseSignature(in)
			if tc.isSig != (err == nil) {
				t.Fatalf("ParseSignature: %v", err)
			}
			if err != nil && !errors.Is(err, ErrWrongType) {
				t.Errorf("ParseSignature of a %v: %v, want ErrWrongType", tc.typ, err)
			}
			if s != nil && (s.Hash != SHA256 || s.KeyID != [4]byte{0x6a, 0xd9, 0xd9, 0x9c} || !bytes.Equal(s.Sig, unhex("aabbcc"))) {
				t.Errorf("decoded %+v", s)
			}
		})
	}
}

func TestMarshalChecks(t *testing.T) {
	if _, err := (&Signature{Hash: SHA256}).MarshalBinary(); !errors.Is(err, ErrFormat) {
		t.Errorf("empty signature: %v", err)
	}
	if _, err := (&Signature{Hash: SHA256, Sig: make([]byte, 65536)}).MarshalBinary(); !errors.Is(err, ErrFormat) {
		t.Errorf("oversized signature: %v", err)
	}
	if _, err := (&Signature{Hash: 40, Sig: []byte{1}}).MarshalBinary(); !errors.Is(err, ErrUnsupportedHash) {
		t.Errorf("unknown hash: %v", err)
	}
	b, err := (&Signature{Hash: SHA384, KeyID: [4]byte{1, 2, 3, 4}, Sig: []byte{9}}).MarshalBinary()
	if err != nil || !bytes.Equal(b, unhex("03 02 05 01020304 0001 09")) {
		t.Errorf("zero Kind/Version defaults: %x %v", b, err)
	}
	if _, err := NewDigestNG(SHA256, make([]byte, 31)); !errors.Is(err, ErrFormat) {
		t.Errorf("NewDigestNG short: %v", err)
	}
	d, err := NewDigestNG(SHA512, make([]byte, 64))
	if err != nil {
		t.Fatal(err)
	}
	b, _ = d.MarshalBinary()
	if len(b) != 66 || b[0] != 0x04 || b[1] != 6 {
		t.Errorf("digest-ng %x", b)
	}
	// AppendBinary appends.
	b, _ = d.AppendBinary([]byte("x"))
	if b[0] != 'x' || len(b) != 67 {
		t.Errorf("AppendBinary did not append: %x", b)
	}
}
