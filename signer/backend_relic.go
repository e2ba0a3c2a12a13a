package signer

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	relicconfig "github.com/sassoftware/relic/v8/config"
	"github.com/sassoftware/relic/v8/lib/passprompt"
	"github.com/sassoftware/relic/v8/signers/sigerrors"
	"github.com/sassoftware/relic/v8/token"

	"github.com/imaforge/imaforge/signer/keyref"
)

// The prefixes of key references besides a key file path (package keyref
// parses references; these name its prefixes for callers of signer).
const (
	RelicScheme  = keyref.RelicPrefix  // "relic:NAME": a key of a relic configuration file
	PKCS11Scheme = keyref.PKCS11Prefix // an RFC 7512 PKCS#11 URI
)

// ErrToken is matched by errors about opening or using a key token: a
// missing token or key, a provider that does not load, a failed operation.
// A wrong or missing PIN matches ErrPassphrase instead.
var ErrToken = errors.New("key token unavailable")

// TokenError is an error about a key held in a token.
type TokenError struct {
	Ref    string // the key reference as written ("relic:ima")
	Config string // the relic configuration file, if any
	Op     string // "read config", "open token", "login", "find key", "sign"
	Err    error
	pin    bool
}

func (e *TokenError) Error() string {
	where := e.Ref
	if e.Config != "" {
		where += " (relic config " + e.Config + ")"
	}
	return fmt.Sprintf("key %s: %s: %v", where, e.Op, e.Err)
}

// Unwrap returns the cause and ErrToken, or ErrPassphrase for PIN problems.
func (e *TokenError) Unwrap() []error {
	if e.pin {
		return []error{ErrPassphrase, e.Err}
	}
	return []error{ErrToken, e.Err}
}

// OpenOptions configure Open.
type OpenOptions struct {
	// PIN gives the token PIN (or a key file's passphrase): from an
	// environment variable, a file or the terminal (PassphraseFrom*). When
	// nil, a PIN written in the relic configuration (pin, PinFile) is used,
	// and without one a token needing a PIN fails.
	PIN Passphrase
	// RelicConfig is the relic configuration file "relic:NAME" keys are
	// read from; other references do not use it.
	RelicConfig string
	// Sessions is how many token sessions to open so that signatures are
	// made in parallel (PKCS#11: one session per concurrent signature).
	// Zero means one.
	Sessions int
	// Warn receives warnings; nil drops them.
	Warn func(msg string)
	// KeyOnly lets OpenSigner return a Signer without a certificate
	// (NewKeyOnly: the key id from the public key) when no certificate
	// file is given and the token or relic configuration has none.
	KeyOnly bool
	// TokenPIN, when not nil, chooses the PIN source of each token in place
	// of PIN: it is called with the token's identity and whether the relic
	// configuration writes a PIN for it (the token's pin); a nil result keeps
	// that configured PIN (or PIN when there is none).
	TokenPIN func(id TokenIdentity, configured bool) Passphrase
}

// TokenIdentity names the token and key behind a TokenKey as configured,
// for audit transcripts. It holds no secret.
type TokenIdentity struct {
	Config   string `json:"config,omitempty"`   // relic configuration file
	Token    string `json:"token"`              // token name in the configuration
	Type     string `json:"type"`               // pkcs11, file, scdaemon, aws, azure, gcloud
	Provider string `json:"provider,omitempty"` // PKCS#11 module
	Label    string `json:"label,omitempty"`    // token label
	Serial   string `json:"serial,omitempty"`   // token serial number
	Key      string `json:"key"`                // key name in the configuration
	KeyLabel string `json:"key_label,omitempty"`
	KeyID    string `json:"key_id,omitempty"` // CKA_ID or equivalent, hex
}

func (id TokenIdentity) String() string {
	s := fmt.Sprintf("%s token %q", id.Type, id.Token)
	if id.Label != "" {
		s += fmt.Sprintf(" (label %q)", id.Label)
	}
	if id.Serial != "" {
		s += fmt.Sprintf(" (serial %s)", id.Serial)
	}
	s += fmt.Sprintf(" key %q", id.Key)
	if id.KeyID != "" {
		s += " id " + id.KeyID
	}
	return s
}

// TokenKey is a crypto.Signer for a key held in a token, spread over one or
// more sessions: each Sign takes a free session, so up to Sessions
// signatures are made at once. It is safe for concurrent use. Close ends the
// sessions.
type TokenKey struct {
	id       TokenIdentity
	pub      crypto.PublicKey
	cert     *x509.Certificate
	sessions int
	pool     chan token.Key
	tokens   []token.Token
	reported *TokenInfo

	closeOnce sync.Once
	closeErr  error
}

// Public returns the key's public key.
func (k *TokenKey) Public() crypto.PublicKey { return k.pub }

// Sign signs digest in a free session. opts select RSA PKCS#1 v1.5 (a hash)
// or PSS, as for any crypto.Signer.
func (k *TokenKey) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	h, ok := <-k.pool
	if !ok {
		return nil, &TokenError{Ref: RelicScheme + k.id.Key, Config: k.id.Config, Op: "sign", Err: errors.New("key closed")}
	}
	defer func() { k.pool <- h }()
	sig, err := h.Sign(rand, digest, opts)
	if err != nil {
		return nil, &TokenError{Ref: RelicScheme + k.id.Key, Config: k.id.Config, Op: "sign", Err: err}
	}
	return sig, nil
}

// Identity describes the token and key.
func (k *TokenKey) Identity() TokenIdentity { return k.id }

// Reported returns what a PKCS#11 token reported about itself when the key
// was opened (its serial number, label, maker, model), or nil.
func (k *TokenKey) Reported() *TokenInfo { return k.reported }

// Sessions returns the number of signatures that can be made at once.
func (k *TokenKey) Sessions() int { return k.sessions }

// Certificate returns the certificate the configuration or the token holds
// for the key, or nil.
func (k *TokenKey) Certificate() *x509.Certificate { return k.cert }

// Close ends every session. Signing afterwards is an error.
func (k *TokenKey) Close() error {
	k.closeOnce.Do(func() {
		// Wait for in-flight signatures: take every handle back.
		for range cap(k.pool) {
			<-k.pool
		}
		close(k.pool)
		for _, t := range k.tokens {
			if err := t.Close(); err != nil && k.closeErr == nil {
				k.closeErr = err
			}
		}
	})
	return k.closeErr
}

// Open opens the private key ref names (see keyref.Parse) and returns it
// with the certificate the key's configuration or token holds for it (nil
// when there is none, always nil for key files):
//
//   - keyref.Relic "relic:NAME": key NAME of the relic configuration file
//     opts.RelicConfig (the returned signer is a *TokenKey);
//   - keyref.PKCS11 "pkcs11:...": an RFC 7512 PKCS#11 URI (a *TokenKey); the
//     module is the URI's module-path, else $IMAFORGE_PKCS11_MODULE;
//   - keyref.File: a private key file (LoadPrivateKey), opts.PIN being its
//     passphrase.
//
// A PIN comes from opts.PIN (environment, file, terminal) and is handed to
// relic's login callback; it is asked for once, and a PIN the token refuses
// is an error matching ErrPassphrase (never a retry loop). Relative paths in
// a relic configuration (KeyFile, X509Certificate) are taken relative to the
// configuration file. The same backends serve IMA keys and CA keys; a
// *TokenKey holds sessions until it is closed.
func Open(ctx context.Context, ref keyref.Ref, opts *OpenOptions) (crypto.Signer, *x509.Certificate, error) {
	if opts == nil {
		opts = &OpenOptions{}
	}
	switch ref.Scheme {
	case keyref.Relic:
		if opts.RelicConfig == "" {
			return nil, nil, &TokenError{Ref: ref.Raw, Op: "read config", Err: errors.New("a relic: key needs a relic configuration file (relic_config, --relic-config)")}
		}
		cfg, err := relicconfig.ReadFile(opts.RelicConfig)
		if err != nil {
			return nil, nil, &TokenError{Ref: ref.Raw, Config: opts.RelicConfig, Op: "read config", Err: err}
		}
		resolveRelicPaths(cfg, filepath.Dir(opts.RelicConfig))
		return openRelic(ctx, ref.Raw, opts.RelicConfig, cfg, ref.Name, opts)
	case keyref.PKCS11:
		cfg, name, err := pkcs11URIConfig(ref.PKCS11)
		if err != nil {
			return nil, nil, &TokenError{Ref: ref.Raw, Op: "parse PKCS#11 URI", Err: err}
		}
		return openRelic(ctx, ref.Raw, "", cfg, name, opts)
	case keyref.File:
		key, err := LoadPrivateKey(ref.Path, &KeyOptions{Passphrase: opts.PIN, Warn: opts.Warn})
		return key, nil, err
	case keyref.Remote:
		return nil, nil, &TokenError{Ref: ref.Raw, Op: "open", Err: errors.New("a remote: key (a signing service's) signs image files only, through build (package service)")}
	}
	return nil, nil, fmt.Errorf("%w: %q", keyref.ErrInvalid, ref.Raw)
}

// OpenKey is Open of keyref.Parse(ref) with relicConfig as
// opts.RelicConfig.
func OpenKey(ref, relicConfig string, opts *OpenOptions) (crypto.Signer, *x509.Certificate, error) {
	r, err := keyref.Parse(ref)
	if err != nil {
		return nil, nil, &TokenError{Ref: keyref.Redact(ref), Op: "parse key reference", Err: err}
	}
	o := OpenOptions{}
	if opts != nil {
		o = *opts
	}
	o.RelicConfig = relicConfig
	return Open(context.Background(), r, &o)
}

// OpenSigner opens the key ref names (Open) and returns the Signer of it
// with its certificate: the one in certPath (PEM or DER; of several, the
// key's), else the one the token or relic configuration holds for it, else,
// with opts.KeyOnly, none (NewKeyOnly). Close the Signer to end a token key's
// sessions.
func OpenSigner(ctx context.Context, ref keyref.Ref, certPath string, opts *OpenOptions) (*Signer, error) {
	if opts == nil {
		opts = &OpenOptions{}
	}
	if ref.Scheme == keyref.File {
		if certPath != "" {
			return LoadSigner(ref.Path, certPath, &KeyOptions{Passphrase: opts.PIN, Warn: opts.Warn})
		}
		if !opts.KeyOnly {
			return nil, &FileError{Path: ref.Path, Op: "load signing key", Err: errors.New("a key file needs its certificate")}
		}
		key, err := LoadPrivateKey(ref.Path, &KeyOptions{Passphrase: opts.PIN, Warn: opts.Warn})
		if err != nil {
			return nil, err
		}
		s, err := NewKeyOnly(key)
		if err != nil {
			return nil, &FileError{Path: ref.Path, Op: "load signing key", Err: err}
		}
		return s, nil
	}
	var cert *x509.Certificate
	if certPath != "" {
		c, err := LoadCertificate(certPath)
		if err != nil {
			return nil, err
		}
		cert = c
	}
	priv, tokCert, err := Open(ctx, ref, opts)
	if err != nil {
		return nil, err
	}
	if cert == nil {
		cert = tokCert
	}
	closeKey := func() {
		if c, ok := priv.(io.Closer); ok {
			c.Close()
		}
	}
	if cert == nil && opts.KeyOnly {
		s, err := NewKeyOnly(priv)
		if err != nil {
			closeKey()
			return nil, fmt.Errorf("%s: %w", ref.Raw, err)
		}
		return s, nil
	}
	if cert == nil {
		closeKey()
		return nil, &TokenError{Ref: ref.Raw, Config: opts.RelicConfig, Op: "find certificate", Err: errors.New("neither a certificate file nor one in the token or relic configuration")}
	}
	s, err := New(priv, cert)
	if err != nil {
		closeKey()
		return nil, fmt.Errorf("%s: %w", ref.Raw, err)
	}
	return s, nil
}

// RelicPKCS11Modules returns the PKCS#11 modules (providers) the pkcs11
// tokens of a relic configuration file name.
func RelicPKCS11Modules(relicConfig string) ([]string, error) {
	cfg, err := relicconfig.ReadFile(relicConfig)
	if err != nil {
		return nil, &TokenError{Ref: relicConfig, Config: relicConfig, Op: "read config", Err: err}
	}
	var out []string
	for _, t := range cfg.Tokens {
		if t.Type == "pkcs11" && t.Provider != "" && !slices.Contains(out, t.Provider) {
			out = append(out, t.Provider)
		}
	}
	slices.Sort(out)
	return out, nil
}

// resolveRelicPaths makes the file paths of a relic configuration absolute,
// relative to the configuration's directory.
func resolveRelicPaths(cfg *relicconfig.Config, dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	for _, k := range cfg.Keys {
		abs(&k.KeyFile)
		abs(&k.X509Certificate)
		abs(&k.PgpCertificate)
	}
}

// concurrentTypes are token types whose key handle may sign from several
// goroutines at once (Go-held keys, HTTP KMS clients). PKCS#11 handles are
// one session each; scdaemon is one agent connection.
var concurrentTypes = map[string]bool{"file": true, "aws": true, "azure": true, "gcloud": true}

func openRelic(ctx context.Context, ref, cfgPath string, cfg *relicconfig.Config, keyName string, opts *OpenOptions) (crypto.Signer, *x509.Certificate, error) {
	terr := func(op string, err error) error {
		e := &TokenError{Ref: ref, Config: cfgPath, Op: op, Err: err}
		var pinErr sigerrors.PinIncorrectError
		if errors.As(err, &pinErr) || errors.Is(err, ErrPassphrase) ||
			strings.Contains(err.Error(), "PIN required") {
			e.pin = true
		}
		return e
	}
	keyConf, err := cfg.GetKey(keyName)
	if err != nil {
		return nil, nil, terr("find key", err)
	}
	tokConf, err := cfg.GetToken(keyConf.Token)
	if err != nil {
		return nil, nil, terr("find token", err)
	}
	id := TokenIdentity{
		Config: cfgPath, Token: keyConf.Token, Type: tokConf.Type, Provider: tokConf.Provider,
		Label: tokConf.Label, Serial: tokConf.Serial, Key: keyName, KeyLabel: keyConf.Label, KeyID: keyConf.ID,
	}
	pin := opts.PIN
	if opts.TokenPIN != nil {
		if p := opts.TokenPIN(id, tokConf.Pin != nil); p != nil {
			pin = p
		} else if tokConf.Pin != nil {
			pin = nil
		}
	}
	var getter *pinGetter
	if pin != nil {
		// Our PIN source wins over one written in the configuration.
		tokConf.Pin = nil
		tokConf.UseKeyring = false
		getter = &pinGetter{src: pin}
	} else if tokConf.Pin != nil && opts.Warn != nil {
		opts.Warn(fmt.Sprintf("token %q: using the PIN written in %s", keyConf.Token, cfgPath))
	}

	n := max(opts.Sessions, 1)
	if !concurrentTypes[tokConf.Type] && tokConf.Type != "pkcs11" {
		n = 1
	}
	k := &TokenKey{id: id, sessions: n, pool: make(chan token.Key, n)}
	fail := func(err error) (crypto.Signer, *x509.Certificate, error) {
		for _, t := range k.tokens {
			t.Close()
		}
		return nil, nil, err
	}
	handles := 1
	if tokConf.Type == "pkcs11" {
		handles = n // one session each
	}
	var first token.Key
	for i := range handles {
		var prompt passprompt.PasswordGetter // nil: none
		if getter != nil {
			prompt = getter.fresh()
		}
		tok, err := openToken(cfg, keyConf.Token, prompt)
		if err != nil {
			if tokConf.Type == "pkcs11" {
				err = explainPKCS11(tokConf.Provider, err)
			}
			return fail(terr("open token "+fmt.Sprintf("%q", keyConf.Token), err))
		}
		k.tokens = append(k.tokens, tok)
		key, err := tok.GetKey(ctx, keyName)
		if err != nil {
			if _, ok := err.(sigerrors.KeyNotFoundError); ok {
				err = fmt.Errorf("no key with label %q id %q in the token", keyConf.Label, keyConf.ID)
			}
			return fail(terr("find key", err))
		}
		if i == 0 {
			first = key
			k.pub = key.Public()
			if id.KeyID == "" {
				if kid := key.GetID(); len(kid) > 0 {
					k.id.KeyID = hex.EncodeToString(kid)
				}
			}
		}
		k.pool <- key
	}
	for range n - handles {
		k.pool <- first // a concurrency-safe handle, shared
	}
	if tokConf.Type == "pkcs11" {
		k.reported = reportedToken(tokConf.Provider, tokConf.Label, tokConf.Serial)
	}

	// The certificate: the configuration's file, else the token's.
	switch {
	case keyConf.X509Certificate != "":
		c, err := LoadCertificate(keyConf.X509Certificate)
		if err != nil {
			return fail(terr("read certificate", err))
		}
		k.cert = c
	case len(first.Certificate()) > 0:
		if cs, err := x509.ParseCertificates(first.Certificate()); err == nil && len(cs) > 0 {
			k.cert = cs[0]
		}
	}
	return k, k.cert, nil
}

// explainPKCS11 adds to relic's error opening a PKCS#11 token what the
// operator needs: why the module does not load, or which tokens exist when
// none matched.
func explainPKCS11(module string, err error) error {
	if lerr := moduleLoadError(module); lerr != nil {
		return lerr
	}
	if strings.Contains(err.Error(), "No token found") || strings.Contains(err.Error(), "Multiple tokens matched") {
		ts, lerr := PKCS11Tokens(module)
		if lerr != nil {
			return fmt.Errorf("%w (listing the tokens: %v)", err, lerr)
		}
		var b strings.Builder
		for _, t := range ts {
			fmt.Fprintf(&b, "\n  %s", t)
		}
		if len(ts) == 0 {
			b.WriteString(" none")
		}
		return fmt.Errorf("%w; tokens of %s:%s", err, module, b.String())
	}
	return err
}

// pinGetter feeds relic's login callback (passprompt.PasswordGetter) from a
// Passphrase, read once. relic asks again after a refused PIN; answering
// that with an error turns a wrong PIN into a failure instead of a loop.
type pinGetter struct {
	src  Passphrase
	once sync.Once
	pin  string
	err  error
}

func (g *pinGetter) get() (string, error) {
	g.once.Do(func() {
		b, err := getPassphrase(g.src)
		if err != nil {
			g.err = err
			return
		}
		if len(b) == 0 {
			g.err = fmt.Errorf("%w: empty PIN", ErrPassphrase)
			return
		}
		g.pin = string(b)
		clear(b)
	})
	return g.pin, g.err
}

// fresh returns a per-login view answering once.
func (g *pinGetter) fresh() *pinOnce { return &pinOnce{g: g} }

type pinOnce struct {
	g     *pinGetter
	asked bool
}

func (p *pinOnce) GetPasswd(prompt string) (string, error) {
	if p.asked {
		return "", fmt.Errorf("%w: the token refused the PIN", ErrPassphrase)
	}
	p.asked = true
	return p.g.get()
}

// pkcs11URIConfig turns a parsed RFC 7512 URI into a one-token, one-key
// relic configuration. The key is named "key" in it.
func pkcs11URIConfig(u *keyref.PKCS11URI) (*relicconfig.Config, string, error) {
	module := u.ModulePath
	if module == "" {
		module = os.Getenv("IMAFORGE_PKCS11_MODULE")
	}
	if module == "" {
		return nil, "", errors.New("no module-path query attribute (or IMAFORGE_PKCS11_MODULE)")
	}
	cfg := &relicconfig.Config{}
	t := cfg.NewToken("pkcs11")
	t.Type = "pkcs11"
	t.Provider = module
	t.Label = u.Token
	t.Serial = u.Serial
	k := cfg.NewKey("key")
	k.SetToken(t)
	k.Label = u.Object
	k.ID = u.IDHex()
	return cfg, "key", nil
}
