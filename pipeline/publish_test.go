package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/imaforge/imaforge/internal/publish"
	"github.com/imaforge/imaforge/manifest"
)

// writePublishManifest writes manifest name in dir: version old has no
// verity and policy fragment "a"; new has verity and fragment "b", so a
// swap replaces, adds and removes outputs.
func writePublishManifest(t *testing.T, dir, name string, verity bool, frag string) string {
	t.Helper()
	pol := fmt.Sprintf("  - name: %s\n    path: /etc/ima/policy.d/%s.policy\n    key: manufacturer\n    rules: |\n      measure func=BPRM_CHECK fsmagic=0x73717368 template=ima-sig\n", frag, frag)
	p := filepath.Join(dir, name)
	// Every kind of output: the image, a policy directory, optionally the
	// verity descriptor and its signatures, the whole-image CMS signature
	// and the record.
	text := fmt.Sprintf(integrityManifest, "gzip", verity) + "kernel: \"6.1\"\npolicy:\n" + pol
	integMust(t, os.WriteFile(p, []byte(text), 0o644))
	return p
}

// snapshot maps every name under dir (hidden ones too) to a digest of its
// content ("dir" for directories).
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		if d.IsDir() {
			out[rel] = "dir"
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		s := sha256.Sum256(b)
		out[rel] = hex.EncodeToString(s[:8])
		return nil
	})
	integMust(t, err)
	return out
}

func sameSet(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func setNames(s map[string]string) string {
	var ns []string
	for k := range s {
		ns = append(ns, k)
	}
	sort.Strings(ns)
	return strings.Join(ns, " ")
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	integMust(t, os.RemoveAll(dst))
	out, err := exec.Command("cp", "-a", src, dst).CombinedOutput()
	if err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
}

func buildManifest(t *testing.T, path string) (*Result, error) {
	t.Helper()
	m, err := manifest.Load(path)
	integMust(t, err)
	return build(t, m, 2)
}

// TestPublishKillHelper is not a test: the kill test runs the test binary
// with this test selected to build in a process it can kill.
// IMAFORGE_KILL_AT=N: SIGKILL at the Nth publishing step;
// IMAFORGE_KILL_AT=0: no kill, print the number of steps.
func TestPublishKillHelper(t *testing.T) {
	mpath := os.Getenv("IMAFORGE_KILL_MANIFEST")
	if mpath == "" {
		t.Skip("helper process of TestPublishSIGKILL")
	}
	at, _ := strconv.Atoi(os.Getenv("IMAFORGE_KILL_AT"))
	n := 0
	publish.StepHook = func(s string) {
		n++
		if at == 0 {
			fmt.Printf("step %d %s\n", n, s)
		}
		if n == at {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			time.Sleep(time.Hour)
		}
	}
	if _, err := buildManifest(t, mpath); err != nil {
		t.Fatal(err)
	}
	fmt.Printf("steps=%d\n", n)
}

// TestPublishSIGKILL kills a build (the process, SIGKILL) at every step of
// publishing and at seeded random times during the build, in both
// directions (old → new adds verity outputs and swaps the policy fragment;
// new → old removes them). Right after the kill, the outputs are the
// complete previous set or the complete new one, or an interrupted move that
// consumers refuse (publish.Interrupted); after the next build's lock has
// recovered, the directory holds exactly one build's set and no stray file,
// and the new set exactly when the kill came after the commit point.
func TestPublishSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns 40 builds")
	}
	p := newIntegrityProject(t)
	integMust(t, os.MkdirAll(filepath.Join(p.dir, "src/etc/ima/policy.d"), 0o755))
	oldM := writePublishManifest(t, p.dir, "old.yaml", false, "a")
	newM := writePublishManifest(t, p.dir, "new.yaml", true, "b")
	out := filepath.Join(p.dir, "out")
	sets := map[string]map[string]string{}
	for _, mf := range []string{newM, oldM} {
		if _, err := buildManifest(t, mf); err != nil {
			t.Fatal(err)
		}
		sets[mf] = snapshot(t, out)
		copyTree(t, out, filepath.Join(p.dir, filepath.Base(mf)+".out"))
	}
	if sameSet(sets[oldM], sets[newM]) {
		t.Fatal("the two builds give the same outputs")
	}
	t.Logf("old: %s\nnew: %s", setNames(sets[oldM]), setNames(sets[newM]))

	run := func(mf string, at int, delay time.Duration) (string, bool) {
		cmd := exec.Command(os.Args[0], "-test.run=^TestPublishKillHelper$", "-test.v")
		cmd.Env = append(os.Environ(), "IMAFORGE_KILL_MANIFEST="+mf, "IMAFORGE_KILL_AT="+strconv.Itoa(at))
		var buf strings.Builder
		cmd.Stdout, cmd.Stderr = &buf, &buf
		integMust(t, cmd.Start())
		if delay > 0 {
			time.AfterFunc(delay, func() { cmd.Process.Kill() })
		}
		err := cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
				return buf.String(), true
			}
		}
		if err != nil {
			t.Fatalf("helper: %v\n%s", err, buf.String())
		}
		return buf.String(), false
	}
	steps := func(mf string) (n, commit int) {
		copyTree(t, filepath.Join(p.dir, filepath.Base(otherOf(mf, oldM, newM))+".out"), out)
		o, killed := run(mf, 0, 0)
		if killed {
			t.Fatal("helper killed without a kill point")
		}
		for _, line := range strings.Split(o, "\n") {
			f := strings.Fields(line)
			if len(f) == 3 && f[0] == "step" && f[2] == "commit" {
				commit, _ = strconv.Atoi(f[1])
			}
		}
		i := strings.Index(o, "steps=")
		n, _ = strconv.Atoi(strings.Fields(o[i+len("steps="):])[0])
		return n, commit
	}
	check := func(t *testing.T, from, to string, mustBeNew bool) {
		t.Helper()
		img := filepath.Join(out, "img.sqsh")
		now := snapshot(t, out)
		if publish.Interrupted(img) == nil {
			// No move pending: the public names are one whole set.
			pub := map[string]string{}
			for k, v := range now {
				if !strings.HasPrefix(k, ".") {
					pub[k] = v
				}
			}
			if !sameSet(pub, sets[from]) && !sameSet(pub, sets[to]) {
				t.Errorf("after the kill: a mix: %s", setNames(pub))
			}
		}
		// The next build's lock recovers.
		o, err := publish.Lock(img, SuffixRecord, OutputSuffixes)
		if err != nil {
			t.Fatal(err)
		}
		o.Unlock()
		now = snapshot(t, out)
		switch {
		case sameSet(now, sets[to]):
		case sameSet(now, sets[from]) && !mustBeNew:
		default:
			t.Errorf("after recovery: %s\nwant the set of %s: %s", setNames(now), filepath.Base(to), setNames(sets[to]))
		}
	}
	rnd := rand.New(rand.NewSource(16))
	total := 0
	for _, dir := range []struct{ from, to string }{{oldM, newM}, {newM, oldM}} {
		n, commit := steps(dir.to)
		if commit == 0 {
			t.Fatal("no commit step")
		}
		name := filepath.Base(dir.from) + "->" + filepath.Base(dir.to)
		// Every step of the first direction; a seeded sample of the other.
		points := make([]int, 0, n)
		for i := 1; i <= n; i++ {
			if dir.from == oldM || rnd.Intn(3) == 0 {
				points = append(points, i)
			}
		}
		for _, at := range points {
			t.Run(fmt.Sprintf("%s/step%02d", name, at), func(t *testing.T) {
				copyTree(t, filepath.Join(p.dir, filepath.Base(dir.from)+".out"), out)
				o, killed := run(dir.to, at, 0)
				if !killed {
					t.Fatalf("not killed at step %d of %d:\n%s", at, n, o)
				}
				check(t, dir.from, dir.to, at > commit)
			})
			total++
		}
		// Seeded random times, mostly while reading and writing.
		for i := 0; i < 3; i++ {
			d := time.Duration(50+rnd.Intn(400)) * time.Millisecond
			t.Run(fmt.Sprintf("%s/after%v", name, d), func(t *testing.T) {
				copyTree(t, filepath.Join(p.dir, filepath.Base(dir.from)+".out"), out)
				run(dir.to, -1, d)
				check(t, dir.from, dir.to, false)
			})
			total++
		}
	}
	if total < 20 {
		t.Errorf("only %d kill points", total)
	}
}

func otherOf(x, a, b string) string {
	if x == a {
		return b
	}
	return a
}

// TestPublishConcurrent runs two builds of one output at once, the first
// slowed at each fsync: the second is refused naming the first's process,
// and the output is the first build's complete set with no stray file.
func TestPublishConcurrent(t *testing.T) {
	p := newIntegrityProject(t)
	integMust(t, os.MkdirAll(filepath.Join(p.dir, "src/etc/ima/policy.d"), 0o755))
	oldM := writePublishManifest(t, p.dir, "old.yaml", false, "a")
	newM := writePublishManifest(t, p.dir, "new.yaml", true, "b")
	out := filepath.Join(p.dir, "out")
	if _, err := buildManifest(t, newM); err != nil {
		t.Fatal(err)
	}
	want := snapshot(t, out)
	if _, err := buildManifest(t, oldM); err != nil {
		t.Fatal(err)
	}

	inSync := make(chan struct{})
	var once sync.Once
	publish.StepHook = func(s string) {
		if strings.HasPrefix(s, "sync") {
			once.Do(func() { close(inSync) })
			time.Sleep(100 * time.Millisecond) // a slow disk
		}
	}
	defer func() { publish.StepHook = nil }()
	errA := make(chan error, 1)
	go func() {
		m, err := manifest.Load(newM)
		if err != nil {
			errA <- err
			return
		}
		_, err = Build(context.Background(), Options{Manifest: m, ToolVersion: "test"})
		errA <- err
	}()
	<-inSync
	_, errB := buildManifest(t, oldM)
	if !errors.Is(errB, publish.ErrBusy) || !strings.Contains(errB.Error(), "process "+strconv.Itoa(os.Getpid())) {
		t.Errorf("second build: %v, want ErrBusy naming process %d", errB, os.Getpid())
	}
	if err := <-errA; err != nil {
		t.Fatal(err)
	}
	if got := snapshot(t, out); !sameSet(got, want) {
		t.Errorf("outputs: %s\nwant: %s", setNames(got), setNames(want))
	}
}

// TestPublishRemovesStale: a rebuild without verity, the image signature
// and a policy fragment removes their previous files (verify reported the
// fresh image TAMPERED against the stale .verity).
func TestPublishRemovesStale(t *testing.T) {
	p := newIntegrityProject(t)
	integMust(t, os.MkdirAll(filepath.Join(p.dir, "src/etc/ima/policy.d"), 0o755))
	full := writePublishManifest(t, p.dir, "full.yaml", true, "b")
	if _, err := buildManifest(t, full); err != nil {
		t.Fatal(err)
	}
	// The same manifest without verity, signature_key and policy.
	text, err := os.ReadFile(full)
	integMust(t, err)
	s := strings.Replace(string(text), "  verity: true\n  signature_key: image\n", "", 1)
	s = s[:strings.Index(s, "kernel: ")] // the policy section is last
	bare := filepath.Join(p.dir, "bare.yaml")
	integMust(t, os.WriteFile(bare, []byte(s), 0o644))
	if _, err := buildManifest(t, bare); err != nil {
		t.Fatal(err)
	}
	if got := setNames(snapshot(t, filepath.Join(p.dir, "out"))); got != "img.sqsh img.sqsh.record.json" {
		t.Errorf("outputs after the rebuild: %s", got)
	}
}
