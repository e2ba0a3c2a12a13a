package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/imaforge/imaforge/internal/blockcache"
	"github.com/imaforge/imaforge/internal/testenv"
	"github.com/imaforge/imaforge/manifest"
)

// These tests put the two caches of `build --cache DIR` (the signature
// cache in DIR, the block cache in DIR/blocks) on a real file system that
// is full or read-only (a tmpfs mounted by the test), as issue 22 asks:
// a warning per cache and a cold build, never a wrong image.

// diskProject is a tree of incompressible files (its block pack is about
// as large as its content, 150 x 6,000 bytes) signed by the RSA key (its
// signature pack about 45 KB), built with zstd.
func diskProject(t *testing.T) *manifest.Manifest {
	t.Helper()
	p := newProject(t)
	r := rand.New(rand.NewPCG(22, 1))
	for i := range 150 {
		b := make([]byte, 6000)
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		path := filepath.Join(p.dir, "src", "usr", "share", fmt.Sprintf("f%03d", i))
		os.MkdirAll(filepath.Dir(path), 0o755)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return p.manifest(t, "zstd", "src", "")
}

// diskRun is what a build with both caches gave.
type diskRun struct {
	img, rec           []byte
	warnings           []string
	blocks             blockcache.Stats
	sigHits, sigMisses int64
}

// coldRun builds m without a cache.
func coldRun(t *testing.T, m *manifest.Manifest) diskRun {
	t.Helper()
	res, err := build(t, m, 0)
	if err != nil {
		t.Fatal(err)
	}
	return readRun(t, res)
}

func readRun(t *testing.T, res *Result) diskRun {
	t.Helper()
	img, err := os.ReadFile(res.ImagePath)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := os.ReadFile(res.RecordPath)
	if err != nil {
		t.Fatal(err)
	}
	return diskRun{img: img, rec: rec}
}

// cacheRun builds m with both caches in dir, as `build --cache dir` does
// (warnings, not errors, for what the caches cannot do), and closes them.
func cacheRun(t *testing.T, m *manifest.Manifest, dir string) diskRun {
	t.Helper()
	var mu sync.Mutex
	var warnings []string
	warn := func(s string) { mu.Lock(); warnings = append(warnings, s); mu.Unlock() }
	sc, err := OpenSignatureCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	sc.Warn = warn
	bc := blockcache.Open(dir, 0, warn)
	keys, err := CacheKeys(m, sc, nil, func(k *manifest.Key) (Key, error) { return LoadKey(k, nil, 1) })
	if err != nil {
		t.Fatal(err)
	}
	res, err := Build(context.Background(), Options{Manifest: m, ToolVersion: "test", Keys: keys, BlockCache: bc})
	if err != nil {
		t.Fatalf("the build failed: %v", err)
	}
	if err := sc.Close(); err != nil {
		t.Fatalf("signature cache: %v", err)
	}
	if _, err := bc.Close(); err != nil {
		t.Fatalf("block cache: %v", err)
	}
	run := readRun(t, res)
	run.warnings = warnings
	run.blocks = bc.Stats()
	run.sigHits, run.sigMisses = sc.Stats()
	return run
}

// filesIn lists the regular files and anything else that is not a
// directory under dir, except those named in except.
func filesIn(t *testing.T, dir string, except ...string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && !slices.Contains(except, d.Name()) {
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// checkCold fails unless run gave cold's image and record, byte for byte.
func checkCold(t *testing.T, what string, run, cold diskRun) {
	t.Helper()
	if !bytes.Equal(run.img, cold.img) || !bytes.Equal(run.rec, cold.rec) {
		t.Fatalf("%s: image equal %v, record equal %v", what, bytes.Equal(run.img, cold.img), bytes.Equal(run.rec, cold.rec))
	}
}

// checkWarned fails unless run gave exactly one warning per cache, each
// naming that cache's directory and cause.
func checkWarned(t *testing.T, what string, run diskRun, dir string, cause error) {
	t.Helper()
	blocks := "block cache " + filepath.Join(dir, "blocks") + ":"
	sigs := "signature cache " + dir + "/"
	var nb, ns int
	for _, w := range run.warnings {
		if !strings.Contains(w, cause.Error()) {
			t.Errorf("%s: warning %q does not name the cause %q", what, w, cause)
		}
		switch {
		case strings.HasPrefix(w, blocks):
			nb++
		case strings.HasPrefix(w, sigs):
			ns++
		default:
			t.Errorf("%s: warning %q does not name a cache directory in %s", what, w, dir)
		}
	}
	if nb != 1 || ns != 1 {
		t.Fatalf("%s: %d block cache and %d signature cache warnings, want one each: %q", what, nb, ns, run.warnings)
	}
}

// checkStoresThenReuses: with room again, a build stores (no warning, a
// pack of each kind), and the next one takes every block and signature
// from the cache; both give the cold image.
func checkStoresThenReuses(t *testing.T, m *manifest.Manifest, dir string, cold diskRun) {
	t.Helper()
	run := cacheRun(t, m, dir)
	checkCold(t, "storing", run, cold)
	if len(run.warnings) != 0 || run.blocks.Stored == 0 || run.sigMisses == 0 {
		t.Fatalf("storing: warnings %q, blocks %+v, %d signatures new", run.warnings, run.blocks, run.sigMisses)
	}
	var bpk, spk int
	for _, f := range filesIn(t, dir) {
		switch {
		case strings.HasSuffix(f, blockcache.PackExt):
			bpk++
		case strings.HasSuffix(f, ".pack"):
			spk++
		}
	}
	if bpk != 1 || spk != 1 {
		t.Fatalf("storing: %d block packs and %d signature packs in %q", bpk, spk, filesIn(t, dir))
	}
	run = cacheRun(t, m, dir)
	checkCold(t, "reusing", run, cold)
	if len(run.warnings) != 0 || run.blocks.Hits == 0 || run.blocks.Misses != 0 || run.sigHits == 0 || run.sigMisses != 0 {
		t.Fatalf("reusing: warnings %q, blocks %+v, signatures %d reused %d new", run.warnings, run.blocks, run.sigHits, run.sigMisses)
	}
}

// TestCacheFull: both caches on a tmpfs that fills part way through each
// pack (16 KiB: the block pack needs about 900 KB, the signature pack
// about 45 KB), or that is full before the build: the build succeeds with
// one warning per cache naming its directory and ENOSPC, gives the cold
// image and record, and leaves no partial pack or temporary file; a
// second build on the full cache is the same; once there is room, a build
// stores and the next reuses.
func TestCacheFull(t *testing.T) {
	m := diskProject(t)
	cold := coldRun(t, m)
	for _, before := range []bool{false, true} {
		t.Run(map[bool]string{false: "fills during the build", true: "full before the build"}[before], func(t *testing.T) {
			dir := testenv.Tmpfs(t, 16<<10)
			if before {
				fill, err := os.Create(filepath.Join(dir, "fill"))
				if err != nil {
					t.Fatal(err)
				}
				_, err = fill.Write(make([]byte, 64<<10))
				fill.Close()
				if err == nil || !strings.Contains(err.Error(), syscall.ENOSPC.Error()) {
					t.Fatalf("filling the tmpfs: %v", err)
				}
			}
			for i := range 2 {
				what := fmt.Sprintf("build %d on the full cache", i+1)
				run := cacheRun(t, m, dir)
				checkCold(t, what, run, cold)
				checkWarned(t, what, run, dir, syscall.ENOSPC)
				if run.blocks.Stored != 0 || run.blocks.Hits != 0 || run.sigHits != 0 {
					t.Fatalf("%s: blocks %+v, %d signatures reused", what, run.blocks, run.sigHits)
				}
				if left := filesIn(t, dir, "fill"); len(left) != 0 {
					t.Fatalf("%s: left %q", what, left)
				}
			}
			os.Remove(filepath.Join(dir, "fill"))
			testenv.Remount(t, dir, 0, "size=64m")
			checkStoresThenReuses(t, m, dir, cold)
		})
	}
}

// TestCacheUnwritable: both caches in a directory that cannot be written
// (a read-only tmpfs as root, else mode 0555): empty, each cache warns once
// naming its directory and the cause, twice over, and the build is the
// cold one with nothing left behind; writable again, a build stores and
// the next reuses; filled and read-only again, a build reuses everything
// with the one warning of the block cache (it probes), the signature cache
// having nothing to store.
func TestCacheUnwritable(t *testing.T) {
	m := diskProject(t)
	cold := coldRun(t, m)
	var dir string
	var setWritable func(bool)
	var cause error
	if os.Geteuid() == 0 {
		dir = testenv.Tmpfs(t, 64<<20)
		setWritable = func(w bool) {
			if w {
				testenv.Remount(t, dir, 0, "")
			} else {
				testenv.Remount(t, dir, unix.MS_RDONLY, "")
			}
		}
		cause = syscall.EROFS
	} else {
		dir = filepath.Join(t.TempDir(), "cache")
		os.Mkdir(dir, 0o755)
		setWritable = func(w bool) {
			mode := fs.FileMode(0o555)
			if w {
				mode = 0o755
			}
			filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
				if err == nil && d.IsDir() {
					os.Chmod(path, mode)
				}
				return nil
			})
		}
		t.Cleanup(func() { setWritable(true) })
		cause = syscall.EACCES
	}
	setWritable(false)
	for i := range 2 {
		what := fmt.Sprintf("build %d on the read-only cache", i+1)
		run := cacheRun(t, m, dir)
		checkCold(t, what, run, cold)
		checkWarned(t, what, run, dir, cause)
		if left := filesIn(t, dir); len(left) != 0 {
			t.Fatalf("%s: left %q", what, left)
		}
	}
	setWritable(true)
	checkStoresThenReuses(t, m, dir, cold)
	setWritable(false)
	run := cacheRun(t, m, dir)
	checkCold(t, "read-only, filled", run, cold)
	if len(run.warnings) != 1 || !strings.HasPrefix(run.warnings[0], "block cache "+filepath.Join(dir, "blocks")+":") ||
		!strings.Contains(run.warnings[0], cause.Error()) || run.blocks.Misses != 0 || run.sigMisses != 0 {
		t.Fatalf("read-only, filled: warnings %q, blocks %+v, %d signatures new", run.warnings, run.blocks, run.sigMisses)
	}
}

// TestSignatureCacheCutShort: a signature pack cut short in its values or
// in its index (internal/sigpack's Parse tests cover each field; this is
// the cache's side), or a FIFO under a pack's name, is one warning naming
// it; its signatures are made again (the cold image and record), it is
// merged away, and the next build takes every signature from the cache.
func TestSignatureCacheCutShort(t *testing.T) {
	m := diskProject(t)
	cold := coldRun(t, m)
	for name, f := range map[string]func(path string) error{
		"values cut short": func(path string) error {
			fi, err := os.Stat(path)
			if err != nil {
				return err
			}
			return os.Truncate(path, fi.Size()-1)
		},
		"index cut short": func(path string) error { return os.Truncate(path, 32+100) },
		"a fifo": func(path string) error {
			if err := os.Remove(path); err != nil {
				return err
			}
			return syscall.Mkfifo(path, 0o644)
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "cache")
			checkStoresThenReuses(t, m, dir, cold)
			packs := packFiles(t, dir)
			if len(packs) != 1 {
				t.Fatalf("packs %q", packs)
			}
			if err := f(packs[0]); err != nil {
				t.Fatal(err)
			}
			run := cacheRun(t, m, dir)
			checkCold(t, name, run, cold)
			if len(run.warnings) != 1 || !strings.Contains(run.warnings[0], packs[0]+": not a valid signature pack") ||
				run.sigHits != 0 || run.sigMisses == 0 {
				t.Fatalf("warnings %q, signatures %d reused %d new", run.warnings, run.sigHits, run.sigMisses)
			}
			if slices.Contains(packFiles(t, dir), packs[0]) {
				t.Fatal("the pack was kept")
			}
			run = cacheRun(t, m, dir)
			checkCold(t, "after", run, cold)
			if len(run.warnings) != 0 || run.sigMisses != 0 {
				t.Fatalf("after: warnings %q, %d signatures new", run.warnings, run.sigMisses)
			}
		})
	}
}
