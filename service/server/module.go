package server

import (
	"bufio"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"

	"github.com/rs/zerolog/hlog"
	"github.com/sassoftware/relic/v8/lib/audit"
	"github.com/sassoftware/relic/v8/lib/certloader"
	"github.com/sassoftware/relic/v8/signers"

	"github.com/imaforge/imaforge/internal/parallel"
	"github.com/imaforge/imaforge/pki"
	"github.com/imaforge/imaforge/service"
	"github.com/imaforge/imaforge/signer"
)

// ProblemBase prefixes the type of every problem document the module
// answers (RFC 7807).
const ProblemBase = "https://imaforge.dev/problems/"

// Refusal is a request the module refused: nothing of its batch was
// signed. It is the relic handler's answer (relic serves an error that is
// an http.Handler as it is): a problem document with Status.
type Refusal struct {
	Status int    `json:"status"`
	Type   string `json:"type"`
	Detail string `json:"detail"`
}

func (r *Refusal) Error() string {
	return fmt.Sprintf("HTTP %d %s: %s", r.Status, r.Type, r.Detail)
}

// ServeHTTP writes the refusal and logs it in the server log.
func (r *Refusal) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	hlog.FromRequest(req).Warn().Str("problem", r.Type).Str("detail", r.Detail).
		Str("key", req.URL.Query().Get("key")).Msg("ima signing request refused")
	blob, _ := json.Marshal(r)
	rw.Header().Set("Content-Type", "application/problem+json")
	rw.WriteHeader(r.Status)
	_, _ = rw.Write(blob)
}

// The problem types of Refusal.
const (
	ProblemBadRequest = ProblemBase + "bad-request"
	ProblemOutOfScope = ProblemBase + "out-of-scope"
	ProblemNoScope    = ProblemBase + "unreadable-scope"
	ProblemSign       = ProblemBase + "sign-failed"
)

func init() {
	s := &signers.Signer{
		Name:      service.SigType,
		CertTypes: signers.CertTypeX509,
		Sign:      signRequest,
	}
	s.Flags().String(service.FormatParam, service.FormatJSON, "request format: json (one object) or ndjson (a stream of entries)")
	signers.Register(s)
}

// signRequest is the module's Sign: body is the request, cert the key's
// (its private key and the certificate chain of the relic key
// configuration). A JSON request is answered whole, as relic's modules
// answer; a streamed one (FormatNDJSON) as it is signed (streamAnswer),
// once its audit record is written.
func signRequest(body io.Reader, cert *certloader.Certificate, opts signers.SignOpts) ([]byte, error) {
	var parse func() ([]service.Item, string, error)
	format := opts.Flags.GetString(service.FormatParam)
	switch format {
	case service.FormatJSON:
		raw, err := io.ReadAll(io.LimitReader(body, service.MaxBody+1))
		if err != nil {
			return nil, fmt.Errorf("read request: %w", err)
		}
		parse = func() ([]service.Item, string, error) {
			items, err := service.ParseRequest(raw)
			return items, service.RequestDigest(raw), err
		}
	case service.FormatNDJSON:
		parse = func() ([]service.Item, string, error) { return service.ReadStream(body) }
	default:
		parse = func() ([]service.Item, string, error) {
			return nil, "", fmt.Errorf("%w: unknown %s %q (json, ndjson)", service.ErrBadRequest, service.FormatParam, format)
		}
	}
	// refuse audits the refusal of the request with digest (nothing of it
	// signed) and returns it.
	refuse := func(ref *Refusal, digest string) ([]byte, error) {
		opts.Audit.Attributes["ima.refused"] = ref.Type
		opts.Audit.Attributes["ima.detail"] = ref.Detail
		opts.Audit.Attributes["ima.request_digest"] = digest
		if err := publishAudit(opts.Audit); err != nil {
			return nil, err
		}
		markAudited(opts.Context())
		return nil, ref
	}
	p, digest, ref := prepare(parse, cert.KeyName, cert.Signer(), cert.Certificates, func() (*signer.Signer, error) { return signerFor(cert) })
	if ref != nil {
		return refuse(ref, digest)
	}
	if format == service.FormatJSON {
		resp, ref := p.signAll()
		if ref != nil {
			return refuse(ref, p.digest)
		}
		p.resp = &resp
	}
	paths := make([]string, len(p.items))
	for i, it := range p.items {
		paths[i] = it.Path
	}
	opts.Audit.Attributes["ima.request_digest"] = p.digest
	opts.Audit.Attributes["ima.count"] = len(paths)
	opts.Audit.Attributes["ima.paths"] = paths
	if format == service.FormatNDJSON {
		opts.Audit.SetMimeType("application/x-ndjson")
		// The record first: no value leaves before it is written, and
		// relic does not write it again (it publishes only after a Sign
		// that returns no error).
		if err := publishAudit(opts.Audit); err != nil {
			return nil, err
		}
		return nil, &streamAnswer{p: p, key: cert.KeyName, info: opts.Audit}
	}
	opts.Audit.SetMimeType("application/json")
	return json.Marshal(p.resp)
}

// streamChunk is how many entries of a streamed request are signed (on
// every core) before their values are written.
const streamChunk = 256

// streamAnswer answers a streamed request whose audit record is written:
// relic's handler serves an error that is an http.Handler as it is (its
// server/response.go handleFunc: the module's Sign returns it, relic writes
// no record and no blob of its own), and this one signs the entries a
// chunk at a time and writes each chunk's values as soon as they are made,
// then the last line naming the request digest and the count. The server
// holds the checked request and one chunk of values, never the whole
// answer. A signature failure cuts the answer before its last line, which
// the client refuses whole (service.ReadStreamResponse) and sends again;
// the failure is logged and audited (ima.failed).
type streamAnswer struct {
	p    *prepared
	key  string
	info *audit.Info
}

func (a *streamAnswer) Error() string { return "ima: streamed answer of key " + a.key }

func (a *streamAnswer) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	rw.Header().Set("Content-Type", "application/x-ndjson")
	rw.WriteHeader(http.StatusOK)
	flush := func() {}
	if f, ok := rw.(http.Flusher); ok {
		flush = f.Flush
	}
	err := writeStream(rw, flush, a.p, func(items []service.Item) ([][]byte, error) { return signItems(a.p.s, items) })
	l := hlog.FromRequest(req)
	if err == nil {
		l.Info().Str("key", a.key).Str("filename", req.URL.Query().Get("filename")).Int("count", len(a.p.items)).Msg("signed ima stream")
		return
	}
	l.Error().Err(err).Str("key", a.key).Str("request_digest", a.p.digest).Msg("ima stream cut: signing failed")
	// the failure's own record: the request digest, no count
	delete(a.info.Attributes, "ima.count")
	delete(a.info.Attributes, "ima.paths")
	a.info.Attributes["ima.failed"] = err.Error()
	if aerr := publishAudit(a.info); aerr != nil {
		l.Error().Err(aerr).Str("request_digest", a.p.digest).Msg("ima stream failure not audited")
	}
}

// writeStream writes the answer to the streamed request p: sign makes the
// values of a chunk of entries, which are written and flushed before the
// next chunk is signed, then the last line. On an error it stops before
// the last line (a cut answer) and returns the error.
func writeStream(w io.Writer, flush func(), p *prepared, sign func([]service.Item) ([][]byte, error)) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	var line []byte
	for start := 0; start < len(p.items); start += streamChunk {
		end := min(start+streamChunk, len(p.items))
		vals, err := sign(p.items[start:end])
		if err != nil {
			return fmt.Errorf("entries %d-%d: %w", start, end-1, err)
		}
		for _, v := range vals {
			line = service.AppendValueLine(line[:0], v)
			if _, err := bw.Write(line); err != nil {
				return err
			}
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		flush()
	}
	if err := enc.Encode(service.StreamLine{RequestDigest: p.digest, Key: p.key, Count: len(p.items)}); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	flush()
	return nil
}

type signed struct {
	service.Response
	items []service.Item
}

// Sign checks and signs one request body with key, whose certificate chain
// (leaf first) is chain. A refused request signs nothing and returns the
// Refusal; so does a signature failure (the batch is answered whole or not
// at all).
func Sign(body []byte, keyName string, key crypto.Signer, chain []*x509.Certificate) (*signed, *Refusal) {
	parse := func() ([]service.Item, string, error) {
		items, err := service.ParseRequest(body)
		return items, service.RequestDigest(body), err
	}
	p, _, ref := prepare(parse, keyName, key, chain, func() (*signer.Signer, error) { return signer.New(key, chain[0]) })
	if ref != nil {
		return nil, ref
	}
	resp, ref := p.signAll()
	if ref != nil {
		return nil, ref
	}
	return &signed{Response: resp, items: p.items}, nil
}

// prepared is a request read and checked whole, every path within the
// key's scope, with the signer of its key: nothing is signed yet.
type prepared struct {
	digest string
	key    string
	items  []service.Item
	s      *signer.Signer
	resp   *service.Response // a JSON request's answer, once signed
}

// prepare reads the request that parse reads (a JSON batch or a stream,
// every entry read and checked before anything is signed), checks its
// paths against the scope of every certificate of chain and makes the
// signer that newSigner makes (signRequest's signs with libcrypto for a
// file token's RSA key). It returns the request digest also with a
// refusal.
func prepare(parse func() ([]service.Item, string, error), keyName string, key crypto.Signer, chain []*x509.Certificate, newSigner func() (*signer.Signer, error)) (*prepared, string, *Refusal) {
	items, digest, err := parse()
	if err != nil {
		return nil, digest, &Refusal{Status: http.StatusBadRequest, Type: ProblemBadRequest, Detail: err.Error()}
	}
	if len(chain) == 0 || key == nil {
		return nil, digest, &Refusal{Status: http.StatusInternalServerError, Type: ProblemNoScope, Detail: "key " + keyName + " has no certificate"}
	}
	if ref := checkScope(items, chain); ref != nil {
		return nil, digest, ref
	}
	s, err := newSigner()
	if err != nil {
		return nil, digest, &Refusal{Status: http.StatusInternalServerError, Type: ProblemSign, Detail: err.Error()}
	}
	return &prepared{digest: digest, key: keyName, items: items, s: s}, digest, nil
}

// signAll signs every entry of p: the Response, or a Refusal if any
// signature fails (the batch is answered whole or not at all).
func (p *prepared) signAll() (service.Response, *Refusal) {
	vals, err := signItems(p.s, p.items)
	if err != nil {
		return service.Response{}, &Refusal{Status: http.StatusInternalServerError, Type: ProblemSign, Detail: err.Error()}
	}
	return service.Response{RequestDigest: p.digest, Key: p.key, Values: vals}, nil
}

// signItems signs items on up to GOMAXPROCS goroutines, so that one
// client's batch uses every core (and every session of a token worker). It
// signs runs of items with the same hash algorithm through
// signer.SignDigests, up to signer.BatchSize at a time, as a build with a
// local key does: an RSA key signed with libcrypto pays one hand-off to its
// signing thread per run instead of one per signature. The first failure
// stops it: the batch is answered whole or not at all.
func signItems(s *signer.Signer, items []service.Item) ([][]byte, error) {
	vals := make([][]byte, len(items))
	workers := runtime.GOMAXPROCS(0)
	runs := sameHashRuns(items, min(signer.BatchSize, (len(items)+workers-1)/workers))
	err := parallel.ForEach(context.Background(), len(runs), workers, func(_ context.Context, r int) error {
		start, end := runs[r][0], runs[r][1]
		digests := make([][]byte, end-start)
		for i := range digests {
			digests[i] = items[start+i].Digest
		}
		vs, err := s.SignDigests(items[start].Hash, digests)
		if err != nil {
			return fmt.Errorf("entries %d-%d: %w", start, end-1, err)
		}
		copy(vals[start:end], vs)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return vals, nil
}

// sameHashRuns splits items into runs [start, end) of at most size (at
// least 1) items that share one hash algorithm, in order.
func sameHashRuns(items []service.Item, size int) [][2]int {
	size = max(size, 1)
	var runs [][2]int
	for start := 0; start < len(items); {
		end := start + 1
		for end < len(items) && end-start < size && items[end].Hash == items[start].Hash {
			end++
		}
		runs = append(runs, [2]int{start, end})
		start = end
	}
	return runs
}

// checkScope refuses the batch if a path is outside the scope of any
// certificate of the chain; an unreadable scope refuses it too.
func checkScope(items []service.Item, chain []*x509.Certificate) *Refusal {
	for _, c := range chain {
		s, err := pki.ParseScope(c)
		if err != nil {
			return &Refusal{Status: http.StatusInternalServerError, Type: ProblemNoScope, Detail: err.Error()}
		}
		for i, it := range items {
			if !s.Allows(it.Path) {
				return &Refusal{Status: http.StatusForbidden, Type: ProblemOutOfScope,
					Detail: fmt.Sprintf("entry %d: %s is outside the scope %s of %q: %v", i, it.Path, s, c.Subject.String(), pki.ErrOutOfScope)}
			}
		}
	}
	return nil
}
