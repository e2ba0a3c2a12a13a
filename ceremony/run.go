package ceremony

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"time"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/signer"
	"github.com/imaforge/imaforge/signer/keyref"
)

// ErrDeclined: the operator did not confirm the ceremony.
var ErrDeclined = errors.New("ceremony declined: nothing signed")

// RunOptions configure Run, a whole ceremony on the ceremony machine.
type RunOptions struct {
	Request     *Request
	RequestFile string // the request's path, for the audit record
	// Response is the response path (required). The journal
	// (JournalSuffix) and the lock (LockSuffix) sit beside it.
	Response string
	// Audit is the audit transcript (default Response + ".audit.jsonl").
	Audit string
	// Keys maps request key names to the reference that signs them
	// ("relic:NAME", an RFC 7512 "pkcs11:" URI or a key file), overriding
	// the reference in the request; without either a key is relic:NAME.
	Keys        map[string]string
	RelicConfig string
	// OpenRemote opens a signing service's key (remote:NAME, docs/service.md)
	// with the relic client configuration RelicConfig for the request key's
	// certificate; nil refuses remote keys. package service provides it
	// (service.OpenRemoteKey); ceremony does not import it (service verifies
	// values with this package).
	OpenRemote func(name, relicConfig string, cert *x509.Certificate) (RemoteSigner, error)
	// PIN is the PIN of every token (and a key file's passphrase);
	// TokenPIN, when not nil, chooses one per token (signer.OpenOptions).
	PIN      signer.Passphrase
	TokenPIN func(id signer.TokenIdentity, configured bool) signer.Passphrase
	// Sessions is how many token sessions sign in parallel (0: GOMAXPROCS).
	Sessions int
	Tool     string // names the program in the response and the audit
	// Confirm, when not nil, is asked once every key is open and checked
	// against the request's certificate, before anything is signed; false
	// declines the ceremony (ErrDeclined).
	Confirm func(keys []OpenedKey) (bool, error)
	// Progress, if not nil, is called after each signature (concurrently).
	Progress func(done, total int)
	Warn     func(msg string)
	Now      func() time.Time // default time.Now
}

// OpenedKey is a request key opened for a ceremony.
type OpenedKey struct {
	Name     string
	Ref      string
	Token    *signer.TokenIdentity // as configured; nil for a key file
	Reported *signer.TokenInfo     // as the PKCS#11 token reported itself
	Service  []string              // the servers of a remote key
}

// RemoteSigner is a signing service's key (service.RemoteKey). The service
// signs a digest only for a named image path, which it checks against the
// scope of the key's certificate.
type RemoteSigner interface {
	Cert() *x509.Certificate
	SignPath(h imasig.Hash, path string, digest []byte) ([]byte, error)
	// Servers lists the servers the key is signed by, for the audit.
	Servers() []string
	Close() error
}

// RunResult is a finished (or already answered) ceremony.
type RunResult struct {
	Response *Response
	// Answered: a response answering the request was already at the
	// response path; nothing was opened or signed.
	Answered bool
	// Resuming: an interrupted ceremony's journal was found and used.
	Resuming bool
	// Signed counts signatures made in this run, Resumed those taken from
	// the journal, per key.
	Signed, Resumed map[string]int
	Keys            []OpenedKey
	Audit           string // the transcript's path
	AuditHead       string // SHA-256 of the last record written
}

// Run runs a ceremony for opts.Request, failing closed at each step:
//
//  1. take the lock on the response (a second ceremony on the same
//     response is refused, naming the first: *LockedError);
//  2. return early when the response already answers the request;
//  3. open the audit transcript and check its chain (an unwritable or
//     broken transcript stops the ceremony before any key is opened);
//  4. open every key (reference precedence: opts.Keys, the request's ref,
//     relic:NAME) and check it is the key of the request's certificate;
//  5. ask opts.Confirm;
//  6. append a "started" record (operator, request digest, tokens and keys)
//     and only then sign (Sign, resuming from the journal), write the
//     response atomically, remove the journal, and append the end record.
//
// Every outcome after step 3 is audited: declined, failed (with the error),
// complete (with the response digest).
func Run(ctx context.Context, opts RunOptions) (res *RunResult, err error) {
	req := opts.Request
	if req == nil || opts.Response == "" {
		return nil, errors.New("ceremony: a request and a response path are required")
	}
	for name := range opts.Keys {
		if req.Key(name) == nil {
			return nil, fmt.Errorf("%w: key %s: the request has no key %q", ErrMismatch, name, name)
		}
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	sessions := opts.Sessions
	if sessions <= 0 {
		sessions = runtime.GOMAXPROCS(0)
	}

	lock, err := LockResponse(opts.Response, NewLockHolder(req.SHA256, now()))
	if err != nil {
		return nil, err
	}
	defer func() {
		if uerr := lock.Unlock(); uerr != nil && err == nil {
			err = uerr
		}
	}()

	res = &RunResult{Signed: map[string]int{}, Resumed: map[string]int{}}
	if prev, perr := ReadResponse(opts.Response); perr == nil && CheckResponse(req, prev) == nil {
		res.Response, res.Answered = prev, true
		return res, nil
	}
	journal := opts.Response + JournalSuffix
	if _, serr := os.Stat(journal); serr == nil {
		res.Resuming = true
	}

	res.Audit = opts.Audit
	if res.Audit == "" {
		res.Audit = opts.Response + ".audit.jsonl"
	}
	audit, err := OpenAudit(res.Audit)
	if err != nil {
		return nil, err
	}
	defer audit.Close()
	rec := NewAuditRecord(req, opts.RequestFile, now())
	rec.Tool, rec.ResponseFile, rec.Sessions = opts.Tool, opts.Response, sessions
	write := func(outcome string) error {
		t := now().UTC().Format(time.RFC3339)
		rec.Time, rec.Outcome, rec.End = t, outcome, ""
		if outcome != OutcomeStarted {
			rec.End = t
		}
		sum, aerr := audit.Append(rec)
		if aerr != nil {
			return fmt.Errorf("%w: %w", ErrAudit, aerr)
		}
		res.AuditHead = sum
		return nil
	}
	// failed audits err and returns it, with the transcript's own error.
	failed := func(err error) error {
		if aerr := write(OutcomeFailed + ": " + err.Error()); aerr != nil {
			return errors.Join(err, aerr)
		}
		return err
	}

	signers, remote, keys, closeKeys, err := openKeys(req, opts, sessions)
	defer closeKeys()
	if err != nil {
		return nil, failed(err)
	}
	res.Keys = keys
	for i, k := range keys {
		rec.Keys[i].Ref, rec.Keys[i].Token, rec.Keys[i].Reported, rec.Keys[i].Service = k.Ref, k.Token, k.Reported, k.Service
	}

	if opts.Confirm != nil {
		ok, cerr := opts.Confirm(keys)
		if cerr != nil || !ok {
			if aerr := write(OutcomeDeclined); aerr != nil {
				return nil, aerr
			}
			if cerr != nil {
				return nil, fmt.Errorf("%w: %w", ErrDeclined, cerr)
			}
			return nil, ErrDeclined
		}
	}

	// Nothing is signed unless the transcript says it started.
	if err := write(OutcomeStarted); err != nil {
		return nil, err
	}
	rec.Started = res.AuditHead

	so := SignOptions{
		Signers: signers, Remote: remote, Tokens: map[string]signer.TokenIdentity{},
		Journal: journal, Workers: sessions, Tool: opts.Tool, Progress: opts.Progress,
	}
	for _, k := range keys {
		if k.Token != nil {
			so.Tokens[k.Name] = *k.Token
		}
	}
	sr, err := Sign(ctx, req, so)
	if sr != nil {
		res.Signed, res.Resumed = sr.Signed, sr.Resumed
		for i, k := range req.Keys {
			rec.Keys[i].Signed, rec.Keys[i].Resumed = sr.Signed[k.Name], sr.Resumed[k.Name]
		}
	}
	if err != nil {
		return nil, failed(err)
	}
	if err := sr.Response.WriteFile(opts.Response); err != nil {
		return nil, failed(err)
	}
	if err := os.Remove(journal); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, failed(err)
	}
	res.Response = sr.Response
	rec.Response = sr.Response.SHA256
	if err := write(OutcomeComplete); err != nil {
		return nil, err
	}
	return res, nil
}

// KeyRef returns the reference that signs request key k: the override,
// else the request's ref, else relic:NAME.
func KeyRef(k *RequestKey, override string) string {
	switch {
	case override != "":
		return override
	case k.Ref != "":
		return k.Ref
	}
	return signer.RelicScheme + k.Name
}

// openKeys opens a signer for every request key, each checked against the
// request's certificate, or a RemoteSigner for a remote key (whose values
// are checked as they come). The returned function closes the token
// sessions and remote keys.
func openKeys(req *Request, opts RunOptions, sessions int) (map[string]*signer.Signer, map[string]RemoteSigner, []OpenedKey, func(), error) {
	var closers []func() error
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	signers := map[string]*signer.Signer{}
	remote := map[string]RemoteSigner{}
	var keys []OpenedKey
	for i := range req.Keys {
		k := &req.Keys[i]
		ref := KeyRef(k, opts.Keys[k.Name])
		if r, err := keyref.Parse(ref); err == nil && r.Scheme == keyref.Remote {
			rs, err := openRemote(k, r.Name, opts)
			if err != nil {
				return nil, nil, nil, closeAll, err
			}
			closers = append(closers, rs.Close)
			remote[k.Name] = rs
			keys = append(keys, OpenedKey{Name: k.Name, Ref: ref, Service: rs.Servers()})
			continue
		}
		priv, _, err := signer.OpenKey(ref, opts.RelicConfig, &signer.OpenOptions{
			PIN: opts.PIN, TokenPIN: opts.TokenPIN, Sessions: sessions, Warn: opts.Warn,
		})
		if err != nil {
			return nil, nil, nil, closeAll, fmt.Errorf("key %q: %w", k.Name, err)
		}
		ok := OpenedKey{Name: k.Name, Ref: ref}
		if tk, isToken := priv.(*signer.TokenKey); isToken {
			closers = append(closers, tk.Close)
			id := tk.Identity()
			ok.Token, ok.Reported = &id, tk.Reported()
		}
		s, err := signer.New(priv, k.Certificate())
		if err != nil {
			return nil, nil, nil, closeAll, fmt.Errorf("key %q: %s is not the key of the request's certificate (key id %s, %s): %w", k.Name, ref, k.KeyID, k.Subject, err)
		}
		signers[k.Name] = s
		keys = append(keys, ok)
	}
	return signers, remote, keys, closeAll, nil
}

// openRemote opens request key k as key name of a signing service. The
// service signs by path: every digest needs the paths of the request.
func openRemote(k *RequestKey, name string, opts RunOptions) (RemoteSigner, error) {
	switch {
	case opts.OpenRemote == nil:
		return nil, fmt.Errorf("key %q: remote:%s: this program cannot reach a signing service", k.Name, name)
	case opts.RelicConfig == "":
		return nil, fmt.Errorf("key %q: remote:%s needs the relic client configuration of the signing service (--relic-config, docs/service.md)", k.Name, name)
	}
	for _, d := range k.Digests {
		if len(k.Paths[d]) == 0 {
			return nil, fmt.Errorf("key %q: %w: remote:%s signs by image path, and the request names no path for digest %s", k.Name, ErrMismatch, name, d)
		}
	}
	rs, err := opts.OpenRemote(name, opts.RelicConfig, k.Certificate())
	if err != nil {
		return nil, fmt.Errorf("key %q: %w", k.Name, err)
	}
	return rs, nil
}
