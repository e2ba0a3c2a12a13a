package main

import (
	"bufio"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/imaforge/imaforge/ceremony"
	"github.com/imaforge/imaforge/manifest"
	"github.com/imaforge/imaforge/pipeline"
	"github.com/imaforge/imaforge/service"
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
			Description: "Shows a summary to check (image, counts per key, request digest), takes the lock on\n" +
				"RESPONSE (a second ceremony on it is refused), opens the audit transcript (one that cannot be\n" +
				"written stops here), opens and checks each key (relic:NAME from the request, --key NAME=REF,\n" +
				"--relic-config), shows the tokens, asks for confirmation unless --yes, writes a \"started\"\n" +
				"audit record, signs every digest with several token sessions, verifies each signature against\n" +
				"the request's certificate, writes the response atomically and a final audit record.\n" +
				"Signatures are journaled in RESPONSE.journal as they are made: an interrupted ceremony run\n" +
				"again resumes without signing anything twice.\n" +
				"PINs come from --pin-env, --pin-file (per token with TOKEN=...), a token's pin in the relic\n" +
				"configuration, or a terminal prompt naming the token; never from the command line.\n" +
				"A key remote:NAME is a signing service's (docs/service.md): --relic-config is then the relic\n" +
				"client configuration, and each digest is signed once per image path of the request.",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "relic-config", Usage: "relic configuration `FILE` naming tokens and keys (for remote:NAME keys, the client configuration)"},
				&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "response `FILE` (required)"},
				&cli.BoolFlag{Name: "yes", Aliases: []string{"y"}, Usage: "sign without asking for confirmation"},
				&cli.StringFlag{Name: "audit", Usage: "audit transcript `FILE` to append to (default RESPONSE.audit.jsonl)"},
				&cli.IntFlag{Name: "sessions", Usage: "token sessions signing in parallel (0: all cores)"},
				&cli.StringSliceFlag{Name: "key", Usage: "`NAME=REF`: sign the request key NAME with REF (relic:KEY, remote:KEY, pkcs11:URI or a key file)"},
				&cli.StringSliceFlag{Name: "pin-env", Usage: "read the token PIN from environment variable `[TOKEN=]VAR` (TOKEN: a relic token name or token label; without it, every token)"},
				&cli.StringSliceFlag{Name: "pin-file", Usage: "read the token PIN from the first line of `[TOKEN=]FILE`"},
				&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print nothing but the summary and errors"},
				jsonFlag("the result (the summary and the confirmation go to stderr)"),
			},
			Action: runCeremonySign,
		}, {
			Name:      "show",
			Usage:     "show what a signing request asks to sign: keys, counts, the manifest digest, every file",
			ArgsUsage: "REQUEST",
			Description: "Prints the request's summary (image, manifest digest, per key the certificate, files and\n" +
				"digests, the request digest), its IMA policy fragments, and per key every file path with its\n" +
				"digest, sorted by path (--summary: the summary only). Paths that are not plain text are Go-quoted.",
			Flags: []cli.Flag{
				&cli.BoolFlag{Name: "summary", Usage: "print the summary only, not every file"},
				jsonFlag("the summary, policy fragments and files"),
			},
			Action: runCeremonyShow,
		}, {
			Name:      "verify",
			Usage:     "check that a response answers a request: every digest signed, every signature verified",
			ArgsUsage: "REQUEST RESPONSE",
			Description: "Checks, on the ceremony machine before the response leaves the room, that RESPONSE is the\n" +
				"answer to REQUEST: its own digest, the request digest it names, each key's certificate, and a\n" +
				"signature for every digest that verifies with the request's certificate. Exit 1 if not.",
			Flags:  []cli.Flag{jsonFlag("the result")},
			Action: runCeremonyVerify,
		}, {
			Name:  "tokens",
			Usage: "list PKCS#11 modules, their tokens (label, serial, maker, model) and key objects",
			Description: "Lists the tokens of each PKCS#11 module given by --module, named by the pkcs11 tokens of\n" +
				"--relic-config, or in IMAFORGE_PKCS11_MODULE; without any, the modules of common packages\n" +
				"installed here (SoftHSM2, OpenSC, YubiKey). Key objects are the public keys and certificates\n" +
				"anyone may see (no PIN is asked). A module that does not load is named with the loader's\n" +
				"reason, and the command then exits 1.",
			Flags: []cli.Flag{
				&cli.StringSliceFlag{Name: "module", Usage: "PKCS#11 module `PATH` (repeatable)"},
				&cli.StringFlag{Name: "relic-config", Usage: "list the modules of the pkcs11 tokens of this relic configuration `FILE`"},
				jsonFlag("the modules and their tokens (also when a module does not load)"),
			},
			Action: runCeremonyTokens,
		}, {
			Name:  "audit",
			Usage: "check ceremony audit transcripts",
			Subcommands: []*cli.Command{{
				Name:      "verify",
				Usage:     "check an audit transcript's hash chain and list ceremonies that never ended",
				ArgsUsage: "TRANSCRIPT",
				Description: "Checks that every record is well-formed, numbered in order and chained to the one before\n" +
					"(prev_sha256), and that each end record names an earlier started record. A started record\n" +
					"with no end record is a ceremony that was killed while signing: listed, not an error.\n" +
					"Removing the last records leaves a valid, shorter chain: --head HEX (a head printed\n" +
					"earlier) fails unless that record is still in the transcript.",
				Flags: []cli.Flag{
					&cli.StringSliceFlag{Name: "head", Usage: "`SHA256` of a record written down earlier that must still be there"},
					jsonFlag("the summary"),
				},
				Action: runCeremonyAuditVerify,
			}},
		}},
	})
}

func runCeremonySign(c *cli.Context) error {
	args := c.Args().Slice()
	if len(args) != 1 {
		return usageErrf("ceremony sign: want one REQUEST argument, got %d", len(args))
	}
	refs := map[string]string{}
	for _, kv := range c.StringSlice("key") {
		name, ref, ok := strings.Cut(kv, "=")
		if !ok || name == "" || ref == "" {
			return usageErrf("ceremony sign: --key %q: want NAME=REF", kv)
		}
		refs[name] = ref
	}
	pins, err := parsePINFlags(c)
	if err != nil {
		return err
	}
	reqPath, out := args[0], c.String("output")
	if out == "" {
		return usageErrf("ceremony sign: -o RESPONSE is required")
	}
	req, err := ceremony.ReadRequest(reqPath)
	if err != nil {
		return inputErr(err)
	}
	for name := range refs {
		if req.Key(name) == nil {
			return usageErrf("ceremony sign: --key %s: the request has no key %q", name, name)
		}
	}
	w, stderr := c.App.Writer, c.App.ErrWriter
	asJSON := c.Bool("json")
	if asJSON {
		w = stderr // stdout carries the result only
	}
	printRequestSummary(w, req)
	if _, err := os.Stat(out + ceremony.JournalSuffix); err == nil {
		fmt.Fprintf(w, "  resuming the interrupted ceremony recorded in %s\n", out+ceremony.JournalSuffix)
	}
	v, _ := buildVersion()
	opts := ceremony.RunOptions{
		Request: req, RequestFile: reqPath, Response: out, Audit: c.String("audit"),
		Keys: refs, RelicConfig: c.String("relic-config"),
		PIN: pins.global(), TokenPIN: pins.forToken,
		Sessions: c.Int("sessions"), Tool: "imaforge " + v, Warn: warnFunc(c),
		OpenRemote: func(name, relicConfig string, cert *x509.Certificate) (ceremony.RemoteSigner, error) {
			return service.OpenRemoteKey(c.Context, relicConfig, name, cert, service.RemoteOptions{})
		},
	}
	if !c.Bool("yes") {
		opts.Confirm = func(keys []ceremony.OpenedKey) (bool, error) {
			printOpenedKeys(w, keys)
			fmt.Fprintf(w, "Sign %d digests with %d key(s) for image %s? Compare the request sha256 with the build machine's. [y/N] ", req.Digests(), len(req.Keys), req.Image)
			return confirm(c.App.Reader)
		}
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
	res, err := ceremony.Run(c.Context, opts)
	if err != nil {
		return err
	}
	signed, resumed := 0, 0
	for _, k := range req.Keys {
		signed += res.Signed[k.Name]
		resumed += res.Resumed[k.Name]
	}
	if asJSON {
		return printJSON(c.App.Writer, ceremonySignResult{Response: out, ResponseSHA256: res.Response.SHA256,
			RequestSHA256: req.SHA256, AlreadyAnswered: res.Answered, Signed: signed, Resumed: resumed,
			Audit: res.Audit, AuditHead: res.AuditHead})
	}
	if res.Answered {
		fmt.Fprintf(w, "%s already answers this request (response sha256 %s): nothing to sign\n", out, res.Response.SHA256)
		return nil
	}
	fmt.Fprintf(w, "signed %d digests (%d resumed from the journal) -> %s\n  response sha256 %s\n  audit %s (head %s)\n",
		signed, resumed, out, res.Response.SHA256, res.Audit, res.AuditHead)
	return nil
}

// ceremonySignResult is what ceremony sign --json prints.
type ceremonySignResult struct {
	Response        string `json:"response"`
	ResponseSHA256  string `json:"response_sha256"`
	RequestSHA256   string `json:"request_sha256"`
	AlreadyAnswered bool   `json:"already_answered"` // nothing was signed
	Signed          int    `json:"signed"`
	Resumed         int    `json:"resumed"` // taken from the journal
	Audit           string `json:"audit,omitempty"`
	AuditHead       string `json:"audit_head,omitempty"`
}

func runCeremonyTokens(c *cli.Context) error {
	args := c.Args().Slice()
	if len(args) != 0 {
		return usageErrf("ceremony tokens: takes no arguments")
	}
	modules := c.StringSlice("module")
	if cfg := c.String("relic-config"); cfg != "" {
		ms, err := signer.RelicPKCS11Modules(cfg)
		if err != nil {
			return err
		}
		modules = append(modules, ms...)
	}
	if m := os.Getenv("IMAFORGE_PKCS11_MODULE"); m != "" {
		modules = append(modules, m)
	}
	if len(modules) == 0 {
		modules = signer.InstalledPKCS11Modules()
		if len(modules) == 0 {
			return errors.New("no PKCS#11 module given (--module, --relic-config, IMAFORGE_PKCS11_MODULE) and none of the common ones is installed")
		}
	}
	w := c.App.Writer
	var errs []error
	var listed []moduleTokens
	seen := map[string]bool{}
	for _, m := range modules {
		if seen[m] {
			continue
		}
		seen[m] = true
		ts, err := signer.PKCS11Tokens(m)
		mt := moduleTokens{Module: m, Tokens: ts}
		if mt.Tokens == nil {
			mt.Tokens = []signer.TokenInfo{}
		}
		if err != nil {
			mt.Error = err.Error()
			errs = append(errs, err)
		}
		listed = append(listed, mt)
		if c.Bool("json") {
			continue
		}
		fmt.Fprintf(w, "module %s\n", m)
		if err != nil {
			fmt.Fprintf(w, "  error: %v\n", err)
			continue
		}
		if len(ts) == 0 {
			fmt.Fprintf(w, "  no initialized token\n")
		}
		for _, t := range ts {
			fmt.Fprintf(w, "  token %q serial %q (%s, %s), slot %d\n", t.Label, t.Serial, t.Manufacturer, t.Model, t.Slot)
			for _, o := range t.Objects {
				fmt.Fprintf(w, "    %-11s label %q id %s\n", o.Class, o.Label, o.ID)
			}
		}
	}
	if c.Bool("json") {
		if err := printJSON(w, listed); err != nil {
			return err
		}
	}
	return errors.Join(errs...)
}

// moduleTokens is one module of ceremony tokens --json.
type moduleTokens struct {
	Module string             `json:"module"`
	Error  string             `json:"error,omitempty"` // the module does not load
	Tokens []signer.TokenInfo `json:"tokens"`
}

func runCeremonyShow(c *cli.Context) error {
	args := c.Args().Slice()
	if len(args) != 1 {
		return usageErrf("ceremony show: want one REQUEST argument, got %d", len(args))
	}
	req, err := ceremony.ReadRequest(args[0])
	if err != nil {
		return usageErr(err)
	}
	w := c.App.Writer
	if c.Bool("json") {
		return printJSON(w, showRequest(req, !c.Bool("summary")))
	}
	printRequestSummary(w, req)
	for _, p := range req.Policy {
		fmt.Fprintf(w, "  policy fragment %s at %s, key %s, digest %s\n", p.Name, ceremony.QuotePath(p.Path), p.Key, p.Digest)
	}
	if c.Bool("summary") {
		return nil
	}
	for i := range req.Keys {
		k := &req.Keys[i]
		fmt.Fprintf(w, "key %s: %s, %s\n", k.Name, count(int64(k.Files), "file"), count(int64(len(k.Digests)), "digest"))
		if k.Paths == nil {
			fmt.Fprintf(w, "  (the request lists no paths: planned by an older imaforge)\n")
			continue
		}
		for _, f := range k.PathDigests() {
			fmt.Fprintf(w, "  %s  %s\n", f.Digest, ceremony.QuotePath(f.Path))
		}
	}
	return nil
}

// requestShow is what ceremony show --json prints: the summary, the
// policy fragments and, unless --summary, every file of each key.
type requestShow struct {
	requestSummary
	Policy []ceremony.RequestPolicy `json:"policy"`
	Paths  map[string][]fileDigest  `json:"paths,omitempty"` // key name -> its files, sorted by path
}

type fileDigest struct {
	Path   string `json:"path"`
	Digest string `json:"digest"`
}

func showRequest(req *ceremony.Request, files bool) requestShow {
	s := requestShow{requestSummary: summarizeRequest(req), Policy: req.Policy}
	if s.Policy == nil {
		s.Policy = []ceremony.RequestPolicy{}
	}
	if !files {
		return s
	}
	s.Paths = map[string][]fileDigest{}
	for i := range req.Keys {
		k := &req.Keys[i]
		fs := []fileDigest{}
		for _, f := range k.PathDigests() {
			fs = append(fs, fileDigest{Path: f.Path, Digest: f.Digest})
		}
		s.Paths[k.Name] = fs
	}
	return s
}

func runCeremonyVerify(c *cli.Context) error {
	args := c.Args().Slice()
	if len(args) != 2 {
		return usageErrf("ceremony verify: want REQUEST and RESPONSE, got %d arguments", len(args))
	}
	req, err := ceremony.ReadRequest(args[0])
	if err != nil {
		return usageErr(err)
	}
	resp, err := ceremony.ReadResponse(args[1])
	if err != nil {
		return inputErr(err)
	}
	if err := ceremony.CheckResponse(req, resp); err != nil {
		return fmt.Errorf("%s does not answer %s: %w", args[1], args[0], err)
	}
	w := c.App.Writer
	if c.Bool("json") {
		r := ceremonyVerifyResult{Request: args[0], Response: args[1], RequestSHA256: req.SHA256, ResponseSHA256: resp.SHA256, Keys: []verifiedKey{}}
		for _, k := range req.Keys {
			vk := verifiedKey{Name: k.Name, Digests: len(k.Digests), Subject: k.Subject}
			if t := resp.Key(k.Name).Token; t != nil {
				vk.Token = t.String()
			}
			r.Keys = append(r.Keys, vk)
		}
		return printJSON(w, r)
	}
	fmt.Fprintf(w, "%s answers %s\n  request sha256  %s\n  response sha256 %s\n", args[1], args[0], req.SHA256, resp.SHA256)
	for _, k := range req.Keys {
		rk := resp.Key(k.Name)
		tok := ""
		if rk.Token != nil {
			tok = ", " + rk.Token.String()
		}
		fmt.Fprintf(w, "  key %s: %d digests, each signed and verified with %s%s\n", k.Name, len(k.Digests), k.Subject, tok)
	}
	return nil
}

// ceremonyVerifyResult is what ceremony verify --json prints when the
// response answers the request (otherwise the error, as for every command).
type ceremonyVerifyResult struct {
	Request        string        `json:"request"`
	Response       string        `json:"response"`
	RequestSHA256  string        `json:"request_sha256"`
	ResponseSHA256 string        `json:"response_sha256"`
	Keys           []verifiedKey `json:"keys"` // every digest signed and verified
}

type verifiedKey struct {
	Name    string `json:"name"`
	Digests int    `json:"digests"`
	Subject string `json:"subject"`
	Token   string `json:"token,omitempty"`
}

// auditResult is what ceremony audit verify --json prints.
type auditResult struct {
	Transcript string         `json:"transcript"`
	Records    int            `json:"records"`
	Head       string         `json:"head"`
	Outcomes   map[string]int `json:"outcomes"`
	Unfinished []int          `json:"unfinished_lines"` // started, never ended
}

func runCeremonyAuditVerify(c *cli.Context) error {
	args := c.Args().Slice()
	if len(args) != 1 {
		return usageErrf("ceremony audit verify: want one TRANSCRIPT argument, got %d", len(args))
	}
	f, err := os.Open(args[0])
	if err != nil {
		return usageErr(err)
	}
	defer f.Close()
	sum, err := ceremony.VerifyAudit(f, args[0])
	if err != nil {
		return err
	}
	// A head that is gone fails before anything is printed.
	for _, h := range c.StringSlice("head") {
		if !sum.Has(h) {
			return fmt.Errorf("%s: no record has sha256 %s: records were removed since that head was written down", args[0], h)
		}
	}
	w := c.App.Writer
	if c.Bool("json") {
		r := auditResult{Transcript: args[0], Records: sum.Records, Head: sum.Head, Outcomes: map[string]int{}, Unfinished: sum.Unfinished}
		for _, o := range []string{ceremony.OutcomeComplete, ceremony.OutcomeFailed, ceremony.OutcomeDeclined} {
			r.Outcomes[o] = sum.Outcomes[o]
		}
		if r.Unfinished == nil {
			r.Unfinished = []int{}
		}
		return printJSON(w, r)
	}
	fmt.Fprintf(w, "%s: %d records, chain intact, head %s\n", args[0], sum.Records, sum.Head)
	fmt.Fprintf(w, "  ended: %d complete, %d failed, %d declined\n",
		sum.Outcomes[ceremony.OutcomeComplete], sum.Outcomes[ceremony.OutcomeFailed], sum.Outcomes[ceremony.OutcomeDeclined])
	for _, n := range sum.Unfinished {
		fmt.Fprintf(w, "  line %d: a ceremony started and never ended (killed while signing)\n", n)
	}
	return nil
}

// printOpenedKeys shows which token and key will sign for each request
// key, as configured and as the token reported itself.
func printOpenedKeys(w io.Writer, keys []ceremony.OpenedKey) {
	for _, k := range keys {
		switch {
		case k.Service != nil:
			fmt.Fprintf(w, "  key %s: %s at %s\n", k.Name, k.Ref, strings.Join(k.Service, ", "))
		case k.Token == nil:
			fmt.Fprintf(w, "  key %s: %s\n", k.Name, k.Ref)
		case k.Reported != nil:
			fmt.Fprintf(w, "  key %s: %s; token reports %s\n", k.Name, k.Token, k.Reported)
		default:
			fmt.Fprintf(w, "  key %s: %s\n", k.Name, k.Token)
		}
	}
}

// pinFlags are the --pin-env and --pin-file values: "VAR" or "FILE" for
// every token, "TOKEN=VAR" or "TOKEN=FILE" for the token TOKEN (its name
// in the relic configuration, or its label).
type pinFlags struct {
	all     signer.Passphrase
	byToken map[string]signer.Passphrase
	mu      sync.Mutex
	asked   map[string]signer.Passphrase // terminal prompts, one per token
}

func parsePINFlags(c *cli.Context) (*pinFlags, error) {
	p := &pinFlags{byToken: map[string]signer.Passphrase{}, asked: map[string]signer.Passphrase{}}
	add := func(flag, v string, src func(string) signer.Passphrase) error {
		tok, val, per := strings.Cut(v, "=")
		if !per {
			if p.all != nil {
				return usageErrf("ceremony sign: --%s %s: a PIN for every token is already given", flag, v)
			}
			p.all = src(v)
			return nil
		}
		if tok == "" || val == "" {
			return usageErrf("ceremony sign: --%s %q: want TOKEN=VALUE or VALUE", flag, v)
		}
		if p.byToken[tok] != nil {
			return usageErrf("ceremony sign: --%s %s: token %q already has a PIN source", flag, v, tok)
		}
		p.byToken[tok] = src(val)
		return nil
	}
	for _, v := range c.StringSlice("pin-env") {
		if err := add("pin-env", v, signer.PassphraseFromEnv); err != nil {
			return nil, err
		}
	}
	for _, v := range c.StringSlice("pin-file") {
		if err := add("pin-file", v, signer.PassphraseFromFile); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// global is the PIN of a key file (its passphrase): the flag for every
// token, else a prompt.
func (p *pinFlags) global() signer.Passphrase {
	if p.all != nil {
		return p.all
	}
	return signer.PassphraseFromTerminal("passphrase of the key file: ")
}

// forToken chooses a token's PIN: its own flag, else a PIN written for it
// in the relic configuration, else the flag for every token, else one
// terminal prompt naming the token.
func (p *pinFlags) forToken(id signer.TokenIdentity, configured bool) signer.Passphrase {
	if s := p.byToken[id.Token]; s != nil {
		return s
	}
	if s := p.byToken[id.Label]; id.Label != "" && s != nil {
		return s
	}
	if configured {
		return nil
	}
	if p.all != nil {
		return p.all
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if s := p.asked[id.Token]; s != nil {
		return s
	}
	s := oncePassphrase(signer.PassphraseFromTerminal(tokenPrompt(id)))
	p.asked[id.Token] = s
	return s
}

// tokenPrompt is the terminal prompt for a token's PIN: it names the token
// as configured (name, label, serial) so that an operator with several
// tokens knows which one is asked for.
func tokenPrompt(id signer.TokenIdentity) string {
	prompt := fmt.Sprintf("PIN of token %q", id.Token)
	if id.Label != "" || id.Serial != "" {
		var parts []string
		if id.Label != "" {
			parts = append(parts, fmt.Sprintf("label %q", id.Label))
		}
		if id.Serial != "" {
			parts = append(parts, "serial "+id.Serial)
		}
		prompt += " (" + strings.Join(parts, ", ") + ")"
	}
	return prompt + fmt.Sprintf(" for key %q: ", id.Key)
}

// oncePassphrase asks src once and hands out copies of the answer.
func oncePassphrase(src signer.Passphrase) signer.Passphrase {
	var once sync.Once
	var pin []byte
	var err error
	return func() ([]byte, error) {
		once.Do(func() { pin, err = src() })
		return append([]byte(nil), pin...), err
	}
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
// --signature-cache (or --cache) flags. The returned report prints the
// cache's use; done stores what the build signed (call it after the build).
func signatureFlags(c *cli.Context, m *manifest.Manifest, opts *pipeline.Options) (report func(io.Writer), done func() error, err error) {
	report = func(io.Writer) {}
	done = func() error { return nil }
	if files := c.StringSlice("signatures"); len(files) > 0 {
		keys, err := pipeline.SignatureKeys(m, files)
		if err != nil {
			if isManifestError(err) {
				return nil, nil, usageErr(err)
			}
			return nil, nil, err
		}
		opts.Keys = keys
	}
	dir := c.String("signature-cache")
	shared := dir == "" && c.String("cache") != ""
	if shared {
		dir = c.String("cache") // the same layout: DIR/<certificate sha256>/...
	}
	if dir != "" {
		cache, err := pipeline.OpenSignatureCache(dir)
		if err != nil && shared {
			// --cache: a cache that cannot be used is a warning
			fmt.Fprintf(c.App.ErrWriter, "imaforge: warning: %v; signing without it\n", err)
			return report, done, nil
		}
		if err != nil {
			return nil, nil, err
		}
		if shared {
			cache.Warn = func(msg string) { fmt.Fprintf(c.App.ErrWriter, "imaforge: warning: %s\n", msg) }
		}
		keys, err := pipeline.CacheKeys(m, cache, opts.Keys, func(k *manifest.Key) (pipeline.Key, error) {
			return pipeline.LoadKey(k, pipeline.DefaultKeyOptions(k, opts.Logf), 0)
		})
		if err != nil {
			return nil, nil, usageErr(err)
		}
		opts.Keys = keys
		done = cache.Close
		report = func(w io.Writer) {
			hits, misses := cache.Stats()
			fmt.Fprintf(w, "  signature cache %s: %d reused, %d new\n", dir, hits, misses)
		}
	}
	return report, done, nil
}
