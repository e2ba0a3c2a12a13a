package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/imaforge/imaforge/service"

	"github.com/imaforge/imaforge/imasig"
)

func digest(s string) []byte { d := sha256.Sum256([]byte(s)); return d[:] }

func newClient(t *testing.T, f *fixture, who string) *service.Client {
	t.Helper()
	// A long timeout: relic's Server.healthCheckLoop spins on a core once
	// its server is closed ("break" leaves only its select), so every
	// server an earlier test of this process stopped slows the later ones
	// (a 5,000-entry stream took 127 s on a loaded machine).
	c, err := service.NewClient(context.Background(), f.ClientConfig(who), service.ClientOptions{Retries: 1, Timeout: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// rawPost sends body as the client who would, bypassing service.Client (a patched
// client), and returns the status and body.
func rawPost(t *testing.T, f *fixture, who, key string, body []byte) (int, string) {
	t.Helper()
	return rawPostFormat(t, f, who, key, service.FormatJSON, body)
}

// rawPostFormat is rawPost of a request in format (service.FormatJSON or
// FormatNDJSON).
func rawPostFormat(t *testing.T, f *fixture, who, key, format string, body []byte) (int, string) {
	t.Helper()
	resp := rawRequest(t, f, who, key, format, body)
	defer resp.Body.Close()
	var b bytes.Buffer
	b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}

// rawRequest sends body in format as the client who would and returns the
// answer, its body unread.
func rawRequest(t *testing.T, f *fixture, who, key, format string, body []byte) *http.Response {
	t.Helper()
	tc := &tls.Config{InsecureSkipVerify: true}
	if who != "" {
		cert, err := tls.LoadX509KeyPair(f.Path(who+"-client.pem"), f.Path(who+"-client.key"))
		if err != nil {
			t.Fatal(err)
		}
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc}}
	q := url.Values{"key": {key}, "sigtype": {service.SigType}, "filename": {"x"}, service.FormatParam: {format}}
	resp, err := hc.Post(f.URL(0)+"/sign?"+q.Encode(), "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return string(b)
}

func TestService(t *testing.T) {
	f := newFixture(t, 1)
	serve(t, f, 0)
	ctx := context.Background()

	t.Run("sign", func(t *testing.T) {
		c := newClient(t, f, "mfr")
		d512 := sha512.Sum512([]byte("b"))
		entries := []service.Entry{
			service.NewEntry("/usr/bin/a", imasig.SHA256, digest("a")),
			service.NewEntry("/usr/bin/b", imasig.SHA512, d512[:]),
			service.NewEntry("/opt/tenant/c", imasig.SHA256, digest("c")),
		}
		vals, err := c.Sign(ctx, "mfr", entries)
		if err != nil {
			t.Fatal(err)
		}
		digests := [][]byte{digest("a"), d512[:], digest("c")}
		for i, v := range vals {
			if err := imasig.Verify(v, digests[i], f.mfr.Cert); err != nil {
				t.Errorf("value %d: %v", i, err)
			}
		}
		if err := imasig.Verify(vals[0], digests[0], f.tenant.Cert); err == nil {
			t.Error("value verifies with the tenant's certificate")
		}
		tc := newClient(t, f, "tenant")
		vals, err = tc.Sign(ctx, "tenant", entries[2:])
		if err != nil {
			t.Fatal(err)
		}
		if err := imasig.Verify(vals[0], digests[2], f.tenant.Cert); err != nil {
			t.Error(err)
		}
		if a := readFile(t, f.Path("audit0.jsonl")); !strings.Contains(a, `"/opt/tenant/c"`) || !strings.Contains(a, `"client.name":"tenant-ci"`) {
			t.Errorf("audit lacks the tenant's signature:\n%s", a)
		}
	})

	good, _ := json.Marshal(service.Request{Entries: []service.Entry{service.NewEntry("/opt/tenant/ok", imasig.SHA256, digest("ok"))}})
	big := service.Request{}
	for range service.MaxBatch + 1 {
		big.Entries = append(big.Entries, service.NewEntry("/opt/tenant/x", imasig.SHA256, digest("x")))
	}
	bigBody, _ := json.Marshal(big)
	short := service.NewEntry("/opt/tenant/x", imasig.SHA256, digest("x"))
	short.Digest = short.Digest[:40]
	unknown := service.NewEntry("/opt/tenant/x", imasig.SHA256, digest("x"))
	unknown.Hash = "md17"
	sha1 := service.NewEntry("/opt/tenant/x", imasig.SHA256, digest("x")[:20])
	sha1.Hash = "sha1"
	body := func(es ...service.Entry) []byte { b, _ := json.Marshal(service.Request{Entries: es}); return b }
	escape := body(service.NewEntry("/opt/tenant/ok", imasig.SHA256, digest("ok")), service.NewEntry("/etc/shadow", imasig.SHA256, digest("evil")))

	refusals := []struct {
		name, who, key string
		body           []byte
		status         int
		log            string // expected in the server log
		audit, audit2  string // expected in the one audit record the refusal adds
	}{
		{"tenant asks the manufacturer key", "tenant", "mfr", good, 403, "access to key denied", `"ima.refused":"https://relic.sas.com/forbidden"`, `"client.name":"tenant-ci"`},
		{"path outside the tenant scope", "tenant", "tenant", escape, 403, "out-of-scope", `"ima.refused":"` + ProblemOutOfScope, `"client.name":"tenant-ci"`},
		{"manufacturer CI cannot widen the tenant key's scope", "mfr", "tenant", escape, 403, "out-of-scope", `"ima.refused":"` + ProblemOutOfScope, `"client.name":"mfr-ci"`},
		{"no client certificate", "", "tenant", good, 401, "certificate-required", `"ima.refused":"https://relic.sas.com/certificate-required"`, `"client.certificate":"none"`},
		{"unknown client certificate", "stranger", "tenant", good, 401, "certificate-not-recognized", `"ima.refused":"https://relic.sas.com/certificate-not-recognized"`, `"client.subject":"/CN=stranger-client"`},
		{"unknown key", "tenant", "nosuchkey", good, 403, "key not found", `"ima.refused":"https://relic.sas.com/forbidden"`, `"sig.keyname":"nosuchkey"`},
		{"malformed", "tenant", "tenant", []byte(`{"entries":[{"path":`), 400, "bad-request", `"ima.refused":"` + ProblemBadRequest, `"ima.request_digest"`},
		{"unknown field", "tenant", "tenant", []byte(`{"entries":[],"scope":"/**"}`), 400, "bad-request", `"ima.refused":"` + ProblemBadRequest, `"client.name":"tenant-ci"`},
		{"wrong digest length", "tenant", "tenant", body(short), 400, "bad-request", `"ima.refused":"` + ProblemBadRequest, `"client.name":"tenant-ci"`},
		{"unknown hash", "tenant", "tenant", body(unknown), 400, "bad-request", `"ima.refused":"` + ProblemBadRequest, `"client.name":"tenant-ci"`},
		{"sha1 refused", "tenant", "tenant", body(sha1), 400, "bad-request", `"ima.refused":"` + ProblemBadRequest, `"client.name":"tenant-ci"`},
		{"relative path", "tenant", "tenant", body(service.NewEntry("opt/tenant/x", imasig.SHA256, digest("x"))), 400, "bad-request", `"ima.refused":"` + ProblemBadRequest, `"client.name":"tenant-ci"`},
		{"oversized batch", "tenant", "tenant", bigBody, 400, "bad-request", `"ima.refused":"` + ProblemBadRequest, `"client.name":"tenant-ci"`},
	}
	for _, r := range refusals {
		t.Run(r.name, func(t *testing.T) {
			before := readFile(t, f.Path("audit0.jsonl"))
			status, resp := rawPost(t, f, r.who, r.key, r.body)
			if status != r.status {
				t.Fatalf("status %d, want %d: %s", status, r.status, resp)
			}
			after := readFile(t, f.Path("audit0.jsonl"))
			added := strings.TrimPrefix(after, before)
			if strings.Contains(added, `"ima.count"`) {
				t.Errorf("a refused request was signed: %s", added)
			}
			if n := strings.Count(added, "\n"); n != 1 {
				t.Errorf("the refusal added %d audit records, want 1: %s", n, added)
			}
			for _, want := range []string{r.audit, r.audit2} {
				if !strings.Contains(added, want) {
					t.Errorf("audit lacks %s: %s", want, added)
				}
			}
			if log := readFile(t, f.Path("server0.log")); !strings.Contains(log, r.log) {
				t.Errorf("server log lacks %q", r.log)
			}
			// the server keeps serving
			status, resp = rawPost(t, f, "tenant", "tenant", good)
			if status != 200 || !strings.Contains(resp, service.RequestDigest(good)) {
				t.Fatalf("after the refusal: %d %s", status, resp)
			}
		})
	}

	t.Run("client error names server and key", func(t *testing.T) {
		c := newClient(t, f, "tenant")
		_, err := c.Sign(ctx, "mfr", []service.Entry{service.NewEntry("/opt/tenant/x", imasig.SHA256, digest("x"))})
		if err == nil || !errors.Is(err, service.ErrRemote) || !strings.Contains(err.Error(), f.URL(0)) || !strings.Contains(err.Error(), `"mfr"`) || !strings.Contains(err.Error(), "403") {
			t.Fatalf("got %v", err)
		}
	})
}

// TestServiceAuditFailsClosed: with an audit file that cannot be written
// (a directory) nothing is signed and no refusal goes unrecorded silently:
// a batch that would be signed (JSON or streamed: a stream's record is
// written before any value is), a refusal by the ima module and a refusal
// by relic (the role does not allow the key) each answer 500, and the
// server log says why.
func TestServiceAuditFailsClosed(t *testing.T) {
	f := newFixture(t, 1)
	if err := os.Mkdir(f.Path("audit0.jsonl"), 0o700); err != nil {
		t.Fatal(err)
	}
	serve(t, f, 0)
	good, _ := json.Marshal(service.Request{Entries: []service.Entry{service.NewEntry("/opt/tenant/ok", imasig.SHA256, digest("ok"))}})
	escape, _ := json.Marshal(service.Request{Entries: []service.Entry{service.NewEntry("/etc/shadow", imasig.SHA256, digest("evil"))}})
	stream, _ := service.EncodeStream([]service.Entry{service.NewEntry("/opt/tenant/ok", imasig.SHA256, digest("ok"))})
	fj, fn := service.FormatJSON, service.FormatNDJSON
	for _, c := range []struct {
		name, who, key, format string
		body                   []byte
		want, log              string // in the answer, in the server log
	}{
		{"signature", "tenant", "tenant", fj, good, "unhandled exception", "writing audit log"},
		{"streamed signature", "tenant", "tenant", fn, stream, "unhandled exception", "write audit record"},
		{"module refusal", "tenant", "tenant", fj, escape, "unhandled exception", "write audit record"},
		{"relic refusal", "tenant", "mfr", fj, good, ProblemAuditFailed, "refusal not audited"},
		{"no client certificate", "", "tenant", fj, good, ProblemAuditFailed, "refusal not audited"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, resp := rawPostFormat(t, f, c.who, c.key, c.format, c.body)
			if status != http.StatusInternalServerError || strings.Contains(resp, "value") || !strings.Contains(resp, c.want) {
				t.Errorf("status %d, want 500 with %q: %s", status, c.want, resp)
			}
			if log := readFile(t, f.Path("server0.log")); !strings.Contains(log, c.log) {
				t.Errorf("server log lacks %q:\n%s", c.log, log)
			}
		})
	}
}

// TestClientErrors: every error of the client names the key and the
// server (or, before any server is known, the client configuration).
func TestClientErrors(t *testing.T) {
	f := newFixture(t, 1)
	serve(t, f, 0)
	ctx := context.Background()
	entry := []service.Entry{service.NewEntry("/opt/tenant/x", imasig.SHA256, digest("x"))}
	remote := func(config, key string, cert *x509.Certificate) error {
		k, err := service.OpenRemoteKey(ctx, config, key, cert, service.RemoteOptions{ClientOptions: service.ClientOptions{Retries: 1}})
		if err != nil {
			return err
		}
		defer k.Close()
		_, err = k.SignPath(imasig.SHA256, "/opt/tenant/x", digest("x"))
		return err
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	for _, c := range []struct {
		name string
		err  error
		want []string
	}{
		{"refused", func() error { _, err := newClient(t, f, "tenant").Sign(ctx, "mfr", entry); return err }(), []string{f.URL(0), `key "mfr"`, "403"}},
		// the server signs with the tenant key, the manifest says mfr's
		{"value does not verify", remote(f.ClientConfig("mfr"), "tenant", f.mfr.Cert), []string{f.URL(0), `key "tenant"`, "/opt/tenant/x", "does not verify"}},
		{"cancelled", func() error { _, err := newClient(t, f, "mfr").Sign(cancelled, "mfr", entry); return err }(), []string{f.URL(0), `key "mfr"`, "context canceled"}},
		{"no configuration", remote(f.Path("nonexistent.yaml"), "mfr", f.mfr.Cert), []string{f.Path("nonexistent.yaml"), `key "mfr"`}},
		{"no certificate", remote(f.ClientConfig("mfr"), "mfr", nil), []string{`key "mfr"`, "no certificate"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.err == nil || !errors.Is(c.err, service.ErrRemote) {
				t.Fatalf("got %v", c.err)
			}
			for _, w := range c.want {
				if !strings.Contains(c.err.Error(), w) {
					t.Errorf("%v: lacks %q", c.err, w)
				}
			}
		})
	}
}

// TestClientFailover: a client configured with two servers signs while
// only one is up, moves to the other when that one stops, uses a restarted
// server again, and fails naming the servers when none is up.
func TestClientFailover(t *testing.T) {
	f := newFixture(t, 2)
	ctx := context.Background()
	stop1 := startServer(t, f, 1)
	c := newClient(t, f, "mfr") // server 0 is down: the directory comes from server 1
	if got := len(c.Servers()); got != 2 {
		t.Fatalf("servers %v", c.Servers())
	}
	sign := func(step string) error {
		t.Helper()
		for i := range 4 { // both rotation starts
			d := digest(fmt.Sprintf("%s-%d", step, i))
			vals, err := c.Sign(ctx, "mfr", []service.Entry{service.NewEntry("/usr/bin/x", imasig.SHA256, d)})
			if err != nil {
				return err
			}
			if err := imasig.Verify(vals[0], d, f.mfr.Cert); err != nil {
				t.Fatalf("%s: %v", step, err)
			}
		}
		return nil
	}
	if err := sign("server 1 only"); err != nil {
		t.Fatal(err)
	}
	stop0 := startServer(t, f, 0)
	stop1()
	if err := sign("server 0 only"); err != nil {
		t.Fatal(err)
	}
	stop1 = startServer(t, f, 1) // restarted
	stop0()
	if err := sign("restarted server 1"); err != nil {
		t.Fatal(err)
	}
	stop1()
	err := sign("none")
	if err == nil || !strings.Contains(err.Error(), "after 1 rounds over 2 servers") || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Fatalf("with no server: %v", err)
	}
}
