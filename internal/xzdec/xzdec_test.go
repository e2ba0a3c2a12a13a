//go:build cgo

package xzdec

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ulikunitz/xz"
)

// stream is data as one .xz stream with a CRC32 check (ulikunitz/xz: an
// independent encoder).
func stream(t *testing.T, data []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := xz.WriterConfig{CheckSum: xz.CRC32, DictCap: 1 << 17}.NewWriter(&b)
	if err == nil {
		_, err = w.Write(data)
		err = errors.Join(err, w.Close())
	}
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestDecodeAll(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 128<<10)
	for i := range data {
		data[i] = "abcdefgh"[rng.IntN(8)] // compressible, not trivially
	}
	good := stream(t, data)
	flip := func(b []byte, i int) []byte { b = bytes.Clone(b); b[i] ^= 1; return b }
	// the block's CRC32 is the 4 bytes before the index, whose size the
	// stream footer's Backward Size gives
	check := len(good) - 12 - int(binary.LittleEndian.Uint32(good[len(good)-8:])+1)*4 - 4
	tests := []struct {
		name        string
		src         []byte
		dst         int
		mem         uint64
		ignoreCheck bool
		want        int // N; -1: refused
	}{
		{"whole stream", good, len(data), 4 << 20, false, len(data)},
		{"whole stream, check ignored", good, len(data), 4 << 20, true, len(data)},
		{"larger dst", good, len(data) + 1, 4 << 20, false, len(data)},
		{"dst one byte short", good, len(data) - 1, 4 << 20, false, -1},
		{"truncated", good[:len(good)-1], len(data), 4 << 20, false, -1},
		{"trailing byte", append(bytes.Clone(good), 0), len(data), 4 << 20, false, -1},
		{"memory limit", good, len(data), 1 << 10, false, -1},
		{"check damaged", flip(good, check), len(data), 4 << 20, false, -1},
		{"check damaged, ignored", flip(good, check), len(data), 4 << 20, true, len(data)},
		{"header damaged", flip(good, 8), len(data), 4 << 20, true, -1},
		{"empty", nil, len(data), 4 << 20, false, -1},
	}
	jobs := make([]Job, len(tests))
	for i, tt := range tests {
		jobs[i] = Job{Src: tt.src, Dst: make([]byte, tt.dst)}
	}
	// each in a call of its own (the flags and limits differ), then the
	// ones sharing them in one call: the same answers
	for i, tt := range tests {
		DecodeAll(jobs[i:i+1], tt.mem, tt.ignoreCheck)
		if jobs[i].N != tt.want {
			t.Errorf("%s: N = %d, want %d", tt.name, jobs[i].N, tt.want)
		} else if tt.want >= 0 && !bytes.Equal(jobs[i].Dst[:tt.want], data) {
			t.Errorf("%s: decoded bytes differ", tt.name)
		}
	}
	var same []Job
	var want []int
	for i, tt := range tests {
		if tt.mem == 4<<20 && !tt.ignoreCheck {
			same = append(same, Job{Src: tt.src, Dst: make([]byte, tt.dst)})
			want = append(want, tests[i].want)
		}
	}
	DecodeAll(same, 4<<20, false)
	for i := range same {
		if same[i].N != want[i] {
			t.Errorf("in one call: job %d: N = %d, want %d", i, same[i].N, want[i])
		}
	}
}

func TestVersion(t *testing.T) {
	line, _, _ := strings.Cut(readUpstream(t), "\n")
	if want := "XZ Utils v" + Version() + ","; !strings.HasPrefix(line, want) {
		t.Errorf("UPSTREAM says %q, the compiled decoder is %s", line, Version())
	}
}

func readUpstream(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("UPSTREAM")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestUpstreamVerbatim: every file in upstream/ is the one UPSTREAM names,
// byte for byte (its git blob id in the release tag), and no other file is
// there.
func TestUpstreamVerbatim(t *testing.T) {
	listed := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(readUpstream(t)))
	for n := 0; sc.Scan(); n++ {
		if n < 2 {
			continue // the tag and the license
		}
		id, path, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			t.Fatalf("UPSTREAM: bad line %q", sc.Text())
		}
		listed[path] = id
	}
	err := filepath.WalkDir("upstream", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel("upstream", p)
		id, ok := listed[filepath.ToSlash(rel)]
		if !ok {
			t.Errorf("%s: not in UPSTREAM", p)
			return nil
		}
		delete(listed, filepath.ToSlash(rel))
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if got := fmt.Sprintf("%x", sha1.Sum(append(fmt.Appendf(nil, "blob %d\x00", len(b)), b...))); got != id {
			t.Errorf("%s: git blob id %s, UPSTREAM says %s", p, got, id)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for p := range listed {
		t.Errorf("%s: in UPSTREAM, missing", p)
	}
}

// TestSymbolsRenamed: the vendored code defines no global lzma_* symbol,
// which would clash with the system liblzma's in a binary that links both
// (xzdec_config.h renames them).
func TestSymbolsRenamed(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(exe)
	if err != nil {
		t.Skipf("not ELF: %v", err)
	}
	syms, err := f.Symbols()
	f.Close()
	if errors.Is(err, elf.ErrNoSymbols) {
		// go test strips its binaries; go test -c does not
		exe = filepath.Join(t.TempDir(), "xzdec.test")
		if out, err := exec.Command("go", "test", "-c", "-o", exe, ".").CombinedOutput(); err != nil {
			t.Fatalf("go test -c: %v\n%s", err, out)
		}
		if f, err = elf.Open(exe); err != nil {
			t.Fatal(err)
		}
		syms, err = f.Symbols()
		f.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	renamed := 0
	for _, s := range syms {
		if s.Section == elf.SHN_UNDEF || elf.ST_BIND(s.Info) == elf.STB_LOCAL {
			continue
		}
		switch {
		case strings.HasPrefix(s.Name, "lzma_"):
			t.Errorf("global symbol %s defined", s.Name)
		case strings.HasPrefix(s.Name, "imaforge_xzdec_lzma_"):
			renamed++
		}
	}
	if renamed == 0 {
		t.Error("no imaforge_xzdec_lzma_* symbol: the symbol table is not this package's")
	}
}
