package server

import (
	"context"
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
	serveInProcess(t, f, 0)
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
