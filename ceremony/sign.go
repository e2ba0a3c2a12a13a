package ceremony

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/internal/parallel"
	"github.com/imaforge/imaforge/signer"
)

// SignOptions configure Sign.
type SignOptions struct {
	// Signers signs for each request key, by name. Each must have been made
	// with the request key's certificate (signer.New refuses a token key
	// that is not the certificate's).
	Signers map[string]*signer.Signer
	// Remote signs for each request key that is a signing service's
	// (instead of Signers): each digest once per image path of the request
	// (the service checks every path against the key's scope), the values
	// verified, the first kept.
	Remote map[string]RemoteSigner
	// Tokens describes the token behind each key, copied to the response.
	Tokens map[string]signer.TokenIdentity
	// Journal is the journal path (normally the response path +
	// JournalSuffix); required.
	Journal string
	// Workers is how many signatures are made at once (0: GOMAXPROCS); with
	// a token, at most its sessions sign at a time.
	Workers int
	// Tool names the program in the response.
	Tool string
	// Progress, if not nil, is called after each signature (concurrently).
	Progress func(done, total int)
}

// SignResult is a finished ceremony.
type SignResult struct {
	Response *Response
	// Signed counts signatures made in this run, Resumed those taken from
	// the journal of an interrupted run, per key.
	Signed, Resumed map[string]int
}

// Sign signs every digest of req, verifying each signature against the
// request key's certificate before recording it in the journal. Signatures
// already in the journal (an interrupted ceremony) are verified and kept,
// never made again. It returns the complete response; the caller writes it
// (Response.WriteFile) and then removes the journal (RemoveJournal). When
// ctx ends or a signature fails, the journal keeps what was made.
func Sign(ctx context.Context, req *Request, opts SignOptions) (*SignResult, error) {
	h, err := req.HashAlg()
	if err != nil {
		return nil, err
	}
	res := &SignResult{Signed: map[string]int{}, Resumed: map[string]int{}}
	verifiers := map[string]*imasig.Verifier{}
	workers := opts.Workers
	for _, k := range req.Keys {
		var cert *x509.Certificate
		if s := opts.Signers[k.Name]; s != nil {
			cert = s.Cert()
		} else if rs := opts.Remote[k.Name]; rs != nil {
			cert = rs.Cert()
			// a service batches concurrent signatures
			workers = max(workers, remoteWorkers)
		} else {
			return nil, fmt.Errorf("no signer for key %q", k.Name)
		}
		if !cert.Equal(k.Certificate()) {
			return nil, fmt.Errorf("key %q: %w: signer certificate %q is not the request's (%s)", k.Name, ErrMismatch, cert.Subject, k.Subject)
		}
		v, err := imasig.NewVerifier(k.Certificate())
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k.Name, err)
		}
		verifiers[k.Name] = v
	}

	j, prior, err := OpenJournal(opts.Journal, req.SHA256)
	if err != nil {
		return nil, err
	}
	defer j.Close()

	// Values from the journal, verified.
	values := map[string]map[string]string{} // key -> digest hex -> value hex
	for _, k := range req.Keys {
		values[k.Name] = map[string]string{}
	}
	for i, e := range prior {
		vs, ok := values[e.Key]
		if !ok {
			return nil, &FileError{Path: opts.Journal, Line: i + 2, Err: fmt.Errorf("%w: key %q is not in the request", ErrMismatch, e.Key)}
		}
		d, err1 := hex.DecodeString(e.Digest)
		val, err2 := hex.DecodeString(e.Value)
		if err1 != nil || err2 != nil {
			return nil, &FileError{Path: opts.Journal, Line: i + 2, Err: formatErr("bad hex")}
		}
		if err := VerifyValue(verifiers[e.Key], h, val, d); err != nil {
			return nil, &FileError{Path: opts.Journal, Line: i + 2, Err: err}
		}
		if _, dup := vs[e.Digest]; !dup {
			vs[e.Digest] = e.Value
			res.Resumed[e.Key]++
		}
	}

	type job struct {
		key    string
		digest string
		paths  []string
	}
	var jobs []job
	for _, k := range req.Keys {
		for _, d := range k.Digests {
			if _, ok := values[k.Name][d]; !ok {
				jobs = append(jobs, job{k.Name, d, k.Paths[d]})
			}
		}
	}
	total := req.Digests()
	var done atomic.Int64
	done.Store(int64(total - len(jobs)))

	var mu sync.Mutex // guards values and res.Signed
	err = parallel.ForEach(ctx, len(jobs), workers, func(_ context.Context, i int) error {
		jb := jobs[i]
		d, _ := hex.DecodeString(jb.digest)
		var val []byte
		var err error
		if rs := opts.Remote[jb.key]; rs != nil {
			val, err = signRemote(rs, verifiers[jb.key], h, jb.paths, d)
		} else {
			val, err = opts.Signers[jb.key].SignDigest(h, d)
			if err == nil {
				err = VerifyValue(verifiers[jb.key], h, val, d)
			}
		}
		if err != nil {
			return fmt.Errorf("key %q digest %s: %w", jb.key, jb.digest, err)
		}
		vh := hex.EncodeToString(val)
		if err := j.Append(JournalEntry{Key: jb.key, Digest: jb.digest, Value: vh}); err != nil {
			return err
		}
		mu.Lock()
		values[jb.key][jb.digest] = vh
		res.Signed[jb.key]++
		mu.Unlock()
		n := done.Add(1)
		if opts.Progress != nil {
			opts.Progress(int(n), total)
		}
		return nil
	})
	if err != nil && err == ctx.Err() { // no signature failed: the caller cancelled
		return res, fmt.Errorf("ceremony interrupted after %d of %d signatures (kept in %s): %w", done.Load(), total, opts.Journal, err)
	}
	if err != nil {
		return res, err
	}
	if err := j.Close(); err != nil {
		return res, err
	}

	resp := &Response{
		Tool: opts.Tool, Request: req.SHA256, Manifest: req.Manifest, Image: req.Image, Hash: req.Hash,
		Keys: []ResponseKey{},
	}
	for _, k := range req.Keys {
		rk := ResponseKey{Name: k.Name, KeyID: k.KeyID, CertSHA256: k.CertSHA256, Signatures: make([]Signature, 0, len(k.Digests))}
		if id, ok := opts.Tokens[k.Name]; ok {
			rk.Token = &id
		}
		for _, d := range k.Digests {
			rk.Signatures = append(rk.Signatures, Signature{Digest: d, Value: values[k.Name][d]})
		}
		resp.Keys = append(resp.Keys, rk)
	}
	if _, err := resp.Marshal(); err != nil {
		return res, err
	}
	res.Response = resp
	return res, nil
}

// remoteWorkers is how many signatures of a remote key are asked at once:
// enough to fill the client's batches.
const remoteWorkers = 512

// signRemote signs digest d with a remote key once per image path, each
// value verified, and returns the first.
func signRemote(rs RemoteSigner, v *imasig.Verifier, h imasig.Hash, paths []string, d []byte) ([]byte, error) {
	if len(paths) == 0 {
		return nil, fmt.Errorf("%w: the request names no image path for the digest: a signing service signs by path", ErrMismatch)
	}
	var first []byte
	for _, p := range paths {
		val, err := rs.SignPath(h, p, d)
		if err == nil {
			err = VerifyValue(v, h, val, d)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if first == nil {
			first = val
		}
	}
	return first, nil
}

// CheckResponse checks that resp answers req: the same request digest and
// manifest, every key with the request's identity and a verified signature
// for each of its digests.
func CheckResponse(req *Request, resp *Response) error {
	if resp.Request != req.SHA256 {
		return fmt.Errorf("%w: response to request %s, not %s", ErrMismatch, resp.Request, req.SHA256)
	}
	h, err := req.HashAlg()
	if err != nil {
		return err
	}
	for _, k := range req.Keys {
		rk := resp.Key(k.Name)
		if rk == nil {
			return fmt.Errorf("%w: no signatures for key %q", ErrMismatch, k.Name)
		}
		if rk.CertSHA256 != k.CertSHA256 {
			return fmt.Errorf("%w: key %q: certificate %s, request has %s", ErrMismatch, k.Name, rk.CertSHA256, k.CertSHA256)
		}
		vals, err := rk.Values(h, k.Certificate())
		if err != nil {
			return err
		}
		for _, d := range k.Digests {
			b, _ := hex.DecodeString(d)
			if _, ok := vals[string(b)]; !ok {
				return fmt.Errorf("%w: key %q: digest %s not signed", ErrMismatch, k.Name, d)
			}
		}
	}
	return nil
}
