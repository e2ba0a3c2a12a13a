package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"

	"github.com/rs/zerolog/log"
	"github.com/sassoftware/relic/v8/cmdline/shared"
	"github.com/sassoftware/relic/v8/config"
	"github.com/sassoftware/relic/v8/lib/audit"
	"github.com/sassoftware/relic/v8/lib/x509tools"
)

// ProblemAuditFailed is the problem type of a refusal that could not be
// audited: the server answers 500 instead (a client tries another server),
// never the signature.
const ProblemAuditFailed = ProblemBase + "audit-failed"

// publishAudit records info where relic records its signatures: the AMQP
// exchange and the audit file of the configuration (relic's
// signinit.PublishAudit does the same for a signature).
func publishAudit(info *audit.Info) error {
	c := shared.CurrentConfig
	if c == nil {
		return nil
	}
	if c.Amqp != nil && c.Amqp.URL != "" {
		if err := info.Publish(c.Amqp); err != nil {
			return fmt.Errorf("publish audit record: %w", err)
		}
	}
	if c.AuditFile != "" {
		if err := info.AppendTo(c.AuditFile); err != nil {
			return fmt.Errorf("write audit record: %w", err)
		}
	}
	return nil
}

type auditedKey struct{}

// markAudited tells auditRefusals that the request's refusal is already
// audited (by the ima module, which knows the request digest).
func markAudited(ctx context.Context) {
	if b, ok := ctx.Value(auditedKey{}).(*atomic.Bool); ok {
		b.Store(true)
	}
}

// auditRefusals wraps relic's handler: a 4xx answer that the ima module
// did not audit itself (relic's own refusals: no client certificate, an
// unknown one, a role that does not allow the key, an unknown key or
// signature type) is held back until its audit record is written, with the
// client's certificate fingerprint and subject, the key, the status and
// relic's problem type. If the record cannot be written the answer is a
// 500 (ProblemAuditFailed) instead: a refusal is never silent.
func auditRefusals(cfg *config.Config, next http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, req *http.Request) {
		var audited atomic.Bool
		req = req.WithContext(context.WithValue(req.Context(), auditedKey{}, &audited))
		w := &refusalWriter{ResponseWriter: rw}
		next.ServeHTTP(w, req)
		if !w.held {
			return
		}
		if !audited.Load() {
			if err := publishAudit(refusalRecord(cfg, req, w.status, w.body.Bytes())); err != nil {
				log.Error().Err(err).Int("status", w.status).Str("url", req.URL.String()).Msg("refusal not audited: answering 500")
				rw.Header().Set("Content-Type", "application/problem+json")
				rw.Header().Del("Content-Length")
				rw.WriteHeader(http.StatusInternalServerError)
				blob, _ := json.Marshal(&Refusal{Status: http.StatusInternalServerError, Type: ProblemAuditFailed, Detail: "the refusal could not be audited"})
				_, _ = rw.Write(blob)
				return
			}
		}
		rw.WriteHeader(w.status)
		_, _ = rw.Write(w.body.Bytes())
	})
}

// refusalRecord is the audit record of a refusal by relic: relic's record
// fields (sig.*, client.*) and ima.refused with relic's problem type.
func refusalRecord(cfg *config.Config, req *http.Request, status int, body []byte) *audit.Info {
	q := req.URL.Query()
	info := audit.New(q.Get("key"), q.Get("sigtype"), 0)
	a := info.Attributes
	var p struct{ Type, Detail, Title string }
	_ = json.Unmarshal(body, &p)
	if p.Type == "" {
		p.Type = http.StatusText(status)
	}
	a["ima.refused"] = p.Type
	if p.Detail != "" {
		a["ima.detail"] = p.Detail
	}
	a["http.status"] = status
	a["http.request"] = req.Method + " " + req.URL.Path
	a["client.ip"] = req.RemoteAddr
	if host, _, err := net.SplitHostPort(req.RemoteAddr); err == nil {
		a["client.ip"] = host // as relic records it
	}
	if f := q.Get("filename"); f != "" {
		a["client.filename"] = f
	}
	if req.TLS != nil && len(req.TLS.PeerCertificates) > 0 {
		c := req.TLS.PeerCertificates[0]
		fp := clientFingerprint(c.RawSubjectPublicKeyInfo)
		a["client.fingerprint"] = fp
		a["client.subject"] = x509tools.FormatPkixName(c.RawSubject, x509tools.NameStyleOpenSsl)
		if cc := cfg.Clients[fp]; cc != nil && cc.Nickname != "" {
			a["client.name"] = cc.Nickname
		}
	} else {
		a["client.certificate"] = "none"
	}
	return info
}

// refusalWriter holds back a 4xx answer (status, body) for auditRefusals;
// any other answer goes through as it is written.
type refusalWriter struct {
	http.ResponseWriter
	status int
	held   bool
	wrote  bool
	body   bytes.Buffer
}

func (w *refusalWriter) WriteHeader(code int) {
	if w.wrote || w.held {
		return
	}
	if code >= 400 && code < 500 {
		w.status, w.held = code, true
		return
	}
	w.wrote = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *refusalWriter) Write(b []byte) (int, error) {
	if !w.wrote && !w.held {
		w.WriteHeader(http.StatusOK)
	}
	if w.held {
		return w.body.Write(b)
	}
	return w.ResponseWriter.Write(b)
}

// Flush flushes an answer that is not held back.
func (w *refusalWriter) Flush() {
	if w.held {
		return
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap gives http.ResponseController the connection's writer.
func (w *refusalWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
