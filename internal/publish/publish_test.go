package publish

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/imaforge/imaforge/internal/atomicfile"
)

var family = []string{"", ".record.json", ".policy", ".sig"}

// listing is every name under dir with its content ("/" for directories).
func listing(t *testing.T, dir string) string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case rel == ".":
		case d.IsDir():
			out = append(out, rel+"/")
		default:
			b, _ := os.ReadFile(p)
			out = append(out, rel+"="+string(b))
		}
		return nil
	})
	sort.Strings(out)
	return strings.Join(out, " ")
}

// publishSet publishes generation gen: the image, its record, a policy
// directory and, for odd generations, a .sig sidecar.
func publishSet(t *testing.T, img string, gen int) error {
	o, err := Lock(img, ".record.json", family)
	if err != nil {
		return err
	}
	defer o.Unlock()
	s, err := o.Stage()
	if err != nil {
		return err
	}
	defer s.Abort()
	g := strconv.Itoa(gen)
	f, err := atomicfile.Create(img, 0o644)
	if err != nil {
		return err
	}
	defer f.Abort()
	f.WriteString("image" + g)
	if err := s.AddFile("", f); err != nil {
		return err
	}
	if gen%2 == 1 {
		if err := s.AddBytes(".sig", []byte("sig"+g)); err != nil {
			return err
		}
	}
	if err := s.AddDir(".policy", map[string][]byte{"p" + g: []byte("policy" + g)}); err != nil {
		return err
	}
	if err := s.AddBytes(".record.json", []byte("record"+g)); err != nil {
		return err
	}
	return s.Publish()
}

type killed struct{}

// TestInterruptedAtEveryStep stops a publish at each step (a panic standing
// for a kill: nothing after it runs) and checks that the next Lock leaves
// exactly the old or the new set, the new one once the commit point was
// passed, with no stray file.
func TestInterruptedAtEveryStep(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "img")
	if err := publishSet(t, img, 1); err != nil {
		t.Fatal(err)
	}
	old := listing(t, dir)
	if err := publishSet(t, img, 2); err != nil {
		t.Fatal(err)
	}
	next := listing(t, dir)
	if old == next || strings.Contains(next, "img.sig") || strings.Contains(next, "p1") {
		t.Fatalf("the second set: %s (old %s)", next, old)
	}
	for at := 1; ; at++ {
		os.RemoveAll(dir)
		os.Mkdir(dir, 0o755)
		if err := publishSet(t, img, 1); err != nil {
			t.Fatal(err)
		}
		n, committed := 0, false
		StepHook = func(s string) {
			n++
			if n == at {
				panic(killed{})
			}
			if s == "commit" {
				committed = true // the rename runs after this step
			}
		}
		done := func() (done bool) {
			defer func() {
				if r := recover(); r != nil {
					if _, ok := r.(killed); !ok {
						panic(r)
					}
				}
			}()
			err := publishSet(t, img, 2)
			if err != nil {
				t.Fatal(err)
			}
			return true
		}()
		StepHook = nil
		if done {
			if at < 10 {
				t.Fatalf("only %d steps", at)
			}
			break
		}
		if err := Interrupted(img); err != nil && !committed {
			t.Errorf("step %d: %v before the commit point", at, err)
		}
		o, err := Lock(img, ".record.json", family)
		if err != nil {
			t.Fatalf("step %d: %v", at, err)
		}
		o.Unlock()
		got := listing(t, dir)
		if got != next && (got != old || committed) {
			t.Errorf("step %d (committed %v): %s\nwant %s", at, committed, got, next)
		}
	}
}

// TestKilledWhileRemovingPublishDir: a build killed partway through removing
// the publish directory of a set already in place (the set list gone, other
// leftovers such as the old policy directory not yet) leaves the new set,
// and the next Lock cleans up after it instead of failing on the set list
// forever (os.RemoveAll is not one step: TestPublishSIGKILL once killed a
// build inside it).
func TestKilledWhileRemovingPublishDir(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "img")
	if err := publishSet(t, img, 1); err != nil {
		t.Fatal(err)
	}
	if err := publishSet(t, img, 2); err != nil {
		t.Fatal(err)
	}
	next := listing(t, dir)
	os.RemoveAll(dir)
	os.Mkdir(dir, 0o755)
	if err := publishSet(t, img, 1); err != nil {
		t.Fatal(err)
	}
	StepHook = func(s string) {
		if s != "remove publish directory" {
			return
		}
		// What a kill inside RemoveAll may leave: the set list removed,
		// the set-aside old policy directory still there.
		lists, _ := filepath.Glob(filepath.Join(dir, ".img.*", setFile))
		if len(lists) != 1 {
			t.Errorf("set lists %v", lists)
		}
		for _, l := range lists {
			if _, err := os.Stat(filepath.Join(filepath.Dir(l), ".old.policy")); err != nil {
				t.Errorf("no old policy directory beside %s: %v", l, err)
			}
			os.Remove(l)
		}
		panic(killed{})
	}
	func() {
		defer func() {
			if _, ok := recover().(killed); !ok {
				t.Fatal("the publish was not stopped while removing its directory")
			}
		}()
		publishSet(t, img, 2)
	}()
	StepHook = nil
	if err := Interrupted(img); err != nil {
		t.Errorf("the set is in place, yet: %v", err)
	}
	o, err := Lock(img, ".record.json", family)
	if err != nil {
		t.Fatalf("the next build: %v", err)
	}
	o.Unlock()
	if got := listing(t, dir); got != next {
		t.Errorf("after the next Lock: %s\nwant %s", got, next)
	}
}

// TestLockBusy: a second lock of one output is refused naming the holder;
// after Unlock it is free again and no lock file remains.
func TestLockBusy(t *testing.T) {
	img := filepath.Join(t.TempDir(), "img")
	o, err := Lock(img, ".record.json", family)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Lock(img, ".record.json", family)
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "process "+strconv.Itoa(os.Getpid())) {
		t.Errorf("second lock: %v", err)
	}
	o.Unlock()
	if _, err := os.Stat(filepath.Join(filepath.Dir(img), ".img.lock")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock file after Unlock: %v", err)
	}
	o, err = Lock(img, ".record.json", family)
	if err != nil {
		t.Fatal(err)
	}
	o.Unlock()
}

// FuzzRecover: whatever a publish directory's set list says, recovery
// neither panics nor touches a name outside the output's family.
func FuzzRecover(f *testing.F) {
	f.Add([]byte(`{"outputs":["",".policy",".record.json"],"record":".record.json"}`))
	f.Add([]byte(`{"outputs":["/../other"],"record":".record.json"}`))
	f.Add([]byte(`{"outputs":[".record.json"],"record":"../other"}`))
	f.Add([]byte(`not json`))
	f.Fuzz(func(t *testing.T, list []byte) {
		dir := t.TempDir()
		img := filepath.Join(dir, "img")
		pub := filepath.Join(dir, ".img.publish")
		for p, data := range map[string]string{"other": "keep", "img": "old", "img.record.json": "old record"} {
			if err := os.WriteFile(filepath.Join(dir, p), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Mkdir(pub, 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(pub, setFile), list, 0o644)
		os.WriteFile(filepath.Join(pub, "img"), []byte("new"), 0o644)
		o, err := Lock(img, ".record.json", family)
		if err == nil {
			o.Unlock()
		}
		if b, err := os.ReadFile(filepath.Join(dir, "other")); err != nil || string(b) != "keep" {
			t.Fatalf("a name outside the family was touched: %q, %v", b, err)
		}
	})
}
