package pipeline

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"math/rand"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/manifest"
	"github.com/imaforge/imaforge/rootfs"
)

// TestSignPoolBatches: a key with a batchFunc gets the queued digests in
// batches (at most waitedBatch, one key per batch), the other key one by one;
// every result is its own digest's value; a failing batch falls back to
// single signatures, so an error stays with its own digest.
func TestSignPoolBatches(t *testing.T) {
	var mu sync.Mutex
	var sizes []int
	single := func(key string) signFunc {
		return func(_ string, d []byte) ([]byte, error) {
			time.Sleep(100 * time.Microsecond)
			if string(d) == "bad-7" {
				return nil, errors.New("bad digest")
			}
			return []byte(key + ":" + string(d)), nil
		}
	}
	failBatch := false
	batch := func(ds [][]byte) ([][]byte, error) {
		time.Sleep(time.Duration(len(ds)) * 100 * time.Microsecond)
		mu.Lock()
		sizes = append(sizes, len(ds))
		mu.Unlock()
		if failBatch {
			return nil, errors.New("batch failed")
		}
		out := make([][]byte, len(ds))
		for i, d := range ds {
			if string(d) == "bad-7" {
				return nil, errors.New("bad digest in the batch")
			}
			out[i] = []byte("a:" + string(d))
		}
		return out, nil
	}
	for _, fail := range []bool{false, true} {
		failBatch, sizes = fail, nil
		p := newSignPool(context.Background(), map[string]signFunc{"a": single("a"), "b": single("b")},
			map[string]batchFunc{"a": batch}, 2, waitedBatch)
		type want struct {
			r     *sigResult
			value string
		}
		var ws []want
		for i := range 300 {
			key := []string{"a", "b"}[i%3/2]
			d := fmt.Sprintf("d-%d", i)
			if i == 7 {
				d = "bad-7"
			}
			ws = append(ws, want{p.submit(key, "/f", d), key + ":" + d})
		}
		p.close()
		for i, w := range ws {
			err := p.wait(w.r)
			if i == 7 {
				if err == nil {
					t.Errorf("fail=%v: the bad digest has no error", fail)
				}
				continue
			}
			if err != nil || string(w.r.value) != w.value {
				t.Fatalf("fail=%v: result %d = %q, %v; want %q", fail, i, w.r.value, err, w.value)
			}
		}
		big := 0
		for _, n := range sizes {
			if n > waitedBatch {
				t.Fatalf("a batch of %d", n)
			}
			if n > 1 {
				big++
			}
		}
		if big == 0 {
			t.Errorf("fail=%v: no batch of more than one digest (%v)", fail, sizes)
		}
	}
}

// TestSignPoolBatchLimit: with a deep queue, a worker takes batches of
// exactly the pool's limit and never more: waitedBatch (a tar build) and
// queuedBatch (a SquashFS build, 64: one hand-off to a libcrypto signing
// thread; it was 8 for both before).
func TestSignPoolBatchLimit(t *testing.T) {
	for _, c := range []struct{ limit, want int }{{waitedBatch, 8}, {queuedBatch, 64}} {
		limit := c.limit
		var mu sync.Mutex
		var sizes []int
		gate := make(chan struct{})
		sign := func(_ string, d []byte) ([]byte, error) {
			<-gate
			mu.Lock()
			sizes = append(sizes, 1)
			mu.Unlock()
			return d, nil
		}
		batch := func(ds [][]byte) ([][]byte, error) {
			<-gate
			mu.Lock()
			sizes = append(sizes, len(ds))
			mu.Unlock()
			return ds, nil
		}
		p := newSignPool(context.Background(), map[string]signFunc{"k": sign}, map[string]batchFunc{"k": batch}, 1, limit)
		var rs []*sigResult
		for i := range 1000 {
			rs = append(rs, p.submit("k", "/f", fmt.Sprintf("d-%d", i)))
		}
		close(gate)
		p.close()
		for i, r := range rs {
			if err := p.wait(r); err != nil || string(r.value) != fmt.Sprintf("d-%d", i) {
				t.Fatalf("limit %d: result %d = %q, %v", limit, i, r.value, err)
			}
		}
		most, total := 0, 0
		for _, n := range sizes {
			most, total = max(most, n), total+n
		}
		if most != c.want || total != 1000 {
			t.Errorf("limit %d: batches %v: the largest %d, %d digests in all; want %d and 1000", limit, sizes, most, total, c.want)
		}
	}
}

// poolWaiters submits n digests and waits for each on a goroutine of its
// own, as a tar build's Seals do, twice for every fourth; the key fails
// every seventh digest. Signing starts once 4,000 (the pool's queue holds
// 4,096) or half are submitted, so most waiters wait before it is done.
func poolWaiters(tb testing.TB, n int) {
	bad := errors.New("refused")
	gate := make(chan struct{})
	fns := map[string]signFunc{"k": func(path string, d []byte) ([]byte, error) {
		<-gate
		if d[0]%7 == 0 {
			return nil, bad
		}
		return append([]byte("sig:"), d...), nil
	}}
	p := newSignPool(context.Background(), fns, nil, 2, waitedBatch)
	defer p.close()
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		if i == min(n/2, 4000) {
			close(gate)
		}
		d := sha256.Sum256(fmt.Append(nil, i))
		r := p.submit("k", fmt.Sprint("/f", i), string(d[:]))
		for range 1 + i%4/3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				err := p.wait(r)
				switch {
				case d[0]%7 == 0 && !errors.Is(err, bad):
					errs <- fmt.Errorf("%d: %v, want the key's error", i, err)
				case d[0]%7 != 0 && (err != nil || string(r.value) != "sig:"+string(d[:])):
					errs <- fmt.Errorf("%d: %v, value %q", i, err, r.value)
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Error(err)
	}
	if len(p.waiting) != 0 {
		tb.Errorf("%d waiting channels left", len(p.waiting))
	}
}

// TestSignPoolWaiters: every waiter, several on one result too, gets its
// result's value or error, whether it waits before or after the signing.
func TestSignPoolWaiters(t *testing.T) { poolWaiters(t, 3000) }

// prefixSigners are keys whose value for a digest is the key's name, ':'
// and the digest.
func prefixSigners(keys ...string) map[string]signFunc {
	fns := make(map[string]signFunc, len(keys))
	for _, k := range keys {
		fns[k] = func(_ string, d []byte) ([]byte, error) { return append([]byte(k+":"), d...), nil }
	}
	return fns
}

// TestSignPoolLookup: the pool's table finds a pair again across its
// growth (5,000 pairs: the table doubles three times), tells apart digests
// that share their first 8 bytes and the same digest under another key,
// and after forget signs a pair again whose files were all sealed, and
// still finds one whose files were not.
func TestSignPoolLookup(t *testing.T) {
	p := newSignPool(context.Background(), prefixSigners("a", "b"), nil, 2, waitedBatch)
	defer p.close()
	const n = 5000
	first := make([]*sigResult, n)
	digest := func(i int) string {
		d := make([]byte, 32) // the first 8 bytes are the same for 2k and 2k+1
		binary.LittleEndian.PutUint64(d, uint64(i/2))
		copy(d[8:], fmt.Append(nil, i))
		return string(d)
	}
	for i := range n {
		first[i] = p.submit("a", "/f", digest(i))
	}
	other := p.submit("b", "/f", digest(0))
	for i := range n {
		if r := p.submit("a", "/g", digest(i)); r != first[i] {
			t.Fatalf("pair %d: a second result", i)
		}
	}
	if other == first[0] {
		t.Error("key b shares key a's result for one digest")
	}
	if p.unique != n+1 || p.uniqueOf("a") != n || p.uniqueOf("b") != 1 {
		t.Errorf("unique %d, a %d, b %d; want %d, %d, 1", p.unique, p.uniqueOf("a"), p.uniqueOf("b"), n+1, n)
	}
	for i, r := range first {
		if err := p.wait(r); err != nil || string(r.value) != "a:"+string(digest(i)) {
			t.Fatalf("pair %d: %v, %q", i, err, r.value)
		}
	}
	// every file of each pair sealed (two each), but those of pair 8
	for i, r := range first {
		if i != 8 {
			p.release(r, int32(i))
			p.release(r, int32(i))
		}
	}
	p.forget()
	if r := p.submit("a", "/f", digest(7)); r == first[7] {
		t.Error("a forgotten pair was found")
	}
	// a pair whose files are not all sealed stays, for their Seals
	if r, err := p.lookup("a", digest(8)); err != nil || r != first[8] {
		t.Errorf("lookup of a pair not released after forget: %p, %v; want %p", r, err, first[8])
	}
	if r := p.submit("a", "/h", digest(8)); r != first[8] {
		t.Error("a pair not released was signed again after forget")
	}
}

// TestSignPoolRelease: a result's value is dropped once every file given
// it was sealed, not before; a later file with that digest has it signed
// again (the same value), not counted as another unique pair; a failed
// result keeps its error.
func TestSignPoolRelease(t *testing.T) {
	var signed atomic.Int32
	fns := map[string]signFunc{"a": func(_ string, d []byte) ([]byte, error) {
		signed.Add(1)
		if d[0] == 'x' {
			return nil, errors.New("refused")
		}
		return append([]byte("a:"), d...), nil
	}}
	p := newSignPool(context.Background(), fns, nil, 2, waitedBatch)
	defer p.close()
	p.keep = 1 // one sealed result keeps its value
	files := []string{"digest-1", "digest-2", "x-digest"}
	p.digestOf = func(i int32) string { return files[i] }
	d := "digest-1"
	r1 := p.submit("a", "/f", d)
	r2 := p.submit("a", "/g", d)
	if r1 != r2 {
		t.Fatal("one digest, two results")
	}
	if err := p.wait(r1); err != nil {
		t.Fatal(err)
	}
	p.release(r1, 0)
	if string(r1.value) != "a:digest-1" {
		t.Fatalf("value %q dropped while /g is not sealed", r1.value)
	}
	p.release(r2, 0)
	if string(r1.value) != "a:digest-1" {
		t.Fatalf("value %q dropped while it is the last sealed result", r1.value)
	}
	if r := p.submit("a", "/g2", d); r != r1 {
		t.Fatal("a kept result not given again")
	} else {
		p.release(r, 0)
	}
	other := p.submit("a", "/o", "digest-2")
	if err := p.wait(other); err != nil {
		t.Fatal(err)
	}
	p.release(other, 1) // takes r1's place in the ring of one
	if r1.value != nil || !r1.released {
		t.Fatalf("value %q kept after both files were sealed and another result came", r1.value)
	}
	r3 := p.submit("a", "/h", d)
	if r3 == r1 {
		t.Fatal("a released result was given again")
	}
	if err := p.wait(r3); err != nil || string(r3.value) != "a:digest-1" {
		t.Fatalf("signed again: %v, %q", err, r3.value)
	}
	if p.unique != 2 || p.uniqueOf("a") != 2 || signed.Load() != 3 {
		t.Errorf("unique %d (a %d), signed %d times; want 2 and 3", p.unique, p.uniqueOf("a"), signed.Load())
	}
	p.release(r3, 0)
	p.forget()
	if r3.value != nil || other.value != nil {
		t.Error("values kept after forget")
	}
	bad := p.submit("a", "/x", "x-digest")
	if err := p.wait(bad); err == nil {
		t.Fatal("no error")
	}
	p.release(bad, 2)
	if err := p.wait(bad); err == nil || bad.released {
		t.Errorf("a failed result released: %v", err)
	}
}

// TestSignPoolRemove: a released result leaves the pool's table (which
// then holds only the results still in use: a million files do not keep a
// result each), every other result is still found after each removal,
// whatever its probe start shares with the removed one's (digests in
// pairs with the same first 8 bytes, and a small table full of runs), and a
// released pair submitted again is signed again but not counted again.
func TestSignPoolRemove(t *testing.T) {
	p := newSignPool(context.Background(), prefixSigners("a", "b"), nil, 2, waitedBatch)
	defer p.close()
	p.keep = 1
	const n = 700 // the table of 1024 slots stays 3/4 full at most
	digest := func(i int) string {
		d := make([]byte, 32)
		binary.LittleEndian.PutUint64(d, uint64(i/2))
		copy(d[8:], fmt.Append(nil, i))
		return string(d)
	}
	p.digestOf = func(i int32) string { return digest(int(i)) }
	keys := []string{"a", "b"}
	live := map[int]*sigResult{}
	for i := range n {
		live[i] = p.submit(keys[i%2], "/f", digest(i))
	}
	order := rand.New(rand.NewSource(3)).Perm(n)
	for k, i := range order {
		r := live[i]
		if err := p.wait(r); err != nil {
			t.Fatal(err)
		}
		p.release(r, int32(i)) // the previous one leaves the ring of one: dropped
		delete(live, i)
		if k == 0 {
			continue
		}
		if prev := order[k-1]; p.results[p.probe(uint16(prev%2), p.hash(uint16(prev%2), digest(prev)), digest(prev))].r != nil {
			t.Fatalf("released pair %d still in the table", prev)
		}
		if p.nres != len(live)+1 {
			t.Fatalf("after %d releases the table holds %d results, want %d", k+1, p.nres, len(live)+1)
		}
		for j, lr := range live {
			ki := p.index[keys[j%2]]
			if got := p.results[p.probe(ki, p.hash(ki, digest(j)), digest(j))].r; got != lr {
				t.Fatalf("after releasing %d: pair %d not found", k+1, j)
			}
		}
	}
	if p.unique != n {
		t.Fatalf("unique %d, want %d", p.unique, n)
	}
	if got := p.signed[0].n + p.signed[1].n; got != n-1 {
		t.Fatalf("%d released pairs recorded by file, want %d", got, n-1)
	}
	i0 := order[0]
	k0, other := keys[i0%2], keys[1-i0%2]
	again := p.submit(k0, "/g", digest(i0))
	if err := p.wait(again); err != nil || string(again.value) != k0+":"+digest(i0) {
		t.Fatalf("a released pair signed again: %v, %q", err, again.value)
	}
	if p.unique != n || p.uniqueOf("a") != n/2 || p.uniqueOf("b") != n/2 {
		t.Errorf("after a released pair came again: unique %d (a %d, b %d), want %d (%d, %d)", p.unique, p.uniqueOf("a"), p.uniqueOf("b"), n, n/2, n/2)
	}
	if r := p.submit(other, "/g", digest(i0)); p.unique != n+1 || r == again {
		t.Errorf("the same digest under the other key: unique %d, want %d", p.unique, n+1)
	}
}

// TestSignPoolKeyLimit: a result keeps its key's index in 16 bits, so a
// pool given more keys than that signs nothing: every file fails, naming
// its key, rather than being signed with another key.
func TestSignPoolKeyLimit(t *testing.T) {
	for _, n := range []int{1 << 16, 1<<16 + 1} {
		fns := make(map[string]signFunc, n)
		for i := range n {
			k := fmt.Sprint("k", i)
			fns[k] = func(_ string, d []byte) ([]byte, error) { return []byte(k + ":" + string(d)), nil }
		}
		p := newSignPool(context.Background(), fns, nil, 2, waitedBatch)
		for _, k := range []string{"k0", fmt.Sprint("k", n-1)} {
			r := p.submit(k, "/f", "digest")
			err := p.wait(r)
			switch {
			case n <= 1<<16 && (err != nil || string(r.value) != k+":digest"):
				t.Errorf("%d keys, %s: %v, value %q", n, k, err, r.value)
			case n > 1<<16 && (err == nil || !strings.Contains(err.Error(), k)):
				t.Errorf("%d keys, %s: %v, want an error naming the key", n, k, err)
			}
		}
		p.close()
	}
}

// TestFileSetProbes: a fileSet finds every digest added, across its
// growth, and none other, also among digests whose first 8 bytes (the
// start of the probe) are equal; and a probe for an absent digest reads
// the digest of a file (digestOf) only where a slot's tag matches. Before
// the tags a probe read the digest of every slot it passed: 10,000 absent
// probes read 11,622-64,212 digests here. With them, about one slot passed
// in 128 is read (the pairs share their tag), but how many slots a probe
// passes depends on the clusters that the random seed makes. At 700 files
// in 1,024 slots, 3,000 seeds gave a median of 283 reads and at most 1,376
// (the earlier bound, absent/16, failed for 22 of them); a table 3/4 full
// (768 files, without the second add of file 0, which grows it) gave a
// median of 458 and at most 2,088. So the bound is absent/2: well below
// the untagged table's cost, and far above what a seed's clusters give.
func TestFileSetProbes(t *testing.T) {
	digest := func(i int) string {
		d := make([]byte, 32)
		binary.LittleEndian.PutUint64(d, uint64(i/2)) // pairs share the first 8 bytes
		copy(d[8:], fmt.Append(nil, i))
		return string(d)
	}
	for _, n := range []int{1, 700, 768, 769, 20000} {
		reads := 0
		digestOf := func(i int32) string { reads++; return digest(int(i)) }
		seed := maphash.MakeSeed()
		var s fileSet
		for i := 0; i < n; i += 2 { // even files, then odd ones
			s.add(seed, digestOf, int32(i))
		}
		for i := 1; i < n; i += 2 {
			s.add(seed, digestOf, int32(i))
		}
		s.add(seed, digestOf, 0) // again: no second entry
		if s.n != n {
			t.Fatalf("%d files: the set holds %d", n, s.n)
		}
		for i := range n {
			if !s.has(seed, digestOf, digest(i)) {
				t.Fatalf("%d files: file %d's digest not found", n, i)
			}
		}
		reads = 0
		const absent = 10000
		for i := range absent {
			d := []byte(digest(n + 2*i))
			d[31] ^= 0xff // also differs from its pair's
			if s.has(seed, digestOf, string(d)) {
				t.Fatalf("%d files: an absent digest found", n)
			}
		}
		if reads > absent/2 {
			t.Errorf("%d files: %d probes for absent digests read %d files' digests, want at most %d", n, absent, reads, absent/2)
		}
	}
}

// BenchmarkSignPoolMillion: the sign pool's table work for a million
// files of distinct digests, each submitted, signed (a trivial signer) and
// released in order, as a SquashFS build does: results enter and leave the
// table, released pairs enter the set of signed ones.
func BenchmarkSignPoolMillion(b *testing.B) {
	const n = 1 << 20
	digests := make([]string, n)
	for i := range digests {
		d := sha256.Sum256(binary.LittleEndian.AppendUint64(nil, uint64(i)))
		digests[i] = string(d[:])
	}
	for b.Loop() {
		p := newSignPool(context.Background(), prefixSigners("a"), nil, 1, waitedBatch)
		p.digestOf = func(i int32) string { return digests[i] }
		rs := make([]*sigResult, 0, 4096)
		for i := 0; i < n; i += cap(rs) {
			rs = rs[:0]
			for j := i; j < i+cap(rs); j++ {
				rs = append(rs, p.submit("a", "/f", digests[j]))
			}
			for k, r := range rs {
				if err := p.wait(r); err != nil {
					b.Fatal(err)
				}
				p.release(r, int32(i+k))
			}
		}
		p.close()
	}
}

// evmLayout is a layout of n regular files /f<i>, all read and signed by
// key "k", with the digest of content id (i/2)%ids; files from modeAt on
// have mode 0600 (the others 0644), so their EVM digests differ from the
// files' of the same content before; every fifth file has no EVM key.
func evmLayout(h imasig.Hash, n, ids, modeAt int) *layout {
	lay := &layout{rules: []fileRule{{key: "k", evmKey: "k"}, {key: "k"}}}
	for i := range n {
		mode := uint32(0o644)
		if i >= modeAt {
			mode = 0o600
		}
		lay.tree = append(lay.tree, rootfs.Entry{Path: fmt.Sprintf("/f%05d", i), Size: 1, Mode: mode, UID: 7, GID: 8, Type: rootfs.TypeReg})
		lay.entries = append(lay.entries, entryRef(i))
		lay.files = append(lay.files, fileState{entry: entryRef(i), rule: uint32(min(1, i%5/4)), read: true})
	}
	lay.newDigests(h)
	for i := range n {
		d := sha256.Sum256(fmt.Append(nil, (i/2)%ids))
		copy(lay.digests.slot(int32(i)), d[:])
	}
	return lay
}

// evmWant returns the xattrs file i of an evmLayout is sealed with by
// prefixSigners("k", evmPoolKey("k")), and its EVM digest ("": none).
func evmWant(t *testing.T, lay *layout, h imasig.Hash, i int) (manifest.Xattrs, string) {
	t.Helper()
	ima := []byte("k:" + lay.digest(int32(i)))
	want := manifest.Xattrs{{Name: imasig.XattrName, Value: ima}}
	if lay.files[i].rule != 0 {
		return want, ""
	}
	e := &lay.tree[i]
	d, err := imasig.EVMDigest(h, imasig.EVMXattrsDebian61, imasig.EVMMeta{UID: e.UID, GID: e.GID, Mode: 0o100000 | e.Mode, Xattrs: map[string][]byte{imasig.XattrName: ima}})
	if err != nil {
		t.Fatal(err)
	}
	// sorted by name: security.evm first
	return append(manifest.Xattrs{{Name: imasig.EVMXattrName, Value: []byte(evmPoolKey("k") + ":" + string(d))}}, want...), string(d)
}

// TestSealReleasesEVM: a file's EVM result is released once its value is
// in the xattrs Seal returns, like its IMA result, whether the files are
// sealed before forget (tar) or after (SquashFS), so that the pool keeps
// no more results than its ring once every file was sealed; each file
// still gets the EVM signature of its own digest (files 2j and 2j+1 share
// one, sealed side by side; files of the same content and another mode do
// not), and a pair signed again after its result was dropped is counted
// once. Before, every EVM result stayed in the pool, with its value, to
// the build's end.
func TestSealReleasesEVM(t *testing.T) {
	const n, ids, modeAt, keep = 3000, 700, 2100, 16
	for _, tc := range []struct {
		name         string
		forgetBefore bool // SquashFS: forget, then Close seals
	}{
		{"tar", false},
		{"squashfs", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := imasig.SHA256
			lay := evmLayout(h, n, ids, modeAt)
			p := newSignPool(context.Background(), prefixSigners("k", evmPoolKey("k")), nil, 2, waitedBatch)
			defer p.close()
			p.keep = keep
			p.digestOf = lay.digest
			s := newSealer(lay, h, imasig.EVMXattrsDebian61, p)
			for i := range n {
				p.submit("k", lay.tree[i].Path, lay.digest(int32(i)))
			}
			if tc.forgetBefore {
				p.forget()
			}
			got := make([]manifest.Xattrs, n)
			errs := make([]error, n)
			var next atomic.Int32
			var wg sync.WaitGroup
			for range 4 {
				wg.Go(func() {
					for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
						got[i], errs[i] = s.Seal(i)
					}
				})
			}
			wg.Wait()
			if !tc.forgetBefore {
				p.forget()
			}
			evmDigests := map[string]bool{}
			for i := range n {
				if errs[i] != nil {
					t.Fatalf("file %d: %v", i, errs[i])
				}
				want, d := evmWant(t, lay, h, i)
				if d != "" {
					evmDigests[d] = true
				}
				if len(got[i]) != len(want) {
					t.Fatalf("file %d: %d xattrs, want %d", i, len(got[i]), len(want))
				}
				for j := range want {
					if got[i][j].Name != want[j].Name || !bytes.Equal(got[i][j].Value, want[j].Value) {
						t.Fatalf("file %d: xattr %s = %q, want %s = %q", i, got[i][j].Name, got[i][j].Value, want[j].Name, want[j].Value)
					}
				}
			}
			p.mu.Lock()
			held, valued := p.nres, 0
			for _, sl := range p.results {
				if sl.r != nil && sl.r.value != nil {
					valued++
				}
			}
			p.mu.Unlock()
			if held > keep || valued > keep {
				t.Errorf("%d results in the pool, %d with a value, after every file was sealed; want at most the ring's %d", held, valued, keep)
			}
			if u := p.uniqueOf(evmPoolKey("k")); u != len(evmDigests) {
				t.Errorf("%d unique EVM pairs counted, want %d", u, len(evmDigests))
			}
			if u := p.uniqueOf("k"); u != ids {
				t.Errorf("%d unique IMA pairs counted, want %d", u, ids)
			}
		})
	}
}

// TestSignPoolLateFirst: a late key's job (an EVM signature, which a file
// waits for holding its first) is signed before the other keys' jobs
// queued ahead of it.
func TestSignPoolLateFirst(t *testing.T) {
	gate := make(chan struct{})
	var mu sync.Mutex
	var order []string
	fn := func(name string) signFunc {
		return func(_ string, d []byte) ([]byte, error) {
			<-gate
			mu.Lock()
			order = append(order, name)
			mu.Unlock()
			return d, nil
		}
	}
	p := newSignPool(context.Background(), map[string]signFunc{"a": fn("a"), "evm:a": fn("late")}, nil, 1, waitedBatch)
	defer p.close()
	p.lateKey("evm:a", func(int32) string { return "" })
	var rs []*sigResult
	for i := range 20 {
		rs = append(rs, p.submit("a", "/f", fmt.Sprint(i)))
	}
	late := p.submit("evm:a", "/f", "late")
	close(gate)
	for _, r := range append(rs, late) {
		if err := p.wait(r); err != nil {
			t.Fatal(err)
		}
	}
	// the worker may have taken the first "a" job before the late one came
	if i := slices.Index(order, "late"); i > 1 {
		t.Errorf("the late key's job signed after %d jobs queued before it: %v", i, order)
	}
}
