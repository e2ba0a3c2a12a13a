package integrity

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/imaforge/imaforge/integrity/verity"
)

// readKAT reads testdata/integrity/verity-kat.txt (key=value lines).
func readKAT(t *testing.T) map[string]string {
	t.Helper()
	f, err := os.Open("../testdata/integrity/verity-kat.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	kv := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && !strings.HasPrefix(k, "#") {
			kv[k] = v
		}
	}
	return kv
}

func katData(blocks int) []byte {
	b := make([]byte, blocks*verity.BlockSize)
	for i := range b {
		b[i] = byte(i*7 + i/4096)
	}
	return b
}

// TestVerityKnownAnswer: the tree over the vector's data with its salt and
// UUID has veritysetup's root hash, and its hash area (superblock
// included) has the SHA-256 of veritysetup's; the descriptor for it is the
// golden file.
func TestVerityKnownAnswer(t *testing.T) {
	kv := readKAT(t)
	blocks, _ := strconv.Atoi(kv["data-blocks"])
	salt, _ := hex.DecodeString(kv["salt"])
	uuidHex := strings.ReplaceAll(kv["uuid"], "-", "")
	var uuid [16]byte
	hex.Decode(uuid[:], []byte(uuidHex))
	data := katData(blocks)
	p := verity.Params{DataBlocks: uint64(blocks), HashOffset: uint64(len(data)), Salt: salt, UUID: uuid}
	tree, err := verity.Compute(bytes.NewReader(data), p)
	if err != nil {
		t.Fatal(err)
	}
	if tree.RootHex() != kv["root-hash"] {
		t.Errorf("root hash %s, veritysetup %s", tree.RootHex(), kv["root-hash"])
	}
	var area bytes.Buffer
	tree.WriteTo(&area)
	sum := sha256.Sum256(area.Bytes())
	if hex.EncodeToString(sum[:]) != kv["hash-area-sha256"] || strconv.Itoa(area.Len()) != kv["hash-area-size"] {
		t.Errorf("hash area of %d bytes, sha256 %x; veritysetup's %s bytes, %s", area.Len(), sum, kv["hash-area-size"], kv["hash-area-sha256"])
	}
	d := &Descriptor{DataBlocks: p.DataBlocks, HashOffset: p.HashOffset, Salt: salt, RootHash: tree.Root()}
	golden, err := os.ReadFile("../testdata/integrity/descriptor.golden")
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Marshal(); !bytes.Equal(got, golden) {
		t.Errorf("descriptor:\n%s\nwant:\n%s", got, golden)
	}
}

func TestParseDescriptor(t *testing.T) {
	golden, err := os.ReadFile("../testdata/integrity/descriptor.golden")
	if err != nil {
		t.Fatal(err)
	}
	d, err := ParseDescriptor(golden)
	if err != nil {
		t.Fatal(err)
	}
	if d.DataBlocks != 300 || d.HashOffset != 1228800 || !bytes.Equal(d.Marshal(), golden) {
		t.Fatalf("parsed %+v", d)
	}
	for name, mangle := range map[string]func(string) string{
		"no newline":   func(s string) string { return strings.TrimSuffix(s, "\n") },
		"crlf":         func(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") },
		"extra line":   func(s string) string { return s + "x=y\n" },
		"magic":        func(s string) string { return strings.Replace(s, "v1", "v2", 1) },
		"hash":         func(s string) string { return strings.Replace(s, "hash=sha256", "hash=sha1", 1) },
		"block size":   func(s string) string { return strings.Replace(s, "data-block-size=4096", "data-block-size=512", 1) },
		"leading zero": func(s string) string { return strings.Replace(s, "data-blocks=300", "data-blocks=0300", 1) },
		"plus sign":    func(s string) string { return strings.Replace(s, "data-blocks=300", "data-blocks=+300", 1) },
		"upper hex":    func(s string) string { return strings.Replace(s, "salt=696d", "salt=696D", 1) },
		"short root":   func(s string) string { return strings.Replace(s, "root-hash=0e", "root-hash=", 1) },
		"order": func(s string) string {
			return strings.Replace(strings.Replace(s, "hash-offset", "HO", 1), "data-blocks", "hash-offset", 1)
		},
		"offset in data": func(s string) string { return strings.Replace(s, "hash-offset=1228800", "hash-offset=4096", 1) },
		"unaligned":      func(s string) string { return strings.Replace(s, "hash-offset=1228800", "hash-offset=1228801", 1) },
		"superblock":     func(s string) string { return strings.Replace(s, "superblock=yes", "superblock=no", 1) },
		"space":          func(s string) string { return strings.Replace(s, "hash=sha256", "hash= sha256", 1) },
	} {
		if _, err := ParseDescriptor([]byte(mangle(string(golden)))); !errors.Is(err, ErrDescriptor) {
			t.Errorf("%s: %v, want ErrDescriptor", name, err)
		}
	}
}

// FuzzDescriptor: whatever parses re-encodes to the same bytes (one
// meaning per signed text).
func FuzzDescriptor(f *testing.F) {
	golden, _ := os.ReadFile("../testdata/integrity/descriptor.golden")
	f.Add(golden)
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDescriptor(b)
		if err != nil {
			return
		}
		if !bytes.Equal(d.Marshal(), b) {
			t.Fatalf("parsed %q, re-encoded %q", b, d.Marshal())
		}
	})
}

func TestSaltAndUUID(t *testing.T) {
	a, b := sha256.Sum256([]byte("manifest a")), sha256.Sum256([]byte("manifest b"))
	sa, sb := Salt(a[:]), Salt(b[:])
	if len(sa) != 32 || bytes.Equal(sa, sb) || !bytes.Equal(sa, Salt(a[:])) {
		t.Fatalf("salts %x %x", sa, sb)
	}
	u := UUID(sa)
	if u[6]>>4 != 8 || u[8]>>6 != 2 || u != UUID(sa) || u == UUID(sb) {
		t.Fatalf("uuid %s", verity.FormatUUID(u))
	}
}

func TestDMTable(t *testing.T) {
	d := &Descriptor{DataBlocks: 300, HashOffset: 1228800, Salt: []byte("imaforge"), RootHash: make([]byte, 32)}
	want := "0 2400 verity 1 /dev/vda /dev/vda 4096 4096 300 301 sha256 " + strings.Repeat("00", 32) + " 696d61666f726765"
	if got := d.DMTable("/dev/vda", "/dev/vda"); got != want {
		t.Errorf("table\n%s\nwant\n%s", got, want)
	}
}
