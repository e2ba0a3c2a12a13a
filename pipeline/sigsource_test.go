package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/imaforge/imaforge/ceremony"
	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/internal/sigpack"
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
		if err := cache.Close(); err != nil {
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

	// A corrupted value: verified, refused, signed again; the packs are
	// merged, the bad value dropped.
	packs := packFiles(t, dir)
	if len(packs) != 2 { // one per hash algorithm of the plan's keys
		t.Logf("packs: %v", packs)
	}
	var n int
	for _, pk := range packs {
		p, err := sigpack.Open(pk)
		if err != nil {
			t.Fatal(err)
		}
		n += p.Len()
		p.Close()
	}
	if n != unique {
		t.Fatalf("%d cache entries in %d packs for %d signatures", n, len(packs), unique)
	}
	b, _ := os.ReadFile(packs[0])
	b[len(b)-1] ^= 1
	if err := os.WriteFile(packs[0], b, 0o644); err != nil {
		t.Fatal(err)
	}
	res, cache = cachedBuild()
	if h, miss := cache.Stats(); miss != 1 || h != int64(unique-1) || sha256File(t, res.ImagePath) != want {
		t.Fatalf("corrupted entry: %d hits %d misses", h, miss)
	}
	if after := packFiles(t, dir); len(after) != len(packs) || slices.Contains(after, packs[0]) {
		t.Fatalf("packs %v after a bad value in %s: not merged", after, packs[0])
	}
	res, cache = cachedBuild()
	if h, miss := cache.Stats(); miss != 0 || h != int64(unique) || sha256File(t, res.ImagePath) != want {
		t.Fatalf("after the merge: %d hits %d misses", h, miss)
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

// packFiles lists the signature packs under dir.
func packFiles(t *testing.T, dir string) []string {
	t.Helper()
	var packs []string
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(path, sigpack.Ext) {
			packs = append(packs, path)
		}
		return nil
	})
	slices.Sort(packs)
	return packs
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

// cacheBuild builds m with the signature cache at dir (warnings through
// warn, if not nil) and closes it; it returns the image's SHA-256, the
// cache's hits and misses, and Close's error.
func cacheBuild(t *testing.T, m *manifest.Manifest, dir string, warn func(string)) (string, int64, int64, error) {
	t.Helper()
	cache, err := OpenSignatureCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	cache.Warn = warn
	keys, err := CacheKeys(m, cache, nil, func(k *manifest.Key) (Key, error) { return LoadKey(k, nil, 1) })
	if err != nil {
		t.Fatal(err)
	}
	res, err := Build(context.Background(), Options{Manifest: m, ToolVersion: "test", Keys: keys})
	cerr := cache.Close()
	if err != nil {
		return "", 0, 0, err
	}
	h, miss := cache.Stats()
	sum, err := os.ReadFile(res.ImagePath)
	if err != nil {
		return "", 0, 0, err
	}
	return fmt.Sprintf("%x", sha256.Sum256(sum)), h, miss, cerr
}

// TestSignatureCachePacks: version 1 entries are read and moved into a
// pack; a damaged pack is a warning, its signatures are made again and it
// is merged away; more than maxPacks packs are merged into one; two builds
// sharing the cache at once are safe; a cache that cannot store is an
// error of Close, or a warning.
func TestSignatureCachePacks(t *testing.T) {
	p, m := planProject(t)
	res, err := build(t, m, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := sha256File(t, res.ImagePath)
	dir := filepath.Join(p.dir, "cache")
	sum, _, unique, err := cacheBuild(t, m, dir, nil)
	if err != nil || sum != want {
		t.Fatalf("cold: %v", err)
	}
	check := func(name string, wantHits, wantMisses int64, warn func(string)) {
		t.Helper()
		sum, h, miss, err := cacheBuild(t, m, dir, warn)
		if err != nil || sum != want || h != wantHits || miss != wantMisses {
			t.Fatalf("%s: %d hits %d misses (want %d, %d), same image %v: %v", name, h, miss, wantHits, wantMisses, sum == want, err)
		}
	}

	// version 1: the packs' values as one file per signature
	for _, pk := range packFiles(t, dir) {
		pp, err := sigpack.Open(pk)
		if err != nil {
			t.Fatal(err)
		}
		es, _ := pp.Entries()
		pp.Close()
		for _, e := range es {
			d := hex.EncodeToString(e.Digest)
			path := filepath.Join(filepath.Dir(pk), d[:2], d)
			os.MkdirAll(filepath.Dir(path), 0o755)
			if err := os.WriteFile(path, e.Value, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		os.Remove(pk)
	}
	check("version 1", unique, 0, nil)
	if len(packFiles(t, dir)) == 0 {
		t.Fatal("the version 1 entries were not packed")
	}
	filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasSuffix(path, sigpack.Ext) {
			os.Remove(path)
		}
		return nil
	})
	check("packed from version 1", unique, 0, nil)

	// a damaged pack
	packs := packFiles(t, dir)
	b, _ := os.ReadFile(packs[0])
	b[20] = 1 // a reserved byte
	os.WriteFile(packs[0], b, 0o644)
	var warned []string
	sum, h, miss, err := cacheBuild(t, m, dir, func(s string) { warned = append(warned, s) })
	if err != nil || sum != want || miss == 0 || h+miss != unique || len(warned) != 1 || !strings.Contains(warned[0], packs[0]) {
		t.Fatalf("damaged pack: %d hits %d misses, warnings %q: %v", h, miss, warned, err)
	}
	if slices.Contains(packFiles(t, dir), packs[0]) {
		t.Fatal("the damaged pack was kept")
	}
	check("after a damaged pack", unique, 0, nil)

	// more than maxPacks packs: merged into one per hash
	before := len(packFiles(t, dir))
	for _, pk := range packFiles(t, dir) {
		pp, _ := sigpack.Open(pk)
		es, _ := pp.Entries()
		pp.Close()
		os.Remove(pk)
		for _, e := range slices.Concat(es, es) { // one pack per entry, twice
			if _, err := sigpack.Write(filepath.Dir(pk), len(e.Digest), []sigpack.Entry{e}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if int64(len(packFiles(t, dir))) != 2*unique || 2*unique <= maxPacks {
		t.Fatalf("%d packs for %d signatures (want more than %d)", len(packFiles(t, dir)), unique, maxPacks)
	}
	// one file changed: a new signature makes Close merge
	conf := filepath.Join(p.dir, "src", "etc", "conf")
	orig, _ := os.ReadFile(conf)
	os.WriteFile(conf, []byte("key=packs\n"), 0o755)
	_, h, miss, err = cacheBuild(t, m, dir, nil)
	perDir := map[string]int{}
	for _, pk := range packFiles(t, dir) {
		perDir[filepath.Dir(pk)]++
	}
	if err != nil || h != unique-1 || miss != 1 || len(perDir) != before || slices.Max(slices.Collect(maps.Values(perDir))) > maxPacks {
		t.Fatalf("merge: %d hits %d misses, packs %v (want at most %d in %d directories): %v", h, miss, perDir, maxPacks, before, err)
	}
	os.WriteFile(conf, orig, 0o755)
	check("merged", unique, 0, nil)

	// two builds at once, on an empty cache and on a filled one
	for _, fresh := range []bool{true, false} {
		if fresh {
			os.RemoveAll(dir)
		}
		errs := make(chan error, 2)
		for i := range 2 {
			mi := *m // its own image
			mi.Image.Output = filepath.Join(p.dir, fmt.Sprintf("concurrent-%d.sqsh", i))
			go func() {
				sum, _, _, err := cacheBuild(t, &mi, dir, nil)
				if err == nil && sum != want {
					err = errors.New("another image")
				}
				errs <- err
			}()
		}
		for range 2 {
			if err := <-errs; err != nil {
				t.Fatalf("concurrent builds (empty cache %v): %v", fresh, err)
			}
		}
		check("after concurrent builds", unique, 0, nil)
	}

	// a cache that cannot store: an error of Close, or a warning
	if os.Geteuid() != 0 {
		ro := filepath.Join(p.dir, "ro")
		os.MkdirAll(ro, 0o555)
		if _, _, _, err := cacheBuild(t, m, ro, nil); err == nil {
			t.Fatal("a read-only cache stored nothing and Close said nothing")
		}
		warned = nil
		if _, _, _, err := cacheBuild(t, m, ro, func(s string) { warned = append(warned, s) }); err != nil || len(warned) != 1 {
			t.Fatalf("read-only cache with Warn: %v, warnings %q", err, warned)
		}
	}
	// a certificate directory that is a file: nothing can be stored there
	sub := filepath.Join(p.dir, "cache2")
	if _, _, _, err := cacheBuild(t, m, sub, nil); err != nil {
		t.Fatal(err)
	}
	for _, pk := range packFiles(t, sub) {
		certDir := filepath.Dir(filepath.Dir(pk))
		os.RemoveAll(certDir)
		os.WriteFile(certDir, []byte("not a directory"), 0o644)
	}
	warned = nil
	if sum, _, _, err := cacheBuild(t, m, sub, func(s string) { warned = append(warned, s) }); err != nil || sum != want || len(warned) == 0 {
		t.Fatalf("cache directory not writable: %v, warnings %q", err, warned)
	}
	if _, _, _, err := cacheBuild(t, m, sub, nil); err == nil {
		t.Fatal("cache directory not writable, no Warn: no error from Close")
	}
}

// TestSignatureStoreStopsAfterFailure: once a pack cannot be written (here
// the store's directory would be under a regular file: ENOTDIR), the store
// warns once, keeps no more values and writes no more packs for the rest of
// the build (a full disk retried every spillAt values, encoding each time),
// and Close's flush reports the failure.
func TestSignatureStoreStopsAfterFailure(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var warnings []string
	c := &SignatureCache{dir: dir, Warn: func(m string) { warnings = append(warnings, m) }}
	s := c.store(file, imasig.SHA256) // its directory: under the regular file
	for i := range 2*spillAt + 10 {
		digest := sha256.Sum256(fmt.Append(nil, i))
		s.add(digest[:], []byte{1, 2, 3})
		if i == spillAt-1 && s.failed == nil {
			t.Fatal("the first pack, under a regular file, was written")
		}
	}
	if len(s.fresh) != 0 || len(s.written) != 0 {
		t.Errorf("after the failure: %d values kept, %d packs written; want none", len(s.fresh), len(s.written))
	}
	if err := s.flush(); !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("flush: %v, want ENOTDIR", err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], s.dir) {
		t.Errorf("warnings %q, want one naming %s", warnings, s.dir)
	}

	// --signature-cache (no Warn: a failure to store is an error): a pack
	// that failed mid-build is Close's error, even when the last values
	// would have found room (before, they were dropped without a word)
	c = &SignatureCache{dir: dir}
	s = c.store(file, imasig.SHA256)
	for i := range spillAt {
		digest := sha256.Sum256(fmt.Append(nil, i))
		s.add(digest[:], []byte{1, 2, 3})
	}
	s.dir = filepath.Join(dir, "room", "sha256") // room for the rest
	digest := sha256.Sum256([]byte("last"))
	s.add(digest[:], []byte{1, 2, 3})
	if err := c.Close(); !errors.Is(err, syscall.ENOTDIR) || !strings.Contains(err.Error(), "signature cache") {
		t.Errorf("Close without Warn after a failed pack: %v, want the ENOTDIR naming the cache", err)
	}
}
