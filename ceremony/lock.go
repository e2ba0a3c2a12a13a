package ceremony

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"
)

// LockSuffix is appended to a response path to name the lock a running
// ceremony holds on it (and on its journal).
const LockSuffix = ".lock"

// ErrLocked: another ceremony holds the lock on the same response.
var ErrLocked = errors.New("another ceremony is signing this response")

// LockHolder is the content of a lock file: who holds it. It is written
// for the operator's benefit; the lock itself is the flock(2) on the file.
type LockHolder struct {
	PID      int    `json:"pid"`
	Host     string `json:"host"`
	Operator string `json:"operator"`
	Since    string `json:"since"` // RFC 3339, UTC
	Request  string `json:"request_sha256"`
}

func (h LockHolder) String() string {
	return fmt.Sprintf("pid %d on %s (operator %s, since %s, request %s)", h.PID, h.Host, h.Operator, h.Since, h.Request)
}

// LockedError says which ceremony holds a lock.
type LockedError struct {
	Path   string
	Holder *LockHolder // nil when the lock file could not be read
}

func (e *LockedError) Error() string {
	who := "another process (its lock file is unreadable)"
	if e.Holder != nil {
		who = e.Holder.String()
	}
	return fmt.Sprintf("%s: %v: held by %s", e.Path, ErrLocked, who)
}

func (e *LockedError) Unwrap() error { return ErrLocked }

// Lock is an exclusive lock on a response and its journal.
type Lock struct {
	path string
	f    *os.File
}

// LockResponse takes the exclusive lock of the ceremony writing response:
// the file response+LockSuffix, locked with flock(2) and holding holder.
// A lock held by another process (or another LockResponse in this one) is
// a *LockedError naming the holder. Any other failure to take the lock is
// an error too: a ceremony never runs unlocked.
func LockResponse(response string, holder LockHolder) (*Lock, error) {
	path := response + LockSuffix
	for range 10 {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			defer f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				le := &LockedError{Path: path}
				var h LockHolder
				if b, rerr := os.ReadFile(path); rerr == nil && json.Unmarshal(b, &h) == nil {
					le.Holder = &h
				}
				return nil, le
			}
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		// The holder before us may have removed the file between our open
		// and our flock: then we hold a lock on a file nobody else sees.
		fi, err1 := f.Stat()
		pi, err2 := os.Stat(path)
		if err1 != nil || err2 != nil || !os.SameFile(fi, pi) {
			f.Close()
			continue
		}
		b, _ := json.Marshal(holder)
		if err := f.Truncate(0); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if _, err := f.WriteAt(append(b, '\n'), 0); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		return &Lock{path: path, f: f}, nil
	}
	return nil, fmt.Errorf("lock %s: the lock file keeps being replaced", path)
}

// NewLockHolder describes this process for a lock on a ceremony of request.
func NewLockHolder(request string, now time.Time) LockHolder {
	host, _ := os.Hostname()
	return LockHolder{PID: os.Getpid(), Host: host, Operator: Operator(), Since: now.UTC().Format(time.RFC3339), Request: request}
}

// Unlock removes the lock file and releases the lock.
func (l *Lock) Unlock() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := os.Remove(l.path)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}
