package ceremony

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runOpts is a ceremony of testRequest signed with the key files of
// testdata (the request's keys), writing into a temporary directory.
func runOpts(t *testing.T, req *Request) RunOptions {
	t.Helper()
	dir := t.TempDir()
	return RunOptions{
		Request: req, RequestFile: "request.json", Response: filepath.Join(dir, "response.json"),
		Keys: map[string]string{
			"manufacturer": filepath.Join(keysDir, "rsa2048.key"),
			"tenant":       filepath.Join(keysDir, "rsa3072.key"),
		},
		Sessions: 2, Tool: "imaforge test",
		Now: func() time.Time { return testTime },
	}
}

// signedNothing checks that a refused ceremony left no response and never
// started signing (Sign creates the journal before its first signature).
func signedNothing(t *testing.T, o RunOptions) {
	t.Helper()
	for _, p := range []string{o.Response, o.Response + JournalSuffix, o.Response + LockSuffix} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s exists after a refused ceremony", p)
		}
	}
}

func readAudit(t *testing.T, path string) *AuditSummary {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := VerifyAudit(f, path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRunComplete(t *testing.T) {
	req, _, _ := testRequest(t, 5)
	o := runOpts(t, req)
	var asked []OpenedKey
	o.Confirm = func(keys []OpenedKey) (bool, error) { asked = keys; return true, nil }
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(asked) != 2 || asked[0].Ref != o.Keys["manufacturer"] || res.Signed["manufacturer"] != 5 || res.Signed["tenant"] != 5 {
		t.Errorf("confirmed %+v, result %+v", asked, res)
	}
	if err := CheckResponse(req, res.Response); err != nil {
		t.Fatal(err)
	}
	s := readAudit(t, o.Response+".audit.jsonl")
	if s.Records != 2 || s.Outcomes[OutcomeComplete] != 1 || len(s.Unfinished) != 0 || s.Head != res.AuditHead {
		t.Errorf("audit %+v, head %s", s, res.AuditHead)
	}
	// Again: already answered, nothing opened, nothing audited.
	res, err = Run(context.Background(), o)
	if err != nil || !res.Answered {
		t.Fatalf("second run %+v, %v", res, err)
	}
	if s := readAudit(t, o.Response+".audit.jsonl"); s.Records != 2 {
		t.Errorf("second run wrote %d records", s.Records)
	}
}

// TestRunAuditFailsClosed: an audit transcript that cannot be written, or
// whose chain is broken, stops the ceremony before any key is opened.
func TestRunAuditFailsClosed(t *testing.T) {
	req, _, _ := testRequest(t, 3)
	broken := filepath.Join(t.TempDir(), "broken.jsonl")
	if err := AppendAudit(broken, NewAuditRecord(req, "r", testTime)); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(broken)
	if err := os.WriteFile(broken, bytes.Replace(b, []byte(`"seq":1`), []byte(`"seq":7`), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct{ name, audit, want string }{
		{"a directory", t.TempDir(), "is a directory"},
		{"no such directory", filepath.Join(t.TempDir(), "no", "audit.jsonl"), "no such file or directory"},
		{"broken chain", broken, "seq 7, want 1"},
	}
	if os.Geteuid() != 0 { // root writes read-only files
		ro := filepath.Join(t.TempDir(), "ro.jsonl")
		if err := os.WriteFile(ro, nil, 0o400); err != nil {
			t.Fatal(err)
		}
		cases = append(cases, struct{ name, audit, want string }{"read-only", ro, "permission denied"})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := runOpts(t, req)
			o.Audit = c.audit
			o.Confirm = func([]OpenedKey) (bool, error) { t.Error("asked to confirm"); return true, nil }
			_, err := Run(context.Background(), o)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "audit transcript") {
				t.Errorf("err %v, want one with %q", err, c.want)
			}
			signedNothing(t, o)
		})
	}
}

// TestRunLocked: a second ceremony on the same response is refused and
// names the first; the first's lock is released when it ends.
func TestRunLocked(t *testing.T) {
	req, _, _ := testRequest(t, 3)
	o := runOpts(t, req)
	first, err := LockResponse(o.Response, NewLockHolder("abc", testTime))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Run(context.Background(), o)
	var le *LockedError
	if !errors.As(err, &le) || !errors.Is(err, ErrLocked) || le.Holder == nil || le.Holder.PID != os.Getpid() ||
		!strings.Contains(err.Error(), "since 2026-01-02T03:04:05Z") {
		t.Fatalf("second ceremony: %v", err)
	}
	if _, err := os.Stat(o.Response + JournalSuffix); err == nil {
		t.Error("the refused ceremony created a journal")
	}
	if err := first.Unlock(); err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), o); err != nil {
		t.Fatalf("after unlock: %v", err)
	}
	if _, err := os.Stat(o.Response + LockSuffix); err == nil {
		t.Error("lock file left behind")
	}
}

// TestRunDeclinedAndFailed: a declined ceremony and one whose key is not
// the certificate's are audited, and sign nothing.
func TestRunDeclinedAndFailed(t *testing.T) {
	req, _, _ := testRequest(t, 3)
	o := runOpts(t, req)
	o.Confirm = func([]OpenedKey) (bool, error) { return false, nil }
	if _, err := Run(context.Background(), o); !errors.Is(err, ErrDeclined) {
		t.Fatalf("declined: %v", err)
	}
	o.Confirm = nil
	o.Keys["tenant"] = o.Keys["manufacturer"]
	if _, err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "is not the key of the request's certificate") {
		t.Fatalf("wrong key: %v", err)
	}
	signedNothing(t, o)
	s := readAudit(t, o.Response+".audit.jsonl")
	if s.Records != 2 || s.Outcomes[OutcomeDeclined] != 1 || s.Outcomes[OutcomeFailed] != 1 {
		t.Errorf("audit %+v", s)
	}
}

// TestVerifyAudit: any change to a transcript but appending breaks it; a
// started record without an end is reported.
func TestVerifyAudit(t *testing.T) {
	req, _, _ := testRequest(t, 1)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	a, err := OpenAudit(path)
	if err != nil {
		t.Fatal(err)
	}
	var heads []string
	for _, o := range []string{OutcomeDeclined, OutcomeStarted, OutcomeComplete, OutcomeStarted} {
		rec := NewAuditRecord(req, "request.json", testTime)
		rec.Outcome = o
		if o == OutcomeComplete {
			rec.Started = heads[1]
		}
		h, err := a.Append(rec)
		if err != nil {
			t.Fatal(err)
		}
		heads = append(heads, h)
	}
	a.Close()
	good, _ := os.ReadFile(path)
	s, err := VerifyAudit(bytes.NewReader(good), "audit.jsonl")
	if err != nil || s.Records != 4 || s.Head != heads[3] || len(s.Unfinished) != 1 || s.Unfinished[0] != 4 || !s.Has(heads[0]) {
		t.Fatalf("%+v, %v", s, err)
	}
	lines := strings.SplitAfter(string(good), "\n")
	cases := map[string]string{
		"record altered":     strings.Replace(string(good), `"operator":"`, `"operator":"x`, 2),
		"record removed":     lines[0] + lines[2] + lines[3],
		"records swapped":    lines[1] + lines[0] + lines[2] + lines[3],
		"torn last record":   string(good[:len(good)-5]),
		"unknown field":      strings.Replace(string(good), `"seq":1,`, `"seq":1,"x":1,`, 1),
		"end names no start": lines[0] + lines[1] + strings.Replace(lines[2], `"started_sha256":"`+heads[1], `"started_sha256":"`+heads[0], 1),
	}
	for name, data := range cases {
		if _, err := VerifyAudit(strings.NewReader(data), "audit.jsonl"); err == nil || !strings.Contains(err.Error(), "audit.jsonl:") {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Truncation leaves a valid chain, which only an earlier head reveals.
	s, err = VerifyAudit(strings.NewReader(lines[0]+lines[1]), "audit.jsonl")
	if err != nil || s.Has(heads[3]) {
		t.Errorf("truncated: %+v, %v", s, err)
	}
}
