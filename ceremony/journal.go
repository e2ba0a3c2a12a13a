package ceremony

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
)

// JournalSuffix is appended to a response path to name its journal.
const JournalSuffix = ".journal"

type journalHeader struct {
	Format  string `json:"format"`
	Request string `json:"request_sha256"`
}

// JournalEntry is one signature made during a ceremony.
type JournalEntry struct {
	Key    string `json:"key"`
	Digest string `json:"digest"` // hex
	Value  string `json:"ima"`    // hex security.ima value
}

// Journal is the append-only record of a ceremony's signatures: written
// line by line as signatures are made, so that an interrupted ceremony
// loses none (see the package documentation).
type Journal struct {
	path string
	mu   sync.Mutex
	f    *os.File
	n    int // entries appended since the last sync
}

// OpenJournal opens the journal at path for the request with digest
// request, creating it when absent, and returns the entries it already
// holds. A journal of another request is an error (ErrMismatch); a last
// line cut short by a crash is dropped.
func OpenJournal(path, request string) (*Journal, []JournalEntry, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, fs.ErrNotExist) {
		f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, nil, err
		}
		j := &Journal{path: path, f: f}
		if err := j.writeLine(journalHeader{Format: JournalFormat, Request: request}); err != nil {
			f.Close()
			return nil, nil, err
		}
		return j, nil, j.sync()
	}
	if err != nil {
		return nil, nil, err
	}
	entries, good, err := readJournal(f, path, request)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	// Drop a torn tail and append after the last whole line.
	if err := f.Truncate(good); err != nil {
		f.Close()
		return nil, nil, err
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return nil, nil, err
	}
	return &Journal{path: path, f: f}, entries, nil
}

func readJournal(r io.Reader, path, request string) (entries []JournalEntry, good int64, err error) {
	br := bufio.NewReader(r)
	for line := 1; ; line++ {
		b, rerr := br.ReadBytes('\n')
		if rerr == io.EOF {
			// An unterminated last line is a write cut short: dropped.
			if line == 1 {
				return nil, 0, &FileError{Path: path, Err: formatErr("empty journal")}
			}
			return entries, good, nil
		}
		if rerr != nil {
			return nil, 0, &FileError{Path: path, Line: line, Err: rerr}
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.DisallowUnknownFields()
		if line == 1 {
			var h journalHeader
			if err := dec.Decode(&h); err != nil || h.Format != JournalFormat {
				return nil, 0, &FileError{Path: path, Line: line, Err: formatErr("not a %s header", JournalFormat)}
			}
			if h.Request != request {
				return nil, 0, &FileError{Path: path, Line: line, Err: fmt.Errorf("%w: journal of request %s, this is request %s (move the journal away to start over)", ErrMismatch, h.Request, request)}
			}
		} else {
			var e JournalEntry
			if err := dec.Decode(&e); err != nil {
				return nil, 0, &FileError{Path: path, Line: line, Err: formatCause("", err)}
			}
			entries = append(entries, e)
		}
		good += int64(len(b))
	}
}

func (j *Journal) writeLine(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	// One write(2) per line: a killed process leaves whole lines in the
	// page cache; only a crash of the machine can tear the last one.
	if _, err := j.f.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("%s: %w", j.path, err)
	}
	return nil
}

// Append records one signature. Entries are synced to disk every 64
// appends and on Close.
func (j *Journal) Append(e JournalEntry) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if err := j.writeLine(e); err != nil {
		return err
	}
	j.n++
	if j.n >= 64 {
		return j.sync()
	}
	return nil
}

func (j *Journal) sync() error {
	j.n = 0
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("%s: %w", j.path, err)
	}
	return nil
}

// Close syncs and closes the journal, which stays on disk.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return nil
	}
	err := j.sync()
	if cerr := j.f.Close(); err == nil {
		err = cerr
	}
	j.f = nil
	return err
}

// Remove closes and deletes the journal (once the response is written).
func (j *Journal) Remove() error {
	if err := j.Close(); err != nil {
		return err
	}
	return os.Remove(j.path)
}
