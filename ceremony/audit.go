package ceremony

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"slices"
	"syscall"
	"time"

	"github.com/imaforge/imaforge/signer"
)

// Outcomes of audit records. A ceremony writes OutcomeStarted before its
// keys sign anything and one end record (complete, declined or failed)
// naming it; a started record with no end record is a ceremony that was
// killed.
const (
	OutcomeStarted  = "started"
	OutcomeComplete = "complete"
	OutcomeDeclined = "declined"
	OutcomeFailed   = "failed" // the record's Outcome is "failed: <error>"
)

// AuditRecord is one line of the audit transcript: who signed what, with
// which token, when, and how it ended. Records are hash-chained: Prev is
// the SHA-256 of the previous line, so altering, inserting or removing a
// record other than the last breaks the chain (VerifyAudit).
type AuditRecord struct {
	Seq  int    `json:"seq"`         // 1 for the first line of the file
	Prev string `json:"prev_sha256"` // SHA-256 (hex) of the previous line without its newline; "" on line 1
	// Time is when the record was written, Start when the ceremony began
	// and End when it ended (end records), RFC 3339, UTC.
	Time  string `json:"time"`
	Start string `json:"start,omitempty"`
	End   string `json:"end,omitempty"`
	// Outcome: "started", "complete", "declined", "failed: <error>".
	Outcome string `json:"outcome"`
	// Started is, on an end record, the SHA-256 of the ceremony's started
	// record (absent when it ended before signing began).
	Started      string      `json:"started_sha256,omitempty"`
	Operator     string      `json:"operator"`
	Host         string      `json:"host"`
	PID          int         `json:"pid,omitempty"`
	Tool         string      `json:"tool,omitempty"`
	RequestFile  string      `json:"request_file"`
	Request      string      `json:"request_sha256"`
	ResponseFile string      `json:"response_file,omitempty"`
	Response     string      `json:"response_sha256,omitempty"`
	Image        string      `json:"image"`
	Manifest     ManifestRef `json:"manifest"`
	Sessions     int         `json:"sessions,omitempty"` // token sessions signing in parallel
	Keys         []AuditKey  `json:"keys"`
}

// AuditKey is one key's part in a ceremony.
type AuditKey struct {
	Name       string `json:"name"`
	KeyID      string `json:"key_id"`
	CertSHA256 string `json:"cert_sha256"`
	Subject    string `json:"subject"`
	Ref        string `json:"ref,omitempty"` // the key reference used
	// Token is the token as configured; Reported is what the token itself
	// reported when opened (its serial number, label, maker and model).
	Token    *signer.TokenIdentity `json:"token,omitempty"`
	Reported *signer.TokenInfo     `json:"reported,omitempty"`
	// Service lists the servers of a signing service's key (remote:NAME).
	Service []string `json:"service,omitempty"`
	Digests int      `json:"digests"`
	Signed  int      `json:"signed"`  // signatures made in this run
	Resumed int      `json:"resumed"` // taken from an earlier, interrupted run
}

// Operator names the person running the ceremony: the login user, and the
// user who ran sudo when there is one.
func Operator() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	if s := os.Getenv("SUDO_USER"); s != "" && s != name {
		name += " (sudo by " + s + ")"
	}
	return name
}

// NewAuditRecord starts a record for req with the time, operator and host
// filled in.
func NewAuditRecord(req *Request, requestFile string, now time.Time) *AuditRecord {
	host, _ := os.Hostname()
	rec := &AuditRecord{
		Time: now.UTC().Format(time.RFC3339), Start: now.UTC().Format(time.RFC3339), Operator: Operator(), Host: host, PID: os.Getpid(),
		RequestFile: requestFile, Request: req.SHA256, Image: req.Image, Manifest: req.Manifest,
	}
	for _, k := range req.Keys {
		rec.Keys = append(rec.Keys, AuditKey{Name: k.Name, KeyID: k.KeyID, CertSHA256: k.CertSHA256, Subject: k.Subject, Digests: len(k.Digests)})
	}
	return rec
}

// Audit is an audit transcript opened for appending.
type Audit struct {
	path string
	f    *os.File
}

// OpenAudit opens (creating it 0600 when absent) the audit transcript at
// path for appending and checks the records it holds (VerifyAudit). A
// transcript that cannot be opened for writing, or whose chain is broken,
// is an error: a ceremony must not sign unless it can be audited.
func OpenAudit(path string) (*Audit, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit transcript: %w", err)
	}
	a := &Audit{path: path, f: f}
	if err := a.locked(func(*AuditSummary) error { return nil }); err != nil {
		f.Close()
		return nil, err
	}
	return a, nil
}

// locked runs fn with the transcript flock(2)ed and verified.
func (a *Audit) locked(fn func(*AuditSummary) error) error {
	if err := syscall.Flock(int(a.f.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("audit transcript %s: lock: %w", a.path, err)
	}
	defer syscall.Flock(int(a.f.Fd()), syscall.LOCK_UN)
	if _, err := a.f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("audit transcript %s: %w", a.path, err)
	}
	sum, err := VerifyAudit(a.f, a.path)
	if err != nil {
		return fmt.Errorf("audit transcript: %w (check it with `imaforge ceremony audit verify`; a new ceremony needs an intact transcript or a new file)", err)
	}
	return fn(sum)
}

// Append sets rec's Seq and Prev to follow the transcript's last record,
// writes rec as one line and syncs it. It returns the SHA-256 of the line
// written (what an end record's Started names).
func (a *Audit) Append(rec *AuditRecord) (string, error) {
	var sum string
	err := a.locked(func(s *AuditSummary) error {
		rec.Seq, rec.Prev = s.Records+1, s.Head
		b, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		if _, err := a.f.Write(append(b, '\n')); err != nil {
			return fmt.Errorf("audit transcript %s: %w", a.path, err)
		}
		if err := a.f.Sync(); err != nil {
			return fmt.Errorf("audit transcript %s: %w", a.path, err)
		}
		sum = lineSum(b)
		return nil
	})
	return sum, err
}

// Path returns the transcript's path.
func (a *Audit) Path() string { return a.path }

// Close closes the transcript.
func (a *Audit) Close() error { return a.f.Close() }

// AppendAudit appends rec to the transcript at path (OpenAudit, Append).
func AppendAudit(path string, rec *AuditRecord) error {
	a, err := OpenAudit(path)
	if err != nil {
		return err
	}
	_, err = a.Append(rec)
	if cerr := a.Close(); err == nil {
		err = cerr
	}
	return err
}

func lineSum(line []byte) string {
	d := sha256.Sum256(line)
	return hex.EncodeToString(d[:])
}

// AuditSummary is what VerifyAudit found.
type AuditSummary struct {
	Records int
	// Head is the SHA-256 of the last record (""when there is none): write
	// it down, since removing the last records of a transcript leaves a
	// valid, shorter chain that only an earlier head reveals.
	Head string
	// Unfinished lists the line numbers of started records no end record
	// names: ceremonies killed while signing.
	Unfinished []int
	// Outcomes counts end records by outcome ("failed: ..." as "failed").
	Outcomes map[string]int

	sums map[string]bool
}

// Has reports whether a record with SHA-256 sum (a head written down
// earlier) is in the transcript: if not, records were removed.
func (s *AuditSummary) Has(sum string) bool { return s.sums[sum] }

// VerifyAudit reads an audit transcript and checks every record: one JSON
// object per newline-terminated line with no unknown field, Seq counting
// from 1, Prev the SHA-256 of the previous line, and each end record's
// Started naming an earlier started record. name labels errors (with the
// line). A started record with no end record is reported in Unfinished,
// not as an error.
func VerifyAudit(r io.Reader, name string) (*AuditSummary, error) {
	s := &AuditSummary{Outcomes: map[string]int{}, sums: map[string]bool{}}
	started := map[string]int{} // line sum -> line
	ended := map[string]bool{}
	br := bufio.NewReader(r)
	for n := 1; ; n++ {
		b, err := br.ReadBytes('\n')
		if err == io.EOF {
			if len(b) > 0 {
				return nil, &FileError{Path: name, Line: n, Err: formatErr("last record is not newline-terminated (a torn or altered write)")}
			}
			break
		}
		if err != nil {
			return nil, &FileError{Path: name, Line: n, Err: err}
		}
		line := b[:len(b)-1]
		ferr := func(format string, args ...any) error {
			return &FileError{Path: name, Line: n, Err: formatErr(format, args...)}
		}
		var rec AuditRecord
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rec); err != nil {
			return nil, &FileError{Path: name, Line: n, Err: formatCause("", err)}
		}
		if dec.More() {
			return nil, ferr("data after the record")
		}
		if rec.Seq != n {
			return nil, ferr("seq %d, want %d (a record was removed or inserted)", rec.Seq, n)
		}
		if rec.Prev != s.Head {
			return nil, ferr("prev_sha256 %q is not the SHA-256 of line %d (%s): a record was altered", rec.Prev, n-1, s.Head)
		}
		sum := lineSum(line)
		switch {
		case rec.Outcome == OutcomeStarted:
			started[sum] = n
		case rec.Outcome == OutcomeComplete || rec.Outcome == OutcomeDeclined ||
			len(rec.Outcome) > len(OutcomeFailed) && rec.Outcome[:len(OutcomeFailed)+1] == OutcomeFailed+":":
			if rec.Started != "" {
				if _, ok := started[rec.Started]; !ok || ended[rec.Started] {
					return nil, ferr("started_sha256 %s names no earlier unfinished started record", rec.Started)
				}
				ended[rec.Started] = true
			}
			o := rec.Outcome
			if o != OutcomeComplete && o != OutcomeDeclined {
				o = OutcomeFailed
			}
			s.Outcomes[o]++
		default:
			return nil, ferr("unknown outcome %q", rec.Outcome)
		}
		s.Records, s.Head = n, sum
		s.sums[sum] = true
	}
	for sum, n := range started {
		if !ended[sum] {
			s.Unfinished = append(s.Unfinished, n)
		}
	}
	slices.Sort(s.Unfinished)
	return s, nil
}

// ErrAudit matches errors writing the audit transcript.
var ErrAudit = errors.New("audit transcript not written")
