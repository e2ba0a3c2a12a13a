package service

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sassoftware/relic/v8/config"
)

// ErrRemote is matched by the errors of a Client: they name the server and
// the key.
var ErrRemote = errors.New("signing service")

// ClientOptions tune a Client. Zero values take the defaults.
type ClientOptions struct {
	// Retries is how many rounds over all servers a batch gets before it
	// fails (default: the configuration's retries, else 4).
	Retries int
	// Backoff is the wait after the first failed round; it doubles after
	// each further one (default 200ms).
	Backoff time.Duration
	// Timeout bounds one request (default 120s).
	Timeout time.Duration
}

// Client sends ima signing requests to relic servers: the remote section
// of a relic client configuration (url or directoryUrl, certfile and
// keyfile of the client certificate, cacert of the servers). With several
// servers (the siblings a server lists in its /directory) a transient
// failure moves the request to the next server.
type Client struct {
	servers []string
	http    *http.Client
	opts    ClientOptions
	next    atomic.Uint32
}

// NewClient returns a client for the remote section of the relic client
// configuration file path.
func NewClient(ctx context.Context, path string, opts ClientOptions) (*Client, error) {
	cfg, err := config.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrRemote, path, err)
	}
	r := cfg.Remote
	if r == nil || (r.URL == "" && r.DirectoryURL == "") {
		return nil, fmt.Errorf("%w: %s: no remote section with url or directoryUrl", ErrRemote, path)
	}
	if r.CertFile == "" || r.KeyFile == "" {
		return nil, fmt.Errorf("%w: %s: remote.certfile and remote.keyfile (the client certificate) are required", ErrRemote, path)
	}
	tc, err := clientTLS(r)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrRemote, path, err)
	}
	if opts.Retries <= 0 {
		opts.Retries = r.Retries
	}
	if opts.Retries <= 0 {
		opts.Retries = 4
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 200 * time.Millisecond
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 120 * time.Second
	}
	connect := time.Duration(r.ConnectTimeout) * time.Second
	if connect <= 0 {
		connect = 10 * time.Second
	}
	tr := &http.Transport{
		TLSClientConfig:     tc,
		DialContext:         (&net.Dialer{Timeout: connect}).DialContext,
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 16,
		// The answers are signatures, which do not compress: relic's
		// server gzips an answer the client accepts gzipped, 3% of the
		// service's CPU in BenchmarkSign for nothing.
		DisableCompression: true,
	}
	c := &Client{http: &http.Client{Transport: tr, Timeout: opts.Timeout}, opts: opts}
	// url may list several servers, comma-separated (an imaforge
	// extension of relic's format); directoryUrl or the first server that
	// answers /directory gives the cluster's siblings.
	var bases []string
	for _, u := range strings.Split(r.URL, ",") {
		if u = strings.TrimSuffix(strings.TrimSpace(u), "/"); u != "" {
			bases = append(bases, u)
		}
	}
	ask := bases
	if r.DirectoryURL != "" {
		ask = append([]string{strings.TrimSuffix(r.DirectoryURL, "/")}, bases...)
	}
	c.servers = bases
	for _, b := range ask {
		if hosts, err := c.directory(ctx, b); err == nil && len(hosts) > 0 {
			c.servers = union(hosts, bases)
			break
		}
	}
	if len(c.servers) == 0 {
		return nil, fmt.Errorf("%w: %s: remote.url names no server and %s lists none", ErrRemote, path, r.DirectoryURL)
	}
	return c, nil
}

// union returns a followed by the elements of b not in a.
func union(a, b []string) []string {
	out := append([]string(nil), a...)
	for _, x := range b {
		if !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

// Servers returns the servers the client uses, in order.
func (c *Client) Servers() []string { return append([]string(nil), c.servers...) }

func clientTLS(r *config.RemoteConfig) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if r.CaCert != "" {
		pem, err := os.ReadFile(r.CaCert)
		if err != nil {
			return nil, fmt.Errorf("remote.cacert: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("remote.cacert %s: no PEM certificate", r.CaCert)
		}
		tc.RootCAs = pool
	}
	cert, err := tls.LoadX509KeyPair(r.CertFile, r.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("client certificate %s: %w", r.CertFile, err)
	}
	// Always send the certificate (relic's client does the same: the
	// server asks for any certificate).
	tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	return tc, nil
}

// directory asks base for the servers of its cluster (relic's /directory,
// the server's siblings).
func (c *Client) directory(ctx context.Context, base string) ([]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/directory", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s", resp.Status)
	}
	var md struct{ Hosts []string }
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&md); err != nil {
		return nil, err
	}
	var out []string
	for _, h := range md.Hosts {
		out = append(out, strings.TrimSuffix(h, "/"))
	}
	return out, nil
}

// transientError is a failure worth retrying on another server or later:
// no connection, a reset, a 5xx other than a refused batch.
type transientError struct{ err error }

func (e *transientError) Error() string { return e.err.Error() }
func (e *transientError) Unwrap() error { return e.err }

// Sign sends one batch for key and returns its security.ima values, in
// the order of entries. It retries transient failures, moving to the next
// server, with exponential backoff between rounds; a refusal (4xx) is not
// retried. The values are as the server made them: the caller verifies
// them.
func (c *Client) Sign(ctx context.Context, key string, entries []Entry) ([][]byte, error) {
	vals, _, err := c.SignAt(ctx, key, entries)
	return vals, err
}

// SignAt is Sign that also returns the server that answered, so that an
// error about a value can name it.
func (c *Client) SignAt(ctx context.Context, key string, entries []Entry) ([][]byte, string, error) {
	body, err := json.Marshal(Request{Entries: entries})
	if err != nil {
		return nil, "", fmt.Errorf("%w: key %q: %w", ErrRemote, key, err)
	}
	return c.send(ctx, key, FormatJSON, body, len(entries))
}

// SignStream is Sign for a batch of up to MaxStream entries, sent as a
// stream (FormatNDJSON): the server reads it an entry at a time and the
// answer is read a value at a time. Retries and failover are Sign's.
func (c *Client) SignStream(ctx context.Context, key string, entries []Entry) ([][]byte, error) {
	vals, _, err := c.SignStreamAt(ctx, key, entries)
	return vals, err
}

// SignStreamAt is SignStream that also returns the server that answered.
func (c *Client) SignStreamAt(ctx context.Context, key string, entries []Entry) ([][]byte, string, error) {
	if len(entries) > MaxStream {
		return nil, "", fmt.Errorf("%w: key %q: %d entries, at most %d in one stream", ErrRemote, key, len(entries), MaxStream)
	}
	body, err := EncodeStream(entries)
	if err != nil {
		return nil, "", fmt.Errorf("%w: key %q: %w", ErrRemote, key, err)
	}
	return c.send(ctx, key, FormatNDJSON, body, len(entries))
}

// send returns the values and the server that answered; every error
// names the server(s) and the key.
func (c *Client) send(ctx context.Context, key, format string, body []byte, n int) ([][]byte, string, error) {
	want := RequestDigest(body)
	wait := c.opts.Backoff
	var last error
	start := int(c.next.Add(1))
	for round := 0; round < c.opts.Retries; round++ {
		if round > 0 {
			select {
			case <-ctx.Done():
				return nil, "", fmt.Errorf("%w (servers %s, key %q): %w, after: %w", ErrRemote, strings.Join(c.servers, ", "), key, ctx.Err(), last)
			case <-time.After(wait):
			}
			wait *= 2
		}
		for i := range c.servers {
			srv := c.servers[(start+i)%len(c.servers)]
			vals, err := c.post(ctx, srv, key, format, body, want, n)
			if err == nil {
				return vals, srv, nil
			}
			last = fmt.Errorf("%w %s, key %q: %w", ErrRemote, srv, key, err)
			var te *transientError
			if !errors.As(err, &te) || ctx.Err() != nil {
				return nil, "", last
			}
		}
	}
	return nil, "", fmt.Errorf("%w (after %d rounds over %d servers)", last, c.opts.Retries, len(c.servers))
}

func (c *Client) post(ctx context.Context, srv, key, format string, body []byte, want string, n int) ([][]byte, error) {
	q := url.Values{"key": {key}, "sigtype": {SigType}, "filename": {"ima-batch-" + want[:16]}}
	ctype := "application/json"
	if format == FormatNDJSON {
		q.Set(FormatParam, FormatNDJSON)
		ctype = "application/x-ndjson"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv+"/sign?"+q.Encode(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", ctype)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, &transientError{err}
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK && format == FormatNDJSON {
		// at most MaxStream values of a few hundred bytes each
		vals, err := ReadStreamResponse(io.LimitReader(resp.Body, MaxStream*2*MaxLine), n, want)
		if err != nil {
			return nil, &transientError{fmt.Errorf("bad answer: %w", err)}
		}
		return vals, nil
	}
	blob, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody))
	if err != nil {
		return nil, &transientError{err}
	}
	if resp.StatusCode != http.StatusOK {
		err := fmt.Errorf("%s: %s", resp.Status, problemDetail(blob))
		if resp.StatusCode >= 500 {
			return nil, &transientError{err}
		}
		return nil, err
	}
	r, ok := fastResponse(blob)
	if !ok {
		if err := json.Unmarshal(blob, &r); err != nil {
			return nil, fmt.Errorf("bad response: %w", err)
		}
	}
	if r.RequestDigest != want {
		return nil, fmt.Errorf("response names request %s, sent %s", r.RequestDigest, want)
	}
	if len(r.Values) != n {
		return nil, fmt.Errorf("response has %d values for %d entries", len(r.Values), n)
	}
	return r.Values, nil
}

// problemDetail returns the detail of a problem document, else the body.
func problemDetail(blob []byte) string {
	var p struct{ Type, Detail, Title string }
	if json.Unmarshal(blob, &p) == nil && (p.Detail != "" || p.Type != "") {
		if p.Detail == "" {
			return p.Type
		}
		return p.Detail
	}
	s := strings.TrimSpace(string(blob))
	if len(s) > 200 {
		s = s[:200]
	}
	return s
}
