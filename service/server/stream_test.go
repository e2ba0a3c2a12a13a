package server

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/service"
)

// TestServiceStream: a streamed batch larger than a JSON batch may be
// (MaxBatch) is signed whole and audited as one batch; a stream with a path
// outside the key's scope or a bad entry far into it signs nothing of it,
// and the server goes on serving.
func TestServiceStream(t *testing.T) {
	f := newFixture(t, 1)
	serve(t, f, 0)
	ctx := context.Background()
	const n = service.MaxBatch + 904
	entries := func(prefix string) ([]service.Entry, [][]byte) {
		es, ds := make([]service.Entry, n), make([][]byte, n)
		for i := range es {
			ds[i] = digest(fmt.Sprint(prefix, i))
			es[i] = service.NewEntry(fmt.Sprintf("%s/f%d", prefix, i), imasig.SHA256, ds[i])
		}
		return es, ds
	}
	audit := func() string { return readFile(t, f.Path("audit0.jsonl")) }

	es, ds := entries("/usr/lib")
	before := audit()
	vals, err := newClient(t, f, "mfr").SignStream(ctx, "mfr", es)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range vals {
		if err := imasig.Verify(v, ds[i], f.mfr.Cert); err != nil {
			t.Fatalf("value %d: %v", i, err)
		}
	}
	if added := strings.TrimPrefix(audit(), before); strings.Count(added, `"ima.count":`) != 1 || !strings.Contains(added, fmt.Sprintf(`"ima.count":%d`, n)) {
		t.Errorf("audit: want one record of %d signatures: %.300s", n, added)
	}

	// The answer streams: when its first value arrives, the batch's audit
	// record is already written.
	body, err := service.EncodeStream(es)
	if err != nil {
		t.Fatal(err)
	}
	resp := rawRequest(t, f, "mfr", "mfr", service.FormatNDJSON, body)
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, `{"value":`) {
		t.Fatalf("first line %q: %v", line, err)
	}
	if !strings.Contains(audit(), service.RequestDigest(body)) {
		t.Error("a value left before the batch's audit record was written")
	}
	resp.Body.Close()

	tc := newClient(t, f, "tenant")
	escape, _ := entries("/opt/tenant")
	escape[3000].Path = "/etc/shadow"
	short, _ := entries("/opt/tenant")
	short[4000].Digest = short[4000].Digest[:20]
	for _, r := range []struct {
		name    string
		es      []service.Entry
		want    []string
		problem string
	}{
		{"path outside the scope at entry 3000", escape, []string{"403", "/etc/shadow"}, ProblemOutOfScope},
		{"short digest on line 4001", short, []string{"400", "line 4001"}, ProblemBadRequest},
	} {
		t.Run(r.name, func(t *testing.T) {
			before := audit()
			_, err := tc.SignStream(ctx, "tenant", r.es)
			if err == nil {
				t.Fatal("signed")
			}
			for _, w := range r.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
			added := strings.TrimPrefix(audit(), before)
			if strings.Contains(added, `"ima.count"`) || !strings.Contains(added, r.problem) {
				t.Errorf("audit: want the refusal %s and no signature: %.300s", r.problem, added)
			}
			ok, ds := entries("/opt/tenant")
			vals, err := tc.SignStream(ctx, "tenant", ok[:10])
			if err != nil {
				t.Fatalf("after the refusal: %v", err)
			}
			if err := imasig.Verify(vals[9], ds[9], f.tenant.Cert); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestWriteStream: the answer to a streamed request is written a chunk at a
// time, each chunk's values flushed before the next chunk is signed, and a
// signature failure cuts it before its last line, so the client refuses it
// whole.
func TestWriteStream(t *testing.T) {
	const n = 2*streamChunk + 7
	p := &prepared{digest: strings.Repeat("ab", 32), key: "mfr", items: make([]service.Item, n)}
	for _, failAt := range []int{-1, 0, 1, 2} {
		t.Run(fmt.Sprint("fail at chunk ", failAt), func(t *testing.T) {
			var out bytes.Buffer
			flushes, chunk := 0, 0
			sign := func(items []service.Item) ([][]byte, error) {
				// every earlier chunk is already written and flushed
				if got := strings.Count(out.String(), "\n"); got != chunk*streamChunk || flushes != chunk {
					t.Errorf("chunk %d signed with %d lines written, %d flushes", chunk, got, flushes)
				}
				if chunk == failAt {
					return nil, errors.New("token gone")
				}
				vals := make([][]byte, len(items))
				for i := range vals {
					vals[i] = []byte{byte(chunk), byte(i)}
				}
				chunk++
				return vals, nil
			}
			err := writeStream(&out, func() { flushes++ }, p, sign)
			vals, rerr := service.ReadStreamResponse(&out, n, p.digest)
			if failAt < 0 {
				if err != nil || rerr != nil || len(vals) != n || vals[n-1][0] != 2 || vals[n-1][1] != 6 {
					t.Fatalf("write %v, read %v, %d values", err, rerr, len(vals))
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "token gone") {
				t.Errorf("write: %v", err)
			}
			if rerr == nil || !strings.Contains(rerr.Error(), fmt.Sprintf("after %d of %d values", failAt*streamChunk, n)) {
				t.Errorf("a cut answer read as %d values: %v", len(vals), rerr)
			}
		})
	}
}
