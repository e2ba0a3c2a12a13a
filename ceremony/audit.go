package ceremony

import (
	"encoding/json"
	"fmt"
	"os"
	"os/user"
	"time"

	"github.com/imaforge/imaforge/signer"
)

// AuditRecord is one line of the audit transcript: who signed what, with
// which token, when, and how it ended.
type AuditRecord struct {
	Time         string      `json:"time"` // RFC 3339, UTC
	Operator     string      `json:"operator"`
	Host         string      `json:"host"`
	Tool         string      `json:"tool,omitempty"`
	Outcome      string      `json:"outcome"` // "complete", "declined", "failed: ..."
	RequestFile  string      `json:"request_file"`
	Request      string      `json:"request_sha256"`
	ResponseFile string      `json:"response_file,omitempty"`
	Response     string      `json:"response_sha256,omitempty"`
	Image        string      `json:"image"`
	Manifest     ManifestRef `json:"manifest"`
	Keys         []AuditKey  `json:"keys"`
}

// AuditKey is one key's part in a ceremony.
type AuditKey struct {
	Name       string                `json:"name"`
	KeyID      string                `json:"key_id"`
	CertSHA256 string                `json:"cert_sha256"`
	Subject    string                `json:"subject"`
	Token      *signer.TokenIdentity `json:"token,omitempty"`
	Digests    int                   `json:"digests"`
	Signed     int                   `json:"signed"`  // signatures made in this run
	Resumed    int                   `json:"resumed"` // taken from an earlier, interrupted run
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
		Time: now.UTC().Format(time.RFC3339), Operator: Operator(), Host: host,
		RequestFile: requestFile, Request: req.SHA256, Image: req.Image, Manifest: req.Manifest,
	}
	for _, k := range req.Keys {
		rec.Keys = append(rec.Keys, AuditKey{Name: k.Name, KeyID: k.KeyID, CertSHA256: k.CertSHA256, Subject: k.Subject, Digests: len(k.Digests)})
	}
	return rec
}

// AppendAudit appends rec as one JSON line to the file at path (created
// 0600 when absent) and syncs it.
func AppendAudit(path string, rec *AuditRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return f.Close()
}
