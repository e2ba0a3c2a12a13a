// Package publish makes a build's outputs appear as one unit: the image, its
// record, its policy directory and its integrity sidecars are all the new
// build's, or all the previous build's, never a mix; outputs of the previous
// build that this one does not produce are removed in the same step; a second
// build of the same output is refused while the first holds its lock.
//
// # Layout
//
// For an output D/N (the image), with the family of suffixes the caller
// declares (".record.json", ".policy", ".verity", ...):
//
//	D/N, D/N.record.json, D/N<suffix>...   the published outputs
//	D/.N.lock                              the lock (flock) while a build runs; holds its pid
//	D/.N.stage-XXXX/                       a set being prepared (not yet published)
//	D/.N.publish/                          a complete set being moved into place
//
// # Protocol
//
// Lock takes an exclusive flock on D/.N.lock (refusing, with the holder's pid,
// if another process has it) and recovers what a killed build left: a
// D/.N.publish directory is a complete set and is moved into place (roll
// forward); stage directories and temporary files are removed. Then the set
// is written into a fresh stage directory, every file and directory fsynced,
// and the stage renamed to D/.N.publish (the commit point: before it the
// previous outputs stand, after it the new ones will, whatever happens). The
// move then removes the previous record, renames each output into place
// (the record last: it names the image's digest), removes the previous
// build's outputs the new set lacks, renames D/.N.publish to a stage name and
// removes it, with a directory fsync after each phase.
//
// A process killed during the move leaves D/.N.publish; consumers of the
// outputs check Interrupted and refuse the set, and the next Lock (the next
// build) completes the move.
package publish

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/imaforge/imaforge/internal/atomicfile"
)

// ErrBusy is returned by Lock when another process holds the output's lock.
var ErrBusy = errors.New("another build of this output is running")

// ErrInterrupted is returned by Interrupted when a publish of the output was
// interrupted: its files are not one build's set until the next build
// completes the move.
var ErrInterrupted = errors.New("the publishing of a build was interrupted")

// StepHook, when set, is called before each step that changes the file
// system (with a short description). It exists for fault-injection tests
// (a SIGKILL or a delay at each step) and is nil otherwise.
var StepHook func(step string)

func step(format string, args ...any) {
	if h := StepHook; h != nil {
		h(fmt.Sprintf(format, args...))
	}
}

// Output is a locked output: D/N and the family of names beside it.
type Output struct {
	dir, name string
	record    string   // suffix of the record, moved last
	family    []string // every suffix an output of this kind may have
	lock      *os.File
}

// Lock locks the output path (the image) whose set consists of the image
// and the names path+suffix for the suffixes in family; record is the
// suffix moved last. It completes or removes what an interrupted build left.
func Lock(path, record string, family []string) (*Output, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	o := &Output{dir: filepath.Dir(abs), name: filepath.Base(abs), record: record, family: family}
	if !slices.Contains(family, record) {
		o.family = append(slices.Clone(family), record)
	}
	lp := o.hidden(".lock")
	var f *os.File
	for {
		f, err = os.OpenFile(lp, os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o644)
		if err != nil {
			return nil, fmt.Errorf("lock %s: %w", abs, err)
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			holder, _ := os.ReadFile(lp)
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				who := "another process"
				if pid := strings.TrimSpace(string(holder)); pid != "" {
					who = "process " + pid
				}
				return nil, fmt.Errorf("%s: %w: %s holds %s; wait for it to finish or stop it", abs, ErrBusy, who, lp)
			}
			return nil, fmt.Errorf("lock %s: %w", lp, err)
		}
		// The holder removes the lock file before unlocking: a lock
		// taken on a file no longer at lp is no lock; open it again.
		var a, b unix.Stat_t
		if unix.Fstat(int(f.Fd()), &a) == nil && unix.Stat(lp, &b) == nil && a.Dev == b.Dev && a.Ino == b.Ino {
			break
		}
		f.Close()
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	o.lock = f
	if err := o.recover(); err != nil {
		o.Unlock()
		return nil, err
	}
	return o, nil
}

// Unlock removes the lock file and releases the lock (a process that
// opened the file before the removal finds, once it has the lock, that the
// file is no longer at its path, and starts again).
func (o *Output) Unlock() {
	if o.lock != nil {
		os.Remove(o.hidden(".lock"))
		o.lock.Close()
		o.lock = nil
	}
}

// Path is the output's (the image's) absolute path.
func (o *Output) Path() string { return filepath.Join(o.dir, o.name) }

func (o *Output) hidden(suffix string) string { return filepath.Join(o.dir, "."+o.name+suffix) }

func (o *Output) public(suffix string) string { return filepath.Join(o.dir, o.name+suffix) }

// Set is a set of outputs being prepared in a stage directory.
type Set struct {
	o        *Output
	stage    string
	suffixes []string
	done     bool
}

// Stage starts a new set in a fresh stage directory.
func (o *Output) Stage() (*Set, error) {
	step("create stage")
	d, err := os.MkdirTemp(o.dir, "."+o.name+".stage-")
	if err != nil {
		return nil, fmt.Errorf("output %s: %w", o.Path(), err)
	}
	return &Set{o: o, stage: d}, nil
}

func (s *Set) add(suffix string) (string, error) {
	if !slices.Contains(s.o.family, suffix) {
		return "", fmt.Errorf("publish %s: %q is not an output suffix", s.o.Path(), suffix)
	}
	if slices.Contains(s.suffixes, suffix) {
		return "", fmt.Errorf("publish %s: %q added twice", s.o.Path(), suffix)
	}
	s.suffixes = append(s.suffixes, suffix)
	return filepath.Join(s.stage, s.o.name+suffix), nil
}

// AddFile adds a finished temporary file as the output path+suffix; the
// file is synced and linked into the stage.
func (s *Set) AddFile(suffix string, f *atomicfile.File) error {
	p, err := s.add(suffix)
	if err != nil {
		return err
	}
	step("stage %s", s.o.name+suffix)
	return f.CommitTo(p)
}

// AddBytes adds data as the output path+suffix.
func (s *Set) AddBytes(suffix string, data []byte) error {
	p, err := s.add(suffix)
	if err != nil {
		return err
	}
	step("stage %s", s.o.name+suffix)
	return writeSynced(p, data)
}

// AddDir adds a directory of files (name → content, names without "/") as
// the output path+suffix.
func (s *Set) AddDir(suffix string, files map[string][]byte) error {
	p, err := s.add(suffix)
	if err != nil {
		return err
	}
	if err := os.Mkdir(p, 0o755); err != nil {
		return err
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if n == "" || n == "." || n == ".." || strings.ContainsRune(n, '/') {
			return fmt.Errorf("publish %s: bad file name %q", p, n)
		}
		step("stage %s/%s", s.o.name+suffix, n)
		if err := writeSynced(filepath.Join(p, n), files[n]); err != nil {
			return err
		}
	}
	step("sync %s", s.o.name+suffix)
	return atomicfile.SyncDir(p)
}

// Abort removes the stage (nothing was published). Safe after Publish.
func (s *Set) Abort() {
	if !s.done {
		s.done = true
		os.RemoveAll(s.stage)
	}
}

// setFile is the list of a staged set's suffixes, written into the stage so
// that a move interrupted by a kill can be completed.
const setFile = ".set.json"

type setList struct {
	Outputs []string `json:"outputs"`
	Record  string   `json:"record"`
}

// Publish moves the set into place as one unit. Its record (the Output's
// record suffix) must be in the set.
func (s *Set) Publish() error {
	if s.done {
		return errors.New("publish: set already finished")
	}
	o := s.o
	if !slices.Contains(s.suffixes, o.record) {
		return fmt.Errorf("publish %s: the set has no %s", o.Path(), o.record)
	}
	js, err := json.Marshal(setList{Outputs: s.suffixes, Record: o.record})
	if err != nil {
		return err
	}
	step("stage set list")
	if err := writeSynced(filepath.Join(s.stage, setFile), js); err != nil {
		return err
	}
	step("sync stage")
	if err := atomicfile.SyncDir(s.stage); err != nil {
		return err
	}
	pub := o.hidden(".publish")
	step("commit")
	if err := os.Rename(s.stage, pub); err != nil {
		return fmt.Errorf("publish %s: %w", o.Path(), err)
	}
	s.done = true
	step("sync commit")
	if err := atomicfile.SyncDir(o.dir); err != nil {
		return err
	}
	return o.move(pub)
}

// move puts the complete set in pub into place. It is idempotent: a move
// interrupted at any step is completed by running it again.
func (o *Output) move(pub string) error {
	js, err := os.ReadFile(filepath.Join(pub, setFile))
	if err != nil {
		return fmt.Errorf("publish %s: %w", o.Path(), err)
	}
	var sl setList
	if err := json.Unmarshal(js, &sl); err != nil || sl.Record != o.record {
		return fmt.Errorf("publish %s: %s: not a set of this output (%v)", o.Path(), pub, err)
	}
	for _, suf := range sl.Outputs {
		if !slices.Contains(o.family, suf) {
			return fmt.Errorf("publish %s: %s: unknown output suffix %q", o.Path(), pub, suf)
		}
	}
	newRec := filepath.Join(pub, o.name+o.record)
	if _, err := os.Lstat(newRec); err == nil {
		// Not yet moved: the previous record goes first, so that from
		// now on no record names a set that is half replaced.
		step("remove old record")
		if err := removeAll(o.public(o.record)); err != nil {
			return err
		}
		step("sync")
		if err := atomicfile.SyncDir(o.dir); err != nil {
			return err
		}
		for _, suf := range sl.Outputs {
			if suf == o.record {
				continue
			}
			src := filepath.Join(pub, o.name+suf)
			st, err := os.Lstat(src)
			if errors.Is(err, fs.ErrNotExist) {
				continue // moved before an interruption
			} else if err != nil {
				return err
			}
			dst := o.public(suf)
			if st.IsDir() {
				// A directory cannot be renamed over a non-empty
				// one: the old one moves into pub first.
				if _, err := os.Lstat(dst); err == nil {
					step("set aside %s", o.name+suf)
					if err := os.Rename(dst, filepath.Join(pub, ".old"+suf)); err != nil {
						return fmt.Errorf("publish %s: %w", o.Path(), err)
					}
				}
			}
			step("move %s", o.name+suf)
			if err := os.Rename(src, dst); err != nil {
				return fmt.Errorf("publish %s: %w", o.Path(), err)
			}
		}
		for _, suf := range o.family {
			if suf == o.record || slices.Contains(sl.Outputs, suf) {
				continue
			}
			if _, err := os.Lstat(o.public(suf)); err == nil {
				step("remove stale %s", o.name+suf)
				if err := removeAll(o.public(suf)); err != nil {
					return err
				}
			}
		}
		step("sync")
		if err := atomicfile.SyncDir(o.dir); err != nil {
			return err
		}
		step("move record")
		if err := os.Rename(newRec, o.public(o.record)); err != nil {
			return fmt.Errorf("publish %s: %w", o.Path(), err)
		}
		step("sync")
		if err := atomicfile.SyncDir(o.dir); err != nil {
			return err
		}
	}
	// The set is in place. The publish directory is renamed out of the way
	// before it is removed: a process killed while removing it must not
	// leave a .publish directory without its set list, which no later
	// build could complete (the next Lock removes the retired one with the
	// stages).
	step("retire publish directory")
	retired := o.hidden(".stage-published")
	if err := os.Rename(pub, retired); err != nil {
		return fmt.Errorf("publish %s: %w", o.Path(), err)
	}
	step("sync")
	if err := atomicfile.SyncDir(o.dir); err != nil {
		return err
	}
	step("remove publish directory")
	if err := removeAll(retired); err != nil {
		return err
	}
	step("sync")
	return atomicfile.SyncDir(o.dir)
}

// recover completes an interrupted move and removes stages and temporary
// files of killed builds. The caller holds the lock, so none of them belongs
// to a live build.
func (o *Output) recover() error {
	// Strays first: the move renames the publish directory to a stage name
	// (move), which a retired directory left by a killed build must not hold.
	stray, _ := filepath.Glob(filepath.Join(o.dir, "."+globEscape(o.name)+".stage-*"))
	for _, suf := range o.family {
		tmps, _ := filepath.Glob(atomicfile.TempPattern(filepath.Join(o.dir, globEscape(o.name+suf))))
		stray = append(stray, tmps...)
	}
	for _, p := range stray {
		if err := removeAll(p); err != nil {
			return err
		}
	}
	if len(stray) > 0 {
		if err := atomicfile.SyncDir(o.dir); err != nil {
			return err
		}
	}
	pub := o.hidden(".publish")
	if _, err := os.Lstat(pub); err == nil {
		if err := o.move(pub); err != nil {
			return fmt.Errorf("completing the interrupted publish: %w", err)
		}
	}
	return nil
}

// Interrupted returns an error wrapping ErrInterrupted if the publishing of a
// build of path was interrupted (its files are then no one build's set), and
// nil otherwise. Consumers of a build's outputs check it before trusting
// them together.
func Interrupted(path string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	pub := filepath.Join(filepath.Dir(abs), "."+filepath.Base(abs)+".publish")
	if _, err := os.Lstat(pub); err == nil {
		return fmt.Errorf("%s: %w (%s exists): build it again", abs, ErrInterrupted, pub)
	}
	return nil
}

func writeSynced(p string, data []byte) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", p, err)
	}
	return nil
}

func removeAll(p string) error {
	if err := os.RemoveAll(p); err != nil {
		return fmt.Errorf("remove %s: %w", p, err)
	}
	return nil
}

func globEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`)
	return r.Replace(s)
}
