package ceremony

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/signer"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ceremony")

var (
	keysDir = filepath.Join("..", "testdata", "signer", "keys")
	golden  = filepath.Join("..", "testdata", "ceremony")
)

func testSigner(t testing.TB, name string, count *atomic.Int64) *signer.Signer {
	t.Helper()
	key, err := signer.LoadPrivateKey(filepath.Join(keysDir, name+".key"), nil)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := signer.LoadCertificate(filepath.Join(keysDir, name+".pem"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := signer.New(countingKey{key, count}, cert)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// countingKey counts the signatures a key makes.
type countingKey struct {
	crypto.Signer
	n *atomic.Int64
}

func (k countingKey) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	if k.n != nil {
		k.n.Add(1)
	}
	return k.Signer.Sign(r, d, o)
}

func digestsOf(prefix string, n int) []string {
	var ds []string
	for i := range n {
		d := sha256.Sum256([]byte(fmt.Sprintf("%s %d", prefix, i)))
		ds = append(ds, hex.EncodeToString(d[:]))
	}
	return SortDigests(ds)
}

// testRequest is a request for two RSA keys with fixed digests (RSA
// PKCS#1 v1.5 is deterministic; ECDSA through a wrapped crypto.Signer is not).
func testRequest(t testing.TB, n int) (*Request, map[string]*signer.Signer, *atomic.Int64) {
	t.Helper()
	var count atomic.Int64
	signers := map[string]*signer.Signer{
		"manufacturer": testSigner(t, "rsa2048", &count),
		"tenant":       testSigner(t, "rsa3072", &count),
	}
	r := &Request{
		Tool: "imaforge test", Image: "firmware.sqsh", Hash: "sha256", Files: 2*n + 1,
		Manifest: ManifestRef{Name: "firmware.yaml", SHA256: strings.Repeat("ab", 32)},
	}
	for _, name := range []string{"manufacturer", "tenant"} {
		k := NewRequestKey(name, "relic:"+name, signers[name].Cert())
		k.Digests = digestsOf(name, n)
		k.Files = n
		r.Keys = append(r.Keys, k)
	}
	if _, err := r.Marshal(); err != nil {
		t.Fatal(err)
	}
	return r, signers, &count
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join(golden, name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update to accept):\n%s", name, got)
	}
}

// TestGolden: the request and response documents, their self digests
// included, are fixed for fixed inputs (RSA keys: PKCS#1 v1.5 is
// deterministic), and parse back to the same values.
func TestGolden(t *testing.T) {
	req, signers, _ := testRequest(t, 3)
	b, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "request.golden.json", b)
	back, err := ParseRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	if b2, _ := back.Marshal(); !bytes.Equal(b, b2) {
		t.Error("request does not re-encode to the same bytes")
	}

	res, err := Sign(context.Background(), req, SignOptions{
		Signers: signers, Journal: filepath.Join(t.TempDir(), "r.journal"), Tool: "imaforge test",
		Tokens: map[string]signer.TokenIdentity{"manufacturer": {Type: "pkcs11", Token: "hsm", Label: "fw", Key: "ima", KeyID: "01"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	rb, err := res.Response.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "response.golden.json", rb)
	rback, err := ParseResponse(rb)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckResponse(back, rback); err != nil {
		t.Fatal(err)
	}
}

// TestParseRequestErrors: every altered request is refused, with
// ErrSelfDigest when only the content changed and ErrFormat when the
// digest was recomputed over an inconsistent request.
func TestParseRequestErrors(t *testing.T) {
	req, _, _ := testRequest(t, 3)
	good, _ := req.Marshal()
	other, _ := signer.LoadCertificate(filepath.Join(keysDir, "rsa3072.pem"))
	cases := []struct {
		name   string
		mutate func(r *Request)
		resign bool
		want   error
	}{
		{"digest changed", func(r *Request) { r.Keys[0].Digests[0] = strings.Repeat("0", 64) }, false, ErrSelfDigest},
		{"image renamed", func(r *Request) { r.Image = "other.sqsh" }, false, ErrSelfDigest},
		{"manifest changed", func(r *Request) { r.Manifest.SHA256 = strings.Repeat("cd", 32) }, false, ErrSelfDigest},
		{"key added", func(r *Request) { r.Keys = append(r.Keys, r.Keys[0]) }, false, ErrSelfDigest},
		{"certificate swapped", func(r *Request) { r.Keys[0].Cert = other.Raw }, true, ErrFormat},
		{"digests unsorted", func(r *Request) { d := r.Keys[0].Digests; d[0], d[1] = d[1], d[0] }, true, ErrFormat},
		{"digest repeated", func(r *Request) { r.Keys[0].Digests[1] = r.Keys[0].Digests[0] }, true, ErrFormat},
		{"digest short", func(r *Request) { r.Keys[0].Digests[0] = "00" }, true, ErrFormat},
		{"digest upper case", func(r *Request) { r.Keys[0].Digests[0] = strings.ToUpper(r.Keys[0].Digests[0]) }, true, ErrFormat},
		{"unknown hash", func(r *Request) { r.Hash = "md17" }, true, ErrFormat},
		{"key name repeated", func(r *Request) { r.Keys[1].Name = r.Keys[0].Name }, true, ErrFormat},
		{"path of an unknown digest", func(r *Request) {
			r.Keys[0].Paths = map[string][]string{strings.Repeat("0", 64): {"/a", "/b", "/c"}}
		}, true, ErrFormat},
		{"paths do not count the files", func(r *Request) { r.Keys[0].Paths = map[string][]string{r.Keys[0].Digests[0]: {"/a"}} }, true, ErrFormat},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := ParseRequest(good)
			if err != nil {
				t.Fatal(err)
			}
			c.mutate(r)
			var b []byte
			if c.resign {
				b, _ = r.Marshal()
			} else {
				b, _ = indentJSON(r)
			}
			if _, err := ParseRequest(b); !errors.Is(err, c.want) {
				t.Errorf("got %v, want %v", err, c.want)
			}
		})
	}
	for _, bad := range []string{"", "{}", "[]", `{"format":"imaforge-signing-request/1","extra":1}`, string(good) + "{}"} {
		if _, err := ParseRequest([]byte(bad)); !errors.Is(err, ErrFormat) {
			t.Errorf("%.40q: got %v, want ErrFormat", bad, err)
		}
	}
}

// TestSignResume: a ceremony interrupted part-way keeps what it signed; run
// again it signs only the rest, so every digest is signed exactly once.
func TestSignResume(t *testing.T) {
	req, signers, count := testRequest(t, 20)
	journal := filepath.Join(t.TempDir(), "response.json"+JournalSuffix)
	total := req.Digests()

	ctx, cancel := context.WithCancel(context.Background())
	res, err := Sign(ctx, req, SignOptions{
		Signers: signers, Journal: journal, Workers: 3,
		Progress: func(done, total int) {
			if done >= 7 {
				cancel()
			}
		},
	})
	if err == nil || !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), journal) {
		t.Fatalf("interrupted ceremony: %v", err)
	}
	first := int(count.Load())
	if first < 7 || first >= total {
		t.Fatalf("%d signatures before the interruption", first)
	}
	if n := res.Signed["manufacturer"] + res.Signed["tenant"]; n != first {
		t.Errorf("result counts %d signatures, the keys made %d", n, first)
	}

	res, err = Sign(context.Background(), req, SignOptions{Signers: signers, Journal: journal, Workers: 3})
	if err != nil {
		t.Fatal(err)
	}
	resumed := res.Resumed["manufacturer"] + res.Resumed["tenant"]
	signed := res.Signed["manufacturer"] + res.Signed["tenant"]
	if resumed != first || signed != total-first || int(count.Load()) != total {
		t.Errorf("resumed %d signed %d; keys signed %d times for %d digests", resumed, signed, count.Load(), total)
	}
	if err := CheckResponse(req, res.Response); err != nil {
		t.Fatal(err)
	}
}

// TestJournal: a torn last line is dropped, a journal of another request or
// with an invalid signature is refused.
func TestJournal(t *testing.T) {
	req, signers, count := testRequest(t, 4)
	dir := t.TempDir()
	journal := filepath.Join(dir, "j")
	if _, err := Sign(context.Background(), req, SignOptions{Signers: signers, Journal: journal}); err != nil {
		t.Fatal(err)
	}
	full, _ := os.ReadFile(journal)
	lines := bytes.SplitAfter(full, []byte("\n"))

	// Torn: the last entry cut in the middle; resuming re-signs just it.
	torn := bytes.Join(lines[:len(lines)-2], nil)
	torn = append(torn, lines[len(lines)-2][:20]...)
	if err := os.WriteFile(journal, torn, 0o600); err != nil {
		t.Fatal(err)
	}
	count.Store(0)
	res, err := Sign(context.Background(), req, SignOptions{Signers: signers, Journal: journal})
	if err != nil {
		t.Fatal(err)
	}
	if count.Load() != 1 || res.Resumed["manufacturer"]+res.Resumed["tenant"] != req.Digests()-1 {
		t.Errorf("torn journal: %d signed, resumed %v", count.Load(), res.Resumed)
	}

	// Another request's journal.
	other, _, _ := testRequest(t, 5)
	if _, err := Sign(context.Background(), other, SignOptions{Signers: signers, Journal: journal}); !errors.Is(err, ErrMismatch) {
		t.Errorf("journal of another request: %v", err)
	}

	// A journal entry whose signature does not verify: line 3 named.
	bad := bytes.Clone(full)
	bad = bytes.Replace(bad, lines[2], bytes.Replace(lines[2], []byte(`"ima":"0302`), []byte(`"ima":"0302ff`), 1), 1)
	if err := os.WriteFile(journal, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Sign(context.Background(), req, SignOptions{Signers: signers, Journal: journal})
	var fe *FileError
	if !errors.As(err, &fe) || fe.Line != 3 {
		t.Errorf("bad journal entry: %v", err)
	}
}

// TestSignRefusesOtherCertificate: a signer whose certificate is not the
// request's is refused before anything is signed.
func TestSignRefusesOtherCertificate(t *testing.T) {
	req, signers, count := testRequest(t, 2)
	signers["tenant"] = testSigner(t, "rsa4096", count)
	_, err := Sign(context.Background(), req, SignOptions{Signers: signers, Journal: filepath.Join(t.TempDir(), "j")})
	if !errors.Is(err, ErrMismatch) || count.Load() != 0 {
		t.Errorf("got %v after %d signatures", err, count.Load())
	}
}

func TestSums(t *testing.T) {
	var buf bytes.Buffer
	d := sha256.Sum256(nil)
	// Names evmctl 1.4 misreads in sha256sum's escaped form (a leading
	// backslash): a backslash, a newline, bytes that are not UTF-8.
	WriteSums(&buf, []SumLine{{d[:], "/bin/sh"}, {d[:], "/odd\nname\\x"},
		{d[:], `/lib/systemd/system/system-systemd\x2dcryptsetup.slice`}, {d[:], "/bad\xff\xfe"}, {d[:], "/with space"}})
	for i, l := range strings.SplitAfter(buf.String(), "\n") {
		if strings.HasPrefix(l, "\\") || l != "" && !strings.HasPrefix(l, hex.EncodeToString(d[:])+"  /") && !strings.HasPrefix(l, hex.EncodeToString(d[:])+`  "/`) {
			t.Errorf("line %d: %q", i+1, l)
		}
	}
	checkGolden(t, "sums.golden.txt", buf.Bytes())

	s := testSigner(t, "rsa2048", nil)
	v, _ := s.SignDigest(imasig.SHA256, d[:])
	vh := hex.EncodeToString(v)
	dh := hex.EncodeToString(d[:])
	cases := []struct {
		name, in string
		n        int
		err      string
	}{
		{"evmctl output", dh + "  /bin/sh " + vh + "\n", 1, ""},
		{"escaped name", "\\" + dh + "  /odd\\nname " + vh + "\n\n", 1, ""},
		{"comma separator", dh + ",x " + vh + "\r\n", 1, ""},
		{"digest only", dh + " " + vh + "\n", 1, ""},
		{"no value", dh + "  /bin/sh\n", 0, "x.sigs:1:"},
		{"bad digest hex", "zz" + dh[2:] + "  a " + vh + "\n", 0, "digest"},
		{"short digest", dh[:10] + "  a " + vh + "\n", 0, "5-byte digest"},
		{"not a signature", dh + "  a 0404" + dh + "\n", 0, "wrong security.ima type"},
		{"second line bad", dh + "  a " + vh + "\n" + dh + "  b 03\n", 0, "x.sigs:2:"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := ParseSignHash(strings.NewReader(c.in), "x.sigs")
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("got %v, want error with %q", err, c.err)
				}
				return
			}
			if err != nil || len(got) != c.n || !bytes.Equal(got[0].Value, v) || !bytes.Equal(got[0].Digest, d[:]) {
				t.Fatalf("got %+v, %v", got, err)
			}
		})
	}
}

func TestAudit(t *testing.T) {
	req, _, _ := testRequest(t, 1)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	for _, outcome := range []string{"declined", "complete"} {
		rec := NewAuditRecord(req, "request.json", testTime)
		rec.Outcome = outcome
		if err := AppendAudit(path, rec); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"outcome":"declined"`) || !strings.Contains(lines[1], req.SHA256) ||
		!strings.Contains(lines[1], `"time":"2026-01-02T03:04:05Z"`) {
		t.Errorf("audit transcript:\n%s", b)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("audit file mode %v", fi.Mode())
	}
}

// TestParseUnknownHash: a sealed request or response naming a hash
// imaforge does not know is malformed (ErrFormat), and the cause,
// imasig.ErrUnsupportedHash, stays visible to errors.Is.
func TestParseUnknownHash(t *testing.T) {
	req := &Request{Hash: "nosuch", Keys: []RequestKey{}}
	b, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	_, rerr := ParseRequest(b)
	resp := &Response{Hash: "nosuch", Keys: []ResponseKey{}}
	if b, err = resp.Marshal(); err != nil {
		t.Fatal(err)
	}
	_, perr := ParseResponse(b)
	for what, err := range map[string]error{"request": rerr, "response": perr} {
		if !errors.Is(err, ErrFormat) || !errors.Is(err, imasig.ErrUnsupportedHash) || !strings.Contains(err.Error(), "hash: ") {
			t.Errorf("%s with hash nosuch: %v", what, err)
		}
	}
}

// fakeRemote is a RemoteSigner signing with s, recording each path asked.
type fakeRemote struct {
	s     *signer.Signer
	wrong *signer.Signer // signs with this key instead, when set
	mu    sync.Mutex
	paths map[string]int
}

func (f *fakeRemote) Cert() *x509.Certificate { return f.s.Cert() }
func (f *fakeRemote) Servers() []string       { return []string{"https://127.0.0.1:1"} }
func (f *fakeRemote) Close() error            { return nil }
func (f *fakeRemote) SignPath(h imasig.Hash, p string, d []byte) ([]byte, error) {
	f.mu.Lock()
	f.paths[p]++
	f.mu.Unlock()
	if f.wrong != nil {
		return f.wrong.SignDigest(h, d)
	}
	return f.s.SignDigest(h, d)
}

// TestSignRemote: a signing service's key signs each digest once per image
// path of the request (the service checks each against the key's scope),
// every value verified; a value by another key fails the ceremony, and so
// does a digest without a path.
func TestSignRemote(t *testing.T) {
	req, signers, _ := testRequest(t, 3)
	k := &req.Keys[1]
	k.Paths = map[string][]string{}
	for i, d := range k.Digests {
		k.Paths[d] = []string{fmt.Sprintf("/opt/tenant/a%d", i), fmt.Sprintf("/opt/tenant/b%d", i)}
	}
	if _, err := req.Marshal(); err != nil {
		t.Fatal(err)
	}
	remote := &fakeRemote{s: signers["tenant"], paths: map[string]int{}}
	opts := SignOptions{Signers: map[string]*signer.Signer{"manufacturer": signers["manufacturer"]},
		Remote: map[string]RemoteSigner{"tenant": remote}, Journal: filepath.Join(t.TempDir(), "j")}
	res, err := Sign(context.Background(), req, opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(remote.paths) != 6 || res.Signed["tenant"] != 3 {
		t.Errorf("paths asked %v, signed %v", remote.paths, res.Signed)
	}
	for p, n := range remote.paths {
		if n != 1 {
			t.Errorf("%s asked %d times", p, n)
		}
	}
	if err := CheckResponse(req, res.Response); err != nil {
		t.Error(err)
	}

	remote.wrong = signers["manufacturer"]
	opts.Journal = filepath.Join(t.TempDir(), "j")
	if _, err := Sign(context.Background(), req, opts); err == nil || !strings.Contains(err.Error(), "/opt/tenant/") {
		t.Errorf("a value by another key: %v", err)
	}

	remote.wrong = nil
	delete(k.Paths, k.Digests[0])
	if _, err := req.Marshal(); err != nil {
		t.Fatal(err)
	}
	opts.Journal = filepath.Join(t.TempDir(), "j")
	if _, err := Sign(context.Background(), req, opts); !errors.Is(err, ErrMismatch) {
		t.Errorf("a digest without a path: %v", err)
	}
}
