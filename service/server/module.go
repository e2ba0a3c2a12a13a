package server

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/rs/zerolog/hlog"
	"github.com/sassoftware/relic/v8/lib/certloader"
	"github.com/sassoftware/relic/v8/signers"

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
// configuration).
func signRequest(body io.Reader, cert *certloader.Certificate, opts signers.SignOpts) ([]byte, error) {
	var parse func() ([]service.Item, string, error)
	switch format := opts.Flags.GetString(service.FormatParam); format {
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
	resp, digest, ref := sign(parse, cert.KeyName, cert.Signer(), cert.Certificates, func() (*signer.Signer, error) { return signerFor(cert) })
	if ref != nil {
		opts.Audit.Attributes["ima.refused"] = ref.Type
		opts.Audit.Attributes["ima.detail"] = ref.Detail
		opts.Audit.Attributes["ima.request_digest"] = digest
		if err := publishAudit(opts.Audit); err != nil {
			return nil, err
		}
		markAudited(opts.Context())
		return nil, ref
	}
	paths := make([]string, len(resp.items))
	for i, it := range resp.items {
		paths[i] = it.Path
	}
	opts.Audit.Attributes["ima.request_digest"] = resp.RequestDigest
	opts.Audit.Attributes["ima.count"] = len(paths)
	opts.Audit.Attributes["ima.paths"] = paths
	if opts.Flags.GetString(service.FormatParam) == service.FormatNDJSON {
		opts.Audit.SetMimeType("application/x-ndjson")
		return encodeStreamResponse(resp.Response)
	}
	opts.Audit.SetMimeType("application/json")
	return json.Marshal(resp.Response)
}

// encodeStreamResponse is the answer to a streamed request: a StreamLine
// per value, then the one naming the request digest and the count.
func encodeStreamResponse(r service.Response) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	for _, v := range r.Values {
		if err := enc.Encode(service.StreamLine{Value: v}); err != nil {
			return nil, err
		}
	}
	if err := enc.Encode(service.StreamLine{RequestDigest: r.RequestDigest, Key: r.Key, Count: len(r.Values)}); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
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
	out, _, ref := sign(parse, keyName, key, chain, func() (*signer.Signer, error) { return signer.New(key, chain[0]) })
	return out, ref
}

// sign is Sign of the request that parse reads (a JSON batch or a stream,
// every entry read and checked before anything is signed), with the signer
// that newSigner makes (signRequest's signs with libcrypto for a file
// token's RSA key). It returns the request digest also with a refusal.
func sign(parse func() ([]service.Item, string, error), keyName string, key crypto.Signer, chain []*x509.Certificate, newSigner func() (*signer.Signer, error)) (*signed, string, *Refusal) {
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
	out := &signed{Response: service.Response{RequestDigest: digest, Key: keyName}, items: items}
	if out.Values, err = signItems(s, items); err != nil {
		return nil, digest, &Refusal{Status: http.StatusInternalServerError, Type: ProblemSign, Detail: err.Error()}
	}
	return out, digest, nil
}

// signItems signs items on up to GOMAXPROCS goroutines, so that one
// client's batch uses every core (and every session of a token worker). The
// first failure stops it: the batch is answered whole or not at all.
func signItems(s *signer.Signer, items []service.Item) ([][]byte, error) {
	vals := make([][]byte, len(items))
	workers := min(runtime.GOMAXPROCS(0), len(items))
	var next atomic.Int64
	var failed atomic.Bool
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= len(items) {
					return
				}
				v, err := s.SignDigest(items[i].Hash, items[i].Digest)
				if err != nil {
					errs[w] = fmt.Errorf("entry %d: %w", i, err)
					failed.Store(true)
					return
				}
				vals[i] = v
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return vals, nil
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
