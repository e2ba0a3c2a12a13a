package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/imaforge/imaforge/ceremony"
	"github.com/imaforge/imaforge/manifest"
	"github.com/imaforge/imaforge/pipeline"
	"github.com/imaforge/imaforge/signer"
)

func init() {
	register(&cli.Command{
		Name:  "ceremony",
		Usage: "offline signing ceremony: sign a request from `imaforge plan` with an HSM",
		Subcommands: []*cli.Command{{
			Name:      "sign",
			Usage:     "sign a signing request with token keys and write the response",
			ArgsUsage: "REQUEST",
			Description: "Shows a summary to check (image, counts per key, request digest), asks for confirmation\n" +
				"unless --yes, opens each key through relic (--relic-config; key relic:NAME from the request,\n" +
				"or --key NAME=REF), signs every digest with several token sessions, verifies each signature\n" +
				"against the request's certificate, and writes the response atomically. Signatures are\n" +
				"journaled in RESPONSE.journal as they are made: an interrupted ceremony run again resumes\n" +
				"without signing anything twice. One line per run is appended to the audit transcript.\n" +
				"The PIN comes from --pin-env, --pin-file or the terminal, never from the command line.",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "relic-config", Usage: "relic configuration `FILE` naming tokens and keys"},
				&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "response `FILE` (required)"},
				&cli.BoolFlag{Name: "yes", Aliases: []string{"y"}, Usage: "sign without asking for confirmation"},
				&cli.StringFlag{Name: "audit", Usage: "audit transcript `FILE` to append to (default RESPONSE.audit.jsonl)"},
				&cli.IntFlag{Name: "sessions", Usage: "token sessions signing in parallel (0: all cores)"},
				&cli.StringSliceFlag{Name: "key", Usage: "`NAME=REF`: sign the request key NAME with REF (relic:KEY, pkcs11:URI or a key file)"},
				&cli.StringFlag{Name: "pin-env", Usage: "read the token PIN from environment variable `VAR`"},
				&cli.StringFlag{Name: "pin-file", Usage: "read the token PIN from the first line of `FILE`"},
				&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print nothing but the summary and errors"},
			},
			Action: runCeremonySign,
		}},
	})
}

func runCeremonySign(c *cli.Context) error {
	args, err := interspersed(c)
	if err != nil {
		return err
	}
	if len(args) != 1 {
		return usageErrf("ceremony sign: want one REQUEST argument, got %d", len(args))
	}
	if c.String("pin-env") != "" && c.String("pin-file") != "" {
		return usageErrf("ceremony sign: --pin-env and --pin-file exclude each other")
	}
	refs := map[string]string{}
	for _, kv := range c.StringSlice("key") {
		name, ref, ok := strings.Cut(kv, "=")
		if !ok || name == "" || ref == "" {
			return usageErrf("ceremony sign: --key %q: want NAME=REF", kv)
		}
		refs[name] = ref
	}
	reqPath, out := args[0], c.String("output")
	if out == "" {
		return usageErrf("ceremony sign: -o RESPONSE is required")
	}
	req, err := ceremony.ReadRequest(reqPath)
	if err != nil {
		return err
	}
	for name := range refs {
		if req.Key(name) == nil {
			return usageErrf("ceremony sign: --key %s: the request has no key %q", name, name)
		}
	}
	w := c.App.Writer
	printRequestSummary(w, req)

	// A response already written for this request: nothing to sign.
	if prev, err := ceremony.ReadResponse(out); err == nil && ceremony.CheckResponse(req, prev) == nil {
		fmt.Fprintf(w, "%s already answers this request (response sha256 %s): nothing to sign\n", out, prev.SHA256)
		return nil
	}
	journal := out + ceremony.JournalSuffix
	if _, err := os.Stat(journal); err == nil {
		fmt.Fprintf(w, "  resuming the interrupted ceremony recorded in %s\n", journal)
	}
	auditPath := c.String("audit")
	if auditPath == "" {
		auditPath = out + ".audit.jsonl"
	}
	v, _ := buildVersion()
	rec := ceremony.NewAuditRecord(req, reqPath, time.Now())
	rec.Tool = "imaforge " + v
	rec.ResponseFile = out
	audit := func(outcome string) error {
		rec.Outcome = outcome
		if err := ceremony.AppendAudit(auditPath, rec); err != nil {
			return fmt.Errorf("audit transcript: %w", err)
		}
		return nil
	}

	if !c.Bool("yes") {
		fmt.Fprintf(w, "Sign %d digests with %d key(s) for image %s? Compare the request sha256 with the build machine's. [y/N] ", req.Digests(), len(req.Keys), req.Image)
		ok, err := confirm(c.App.Reader)
		if err != nil || !ok {
			if aerr := audit("declined"); aerr != nil {
				return aerr
			}
			return errors.New("ceremony declined: nothing signed")
		}
	}

	// failed records err in the transcript and returns it (with the
	// transcript's own error, if any).
	failed := func(err error) error {
		if aerr := audit("failed: " + err.Error()); aerr != nil {
			return errors.Join(err, aerr)
		}
		return err
	}
	res, err := signRequest(c, req, refs, journal, rec)
	if err != nil {
		return failed(err)
	}
	if err := res.Response.WriteFile(out); err != nil {
		return failed(err)
	}
	if err := os.Remove(journal); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	rec.Response = res.Response.SHA256
	if err := audit("complete"); err != nil {
		return err
	}
	signed, resumed := 0, 0
	for _, k := range req.Keys {
		signed += res.Signed[k.Name]
		resumed += res.Resumed[k.Name]
	}
	fmt.Fprintf(w, "signed %d digests (%d resumed from the journal) -> %s\n  response sha256 %s\n  audit %s\n",
		signed, resumed, out, res.Response.SHA256, auditPath)
	return nil
}

// signRequest opens the keys and runs the ceremony, filling the audit
// record's token identities and counts.
func signRequest(c *cli.Context, req *ceremony.Request, refs map[string]string, journal string, rec *ceremony.AuditRecord) (*ceremony.SignResult, error) {
	var pin signer.Passphrase
	switch {
	case c.String("pin-env") != "":
		pin = signer.PassphraseFromEnv(c.String("pin-env"))
	case c.String("pin-file") != "":
		pin = signer.PassphraseFromFile(c.String("pin-file"))
	default:
		pin = signer.PassphraseFromTerminal("token PIN: ")
	}
	stderr := c.App.ErrWriter
	sessions := c.Int("sessions")
	if sessions <= 0 {
		sessions = runtime.GOMAXPROCS(0)
	}
	opts := ceremony.SignOptions{
		Signers: map[string]*signer.Signer{},
		Tokens:  map[string]signer.TokenIdentity{},
		Journal: journal,
		Workers: sessions,
		Tool:    rec.Tool,
	}
	for i, k := range req.Keys {
		ref := refs[k.Name]
		if ref == "" {
			ref = k.Ref
		}
		if ref == "" {
			ref = signer.RelicScheme + k.Name
		}
		priv, _, err := signer.OpenKey(ref, c.String("relic-config"), &signer.OpenOptions{
			PIN: pin, Sessions: sessions,
			Warn: warnFunc(c),
		})
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k.Name, err)
		}
		if tk, ok := priv.(*signer.TokenKey); ok {
			defer tk.Close()
			id := tk.Identity()
			opts.Tokens[k.Name] = id
			rec.Keys[i].Token = &id
		}
		s, err := signer.New(priv, k.Certificate())
		if err != nil {
			return nil, fmt.Errorf("key %q: %s is not the key of the request's certificate (key id %s, %s): %w", k.Name, ref, k.KeyID, k.Subject, err)
		}
		opts.Signers[k.Name] = s
	}
	if !c.Bool("quiet") {
		var mu sync.Mutex // Progress is called from several goroutines
		last := time.Now()
		opts.Progress = func(done, total int) {
			mu.Lock()
			defer mu.Unlock()
			if time.Since(last) > 5*time.Second || done == total {
				last = time.Now()
				fmt.Fprintf(stderr, "imaforge: %d/%d signatures\n", done, total)
			}
		}
	}
	res, err := ceremony.Sign(c.Context, req, opts)
	for i, k := range req.Keys {
		if res != nil {
			rec.Keys[i].Signed, rec.Keys[i].Resumed = res.Signed[k.Name], res.Resumed[k.Name]
		}
	}
	return res, err
}

// confirm reads one answer line; only "y" or "yes" agree.
func confirm(r io.Reader) (bool, error) {
	if r == nil {
		r = os.Stdin
	}
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && line == "" {
		return false, err
	}
	a := strings.ToLower(strings.TrimSpace(line))
	return a == "y" || a == "yes", nil
}

// signatureFlags fills opts.Keys from build's --signatures and
// --signature-cache flags. The returned function prints the cache's use.
func signatureFlags(c *cli.Context, m *manifest.Manifest, opts *pipeline.Options) (func(io.Writer), error) {
	report := func(io.Writer) {}
	if files := c.StringSlice("signatures"); len(files) > 0 {
		keys, err := pipeline.SignatureKeys(m, files)
		if err != nil {
			if isManifestError(err) {
				return nil, usageErr(err)
			}
			return nil, err
		}
		opts.Keys = keys
	}
	if dir := c.String("signature-cache"); dir != "" {
		cache, err := pipeline.OpenSignatureCache(dir)
		if err != nil {
			return nil, err
		}
		keys, err := pipeline.CacheKeys(m, cache, opts.Keys, func(k *manifest.Key) (pipeline.Key, error) {
			return pipeline.LoadKey(k, pipeline.DefaultKeyOptions(k, opts.Logf), 0)
		})
		if err != nil {
			return nil, usageErr(err)
		}
		opts.Keys = keys
		report = func(w io.Writer) {
			hits, misses := cache.Stats()
			fmt.Fprintf(w, "  signature cache %s: %d reused, %d new\n", dir, hits, misses)
		}
	}
	return report, nil
}
