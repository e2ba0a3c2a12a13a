package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/imaforge/imaforge/ceremony"
	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/manifest"
	"github.com/imaforge/imaforge/signer"
)

func sha256File(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	d := sha256.Sum256(b)
	return hex.EncodeToString(d[:])
}

// planProject is the build tests' tree and two keys (RSA manufacturer,
// ECDSA tenant), with a policy fragment signed by the manufacturer.
func planProject(t *testing.T) (*project, *manifest.Manifest) {
	p := newProject(t)
	writeTree(t, filepath.Join(p.dir, "src"), sortedPaths(false), 0o755)
	text := fmt.Sprintf(manifestTmpl, "gzip", "src") +
		fmt.Sprintf(policySection, "measure func=BPRM_CHECK fsmagic=0x73717368 template=ima-sig")
	return p, p.manifest(t, "", "", text)
}

// TestPlanMatchesBuild: the plan asks each key for exactly the unique
// digests Build signs with it, policy fragments included.
func TestPlanMatchesBuild(t *testing.T) {
	_, m := planProject(t)
	res, err := build(t, m, 0)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := MakePlan(context.Background(), PlanOptions{Manifest: m, ToolVersion: "test"})
	if err != nil {
		t.Fatal(err)
	}
	req := plan.Request
	want := map[string][]string{}
	files := map[string]int{}
	for _, f := range res.Record.FileList() {
		if f.Key != "" {
			want[f.Key] = append(want[f.Key], f.Digest)
			files[f.Key]++
		}
	}
	for _, f := range res.Record.Policy { // fragments are signed files too
		want[f.Key] = append(want[f.Key], f.Digest)
		files[f.Key]++
	}
	for _, rk := range res.Record.Keys {
		k := req.Key(rk.Name)
		if k == nil {
			t.Fatalf("plan lacks key %q", rk.Name)
		}
		if w := ceremony.SortDigests(want[rk.Name]); !slices.Equal(k.Digests, w) || k.Files != files[rk.Name] || k.KeyID != rk.KeyID || k.CertSHA256 != rk.CertSHA256 {
			t.Errorf("key %q: plan %d files %v, build %d files %v", rk.Name, k.Files, k.Digests, files[rk.Name], w)
		}
	}
	if len(req.Keys) != len(res.Record.Keys) || req.Manifest.SHA256 != res.Record.Manifest.SHA256 || req.Files != len(res.Record.FileList())+len(res.Record.Policy) {
		t.Errorf("request %+v vs record %+v", req, res.Record)
	}
	if len(req.Policy) != 1 || req.Policy[0].Key != "manufacturer" || req.Policy[0].Path != res.Record.Policy[0].Path {
		t.Errorf("request policy %+v, record %+v", req.Policy, res.Record.Policy)
	}
	// The request survives its encoding.
	b, _ := req.Marshal()
	if _, err := ceremony.ParseRequest(b); err != nil {
		t.Fatal(err)
	}
	// sha256sum lines: one per unique digest of the key, and a key must be
	// chosen when several sign.
	if _, err := plan.Sums(""); err == nil {
		t.Error("Sums without a key for a two-key manifest")
	}
	lines, err := plan.Sums("tenant")
	if err != nil || len(lines) != len(req.Key("tenant").Digests) {
		t.Errorf("tenant sums: %d lines, %v", len(lines), err)
	}
}

// TestPlanSignBuild: plan → ceremony.Sign (file keys standing in for the
// token) → Build from the response with no key gives the image built with
// the keys, byte for byte, for an RSA and an ECDSA key and a policy
// fragment.
func TestPlanSignBuild(t *testing.T) {
	p, m := planProject(t)
	res, err := build(t, m, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := sha256File(t, res.ImagePath)
	os.Remove(res.ImagePath)

	plan, err := MakePlan(context.Background(), PlanOptions{Manifest: m})
	if err != nil {
		t.Fatal(err)
	}
	signers := map[string]*signer.Signer{}
	for name, k := range map[string]string{"manufacturer": "mfr", "tenant": "ten"} {
		s, err := signer.LoadSigner(filepath.Join(p.dir, "keys", k+".key"), filepath.Join(p.dir, "keys", k+".pem"), nil)
		if err != nil {
			t.Fatal(err)
		}
		signers[name] = s
	}
	respPath := filepath.Join(p.dir, "response.json")
	sr, err := ceremony.Sign(context.Background(), plan.Request, ceremony.SignOptions{Signers: signers, Journal: respPath + ".journal"})
	if err != nil {
		t.Fatal(err)
	}
	if err := sr.Response.WriteFile(respPath); err != nil {
		t.Fatal(err)
	}
	keys, err := SignatureKeys(m, []string{respPath})
	if err != nil {
		t.Fatal(err)
	}
	res, err = Build(context.Background(), Options{Manifest: m, ToolVersion: "test", Keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	if got := sha256File(t, res.ImagePath); got != want {
		t.Errorf("image from the response %s, from the keys %s", got, want)
	}
}

// countingKey counts SignDigest calls.
type countingKey struct {
	Key
	n *atomic.Int64
}

func (k countingKey) SignDigest(h imasig.Hash, d []byte) ([]byte, error) {
	k.n.Add(1)
	return k.Key.SignDigest(h, d)
}

// TestSignatureCache: a rebuild from the cache opens no key; after one file
// changes only its digest is signed; a corrupted entry is ignored and made
// again; every image equals the uncached build.
func TestSignatureCache(t *testing.T) {
	p, m := planProject(t)
	res, err := build(t, m, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := sha256File(t, res.ImagePath)
	plan, err := MakePlan(context.Background(), PlanOptions{Manifest: m})
	if err != nil {
		t.Fatal(err)
	}
	unique := plan.Request.Digests() // policy fragment included
	dir := filepath.Join(p.dir, "cache")
	var loads, signs atomic.Int64
	cachedBuild := func() (*Result, *SignatureCache) {
		t.Helper()
		cache, err := OpenSignatureCache(dir)
		if err != nil {
			t.Fatal(err)
		}
		keys, err := CacheKeys(m, cache, nil, func(k *manifest.Key) (Key, error) {
			loads.Add(1)
			s, err := LoadKey(k, nil, 1)
			return countingKey{s, &signs}, err
		})
		if err != nil {
			t.Fatal(err)
		}
		res, err := Build(context.Background(), Options{Manifest: m, ToolVersion: "test", Keys: keys})
		if err != nil {
			t.Fatal(err)
		}
		return res, cache
	}

	res, cache := cachedBuild()
	if h, miss := cache.Stats(); h != 0 || miss != int64(unique) || signs.Load() != int64(unique) || sha256File(t, res.ImagePath) != want {
		t.Fatalf("cold: %d hits %d misses %d signatures", h, miss, signs.Load())
	}
	loads.Store(0)
	signs.Store(0)
	res, cache = cachedBuild()
	if h, miss := cache.Stats(); h != int64(unique) || miss != 0 || loads.Load() != 0 || sha256File(t, res.ImagePath) != want {
		t.Fatalf("warm: %d hits %d misses, key opened %d times", h, miss, loads.Load())
	}

	// A corrupted entry: verified, refused, signed again and replaced.
	var entries []string
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			entries = append(entries, path)
		}
		return nil
	})
	if len(entries) != unique {
		t.Fatalf("%d cache entries for %d signatures", len(entries), unique)
	}
	b, _ := os.ReadFile(entries[0])
	b[len(b)-1] ^= 1
	if err := os.WriteFile(entries[0], b, 0o644); err != nil {
		t.Fatal(err)
	}
	res, cache = cachedBuild()
	if h, miss := cache.Stats(); miss != 1 || h != int64(unique-1) || sha256File(t, res.ImagePath) != want {
		t.Fatalf("corrupted entry: %d hits %d misses", h, miss)
	}

	// One file changed: one new signature.
	if err := os.WriteFile(filepath.Join(p.dir, "src", "etc", "conf"), []byte("key=other\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	signs.Store(0)
	_, cache = cachedBuild()
	if h, miss := cache.Stats(); miss != 1 || signs.Load() != 1 || h != int64(unique-1) {
		t.Fatalf("one file changed: %d hits %d misses %d signatures", h, miss, signs.Load())
	}
}

// TestSignatureKeysErrors: responses that do not fit the manifest are
// refused before anything is built.
func TestSignatureKeysErrors(t *testing.T) {
	p, m := planProject(t)
	plan, err := MakePlan(context.Background(), PlanOptions{Manifest: m})
	if err != nil {
		t.Fatal(err)
	}
	mfr, _ := signer.LoadSigner(filepath.Join(p.dir, "keys", "mfr.key"), filepath.Join(p.dir, "keys", "mfr.pem"), nil)
	ten, _ := signer.LoadSigner(filepath.Join(p.dir, "keys", "ten.key"), filepath.Join(p.dir, "keys", "ten.pem"), nil)
	sr, err := ceremony.Sign(context.Background(), plan.Request, ceremony.SignOptions{
		Signers: map[string]*signer.Signer{"manufacturer": mfr, "tenant": ten}, Journal: filepath.Join(p.dir, "j"),
	})
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, f func(r *ceremony.Response)) string {
		r := *sr.Response
		r.Keys = slices.Clone(r.Keys)
		f(&r)
		path := filepath.Join(p.dir, name)
		if err := r.WriteFile(path); err != nil {
			t.Fatal(err)
		}
		return path
	}
	cases := []struct {
		name string
		f    func(r *ceremony.Response)
		want error
	}{
		{"another manifest", func(r *ceremony.Response) { r.Manifest.SHA256 = plan.Request.Keys[0].CertSHA256 }, ceremony.ErrMismatch},
		{"another hash", func(r *ceremony.Response) { r.Hash = "sha512" }, ceremony.ErrFormat},
		{"unknown key", func(r *ceremony.Response) { r.Keys[0].Name = "intruder" }, ceremony.ErrMismatch},
		{"other certificate", func(r *ceremony.Response) { r.Keys[0].CertSHA256 = r.Keys[1].CertSHA256 }, ceremony.ErrMismatch},
		{"keys swapped", func(r *ceremony.Response) {
			r.Keys[0].Signatures, r.Keys[1].Signatures = r.Keys[1].Signatures, r.Keys[0].Signatures
		}, imasig.ErrUnknownKeyID},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := SignatureKeys(m, []string{write(c.name+".json", c.f)})
			if !errors.Is(err, c.want) {
				t.Errorf("got %v, want %v", err, c.want)
			}
		})
	}
}
