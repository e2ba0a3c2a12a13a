package main

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/internal/boundedfile"
	"github.com/imaforge/imaforge/pki"
	"github.com/imaforge/imaforge/signer"
)

// imaforge pki: create and operate the manufacturer -> owner -> IMA
// certificate hierarchy (see docs/pki.md). The logic is in package pki.

func init() {
	// Flag values are per instance: each command gets its own.
	keyOut := func() []cli.Flag {
		return []cli.Flag{
			&cli.StringFlag{Name: "key-type", Value: string(pki.DefaultKeyType), Usage: "new key: rsa2048, rsa3072, rsa4096, p256 or p384 (Debian's 6.1 kernel verifies RSA only)"},
			&cli.StringFlag{Name: "passphrase-env", Usage: "encrypt the new private key with the passphrase in environment variable `VAR`"},
			&cli.StringFlag{Name: "passphrase-file", Usage: "encrypt the new private key with the first line of `FILE`"},
			&cli.BoolFlag{Name: "force", Usage: "replace existing output files"},
		}
	}
	caIn := func() []cli.Flag {
		return []cli.Flag{
			&cli.StringFlag{Name: "ca", Usage: "issuing CA certificate `CA.pem` (PEM or DER)", Required: true},
			&cli.StringFlag{Name: "ca-key", Usage: "the CA's private `KEY`: " + keyRefUsage, Required: true},
			relicConfigFlag(),
			&cli.StringFlag{Name: "ca-passphrase-env", Usage: "read the CA key's passphrase from environment variable `VAR`"},
			&cli.StringFlag{Name: "ca-passphrase-file", Usage: "read the CA key's passphrase from the first line of `FILE`"},
		}
	}
	trustIn := func() []cli.Flag {
		return []cli.Flag{
			&cli.StringSliceFlag{Name: "root", Usage: "trusted manufacturer root `CERT` (PEM or DER; repeatable)", Required: true},
			&cli.StringSliceFlag{Name: "intermediate", Usage: "owner CA (or other) `CERT` (repeatable)"},
			&cli.StringSliceFlag{Name: "crl", Usage: "`CRL` of a CA (PEM or DER; repeatable)"},
			revocationFlag,
		}
	}
	register(&cli.Command{
		Name:  "pki",
		Usage: "create and operate the manufacturer, owner and IMA signing certificates",
		Subcommands: []*cli.Command{
			{
				Name:  "init",
				Usage: "create a manufacturer root CA: DIR/root.key (0600), root.der, root.pem and an empty root.crl",
				Flags: append([]cli.Flag{
					&cli.StringFlag{Name: "name", Usage: "subject common name, e.g. \"ACME Manufacturing\"", Required: true},
					&cli.StringFlag{Name: "org", Usage: "subject organization (optional)"},
					&cli.StringFlag{Name: "out", Usage: "output `DIR`", Required: true},
					&cli.IntFlag{Name: "days", Value: pki.DefaultRootDays, Usage: "validity in days"},
				}, keyOut()...),
				Action: pkiInit,
			},
			{
				Name:  "issue",
				Usage: "issue an owner CA (signed by a root) or an IMA signing certificate (signed by a root or an owner CA)",
				Flags: append(append([]cli.Flag{
					&cli.StringFlag{Name: "role", Usage: "owner-ca or ima", Required: true},
					&cli.StringFlag{Name: "name", Usage: "subject common name", Required: true},
					&cli.StringFlag{Name: "org", Usage: "subject organization (optional)"},
					&cli.StringFlag{Name: "out", Usage: "output `DIR`", Required: true},
					&cli.StringFlag{Name: "basename", Usage: "output file names `BASE`.key/.der/.pem (default: owner-ca, or the name in lowercase for ima)"},
					&cli.IntFlag{Name: "days", Usage: "validity in days (default: owner-ca 1095, ima 365)"},
					&cli.StringSliceFlag{Name: "scope", Usage: "image path glob the key may sign, e.g. '/opt/acme/**' (repeatable; default: unrestricted)"},
					&cli.StringFlag{Name: "pubkey", Usage: "certify this existing public key or key file `FILE` instead of generating one (PEM/DER certificate, public or private key)"},
				}, caIn()...), keyOut()...),
				Action: pkiIssue,
			},
			{
				Name:  "revoke",
				Usage: "add certificates to their CA's CRL (created if missing; the CRL number grows by one)",
				Flags: append([]cli.Flag{
					&cli.StringSliceFlag{Name: "cert", Usage: "certificate `CERT` to revoke (repeatable)", Required: true},
					&cli.StringFlag{Name: "crl", Usage: "CRL `FILE` to update (default: the CA certificate's path with .crl)"},
					&cli.StringFlag{Name: "reason", Value: "unspecified", Usage: "RFC 5280 reason: keyCompromise, cACompromise, superseded, cessationOfOperation, affiliationChanged, privilegeWithdrawn, unspecified"},
					&cli.IntFlag{Name: "crl-days", Value: pki.DefaultCRLDays, Usage: "days until the CRL's nextUpdate"},
				}, caIn()...),
				Action: pkiRevoke,
			},
			{
				Name:  "crl",
				Usage: "re-sign a CA's CRL with a new number and dates (create an empty one if missing)",
				Flags: append([]cli.Flag{
					&cli.StringFlag{Name: "crl", Usage: "CRL `FILE` (default: the CA certificate's path with .crl)"},
					&cli.IntFlag{Name: "crl-days", Value: pki.DefaultCRLDays, Usage: "days until the CRL's nextUpdate"},
				}, caIn()...),
				Action: pkiCRL,
			},
			{
				Name:  "export",
				Usage: "write what a device loads: DER certificates in load order, load-keys.sh, trusted-keys.pem and the kernel blacklist of revoked certificates",
				Flags: append([]cli.Flag{
					&cli.StringFlag{Name: "out", Usage: "output `DIR`", Required: true},
					&cli.StringSliceFlag{Name: "cert", Usage: "IMA signing `CERT` to load on the device (repeatable)"},
				}, trustIn()...),
				Action: pkiExport,
			},
			{
				Name:      "verify",
				Usage:     "check an IMA signing certificate as `imaforge build` does (chain, dates now, revocation, key usage); exit 1 if it fails",
				ArgsUsage: "CERT",
				Flags: append([]cli.Flag{
					&cli.StringFlag{Name: "key", Usage: "also check that private key `KEY` belongs to CERT"},
					&cli.StringFlag{Name: "passphrase-env", Usage: "the key's passphrase is in environment variable `VAR`"},
					&cli.StringFlag{Name: "passphrase-file", Usage: "the key's passphrase is the first line of `FILE`"},
					&cli.StringSliceFlag{Name: "path", Usage: "also check that the key may sign image path `P` (repeatable)"},
					&cli.StringFlag{Name: "at", Usage: "check validity at `TIME` (RFC 3339, or YYYY-MM-DD for midnight UTC) instead of now"},
				}, trustIn()...),
				Action: pkiVerify,
			},
		},
	})
}

// newKeyOptions reads the passphrase that encrypts a new private key (none:
// the key is written unencrypted, mode 0600).
func newKeyOptions(c *cli.Context) (pki.KeyFileOptions, error) {
	pass, err := passphrase(c, "", "")
	if err != nil || pass == nil {
		return pki.KeyFileOptions{}, err
	}
	p, err := pass()
	if err != nil {
		return pki.KeyFileOptions{}, err
	}
	if len(p) == 0 {
		return pki.KeyFileOptions{}, usageErrf("the passphrase for the new key is empty")
	}
	return pki.KeyFileOptions{Passphrase: p}, nil
}

func keyType(c *cli.Context) (pki.KeyType, error) {
	kt, err := pki.ParseKeyType(c.String("key-type"))
	if err != nil {
		return "", usageErr(fmt.Errorf("--key-type: %w", err))
	}
	return kt, nil
}

func days(c *cli.Context, name string) (time.Duration, error) {
	d := c.Int(name)
	if d < 0 {
		return 0, usageErrf("--%s must not be negative", name)
	}
	return time.Duration(d) * pki.Day, nil
}

// loadIssuer opens the CA of --ca and --ca-key (any key reference: a file,
// relic:NAME, a pkcs11: URI). Call the returned function when done: it ends
// a token key's sessions.
func loadIssuer(c *cli.Context) (pki.Issuer, func(), error) {
	cert, err := signer.LoadCertificate(c.String("ca"))
	if err != nil {
		return pki.Issuer{}, nil, err
	}
	key, err := openKey(c, "ca-key", "ca-")
	if err != nil {
		return pki.Issuer{}, nil, err
	}
	done := func() {
		if cl, ok := key.(io.Closer); ok {
			cl.Close()
		}
	}
	return pki.Issuer{Cert: cert, Key: key}, done, nil
}

func describeCert(cert *x509.Certificate) string {
	id := imasig.KeyID(cert)
	return fmt.Sprintf("%s, serial %x, IMA key id %x, valid %s to %s",
		cert.Subject, cert.SerialNumber, id[:], cert.NotBefore.UTC().Format(time.RFC3339), cert.NotAfter.UTC().Format(time.RFC3339))
}

func pkiInit(c *cli.Context) error {
	kt, err := keyType(c)
	if err != nil {
		return err
	}
	life, err := days(c, "days")
	if err != nil {
		return err
	}
	keyOpts, err := newKeyOptions(c)
	if err != nil {
		return err
	}
	root, err := pki.NewRoot(pki.Request{Name: c.String("name"), Organization: c.String("org"), KeyType: kt, Lifetime: life}, pki.Options{})
	if err != nil {
		return err
	}
	dir := c.String("out")
	paths, err := pki.WriteIssued(dir, "root", root, keyOpts, c.Bool("force"))
	if err != nil {
		return err
	}
	crlPath := filepath.Join(dir, "root.crl")
	if err := writeNewCRL(crlPath, pki.Issuer{Cert: root.Cert, Key: root.Key}, 0, c.Bool("force")); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "root CA: %s\nwrote %s, %s\n", describeCert(root.Cert), strings.Join(paths, ", "), crlPath)
	return nil
}

// writeNewCRL writes the first (empty) CRL of a new CA.
func writeNewCRL(path string, ca pki.Issuer, validity time.Duration, force bool) error {
	if _, err := os.Lstat(path); err == nil && !force {
		return fmt.Errorf("%s: %w", path, pki.ErrExists)
	}
	crl, _, err := pki.UpdateCRL(nil, ca, pki.CRLUpdate{Validity: validity}, pki.Options{})
	if err != nil {
		return err
	}
	return pki.WriteCRL(path, crl)
}

func pkiIssue(c *cli.Context) error {
	role, err := pki.ParseRole(c.String("role"))
	if err != nil || role == pki.RoleRoot {
		return usageErrf("--role: want owner-ca or ima (a root is made by `imaforge pki init`)")
	}
	kt, err := keyType(c)
	if err != nil {
		return err
	}
	life, err := days(c, "days")
	if err != nil {
		return err
	}
	var scope *pki.Scope
	if pats := c.StringSlice("scope"); len(pats) > 0 {
		if scope, err = pki.NewScope(pats); err != nil {
			return usageErr(fmt.Errorf("--scope: %w", err))
		}
	}
	req := pki.Request{Role: role, Name: c.String("name"), Organization: c.String("org"), KeyType: kt, Lifetime: life, Scope: scope}
	if p := c.String("pubkey"); p != "" {
		if req.PublicKey, err = loadPublicKey(p); err != nil {
			return err
		}
	}
	keyOpts, err := newKeyOptions(c)
	if err != nil {
		return err
	}
	issuer, closeCA, err := loadIssuer(c)
	if err != nil {
		return err
	}
	defer closeCA()
	iss, err := pki.Issue(req, issuer, pki.Options{})
	if err != nil {
		return err
	}
	base := c.String("basename")
	if base == "" {
		base = "owner-ca"
		if role == pki.RoleIMA {
			base = pki.Slug(req.Name)
		}
	}
	dir := c.String("out")
	paths, err := pki.WriteIssued(dir, base, iss, keyOpts, c.Bool("force"))
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "%s: %s\n", role, describeCert(iss.Cert))
	if scope != nil {
		fmt.Fprintf(c.App.Writer, "scope: %s\n", scope)
	}
	if iss.Capped {
		fmt.Fprintf(c.App.ErrWriter, "imaforge: warning: validity shortened to the issuer's expiry %s\n", iss.Cert.NotAfter.UTC().Format(time.RFC3339))
	}
	if role == pki.RoleOwnerCA {
		crlPath := filepath.Join(dir, base+".crl")
		if err := writeNewCRL(crlPath, pki.Issuer{Cert: iss.Cert, Key: iss.Key}, 0, c.Bool("force")); err != nil {
			if iss.Key == nil {
				fmt.Fprintf(c.App.ErrWriter, "imaforge: warning: no CRL written (the key is not here: run `imaforge pki crl` where it is)\n")
			} else {
				return err
			}
		} else {
			paths = append(paths, crlPath)
		}
	}
	fmt.Fprintf(c.App.Writer, "wrote %s\n", strings.Join(paths, ", "))
	return nil
}

// loadPublicKey reads a public key from a certificate, a PEM/DER public key
// or an (unencrypted) private key file.
func loadPublicKey(path string) (any, error) {
	if certs, err := signer.LoadCertificates(path); err == nil && len(certs) == 1 {
		return certs[0].PublicKey, nil
	}
	data, err := boundedfile.ReadFile(path, boundedfile.KeyLimit)
	if err != nil {
		return nil, err
	}
	if pub, err := parsePublicKey(data); err == nil {
		return pub, nil
	}
	key, err := signer.ParsePrivateKey(data, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: not a certificate, public key or unencrypted private key: %w", path, err)
	}
	return key.Public(), nil
}

func parsePublicKey(data []byte) (any, error) {
	if b, _ := pemDecode(data); b != nil {
		data = b
	}
	return x509.ParsePKIXPublicKey(data)
}

func crlPathFor(c *cli.Context) string {
	if p := c.String("crl"); p != "" {
		return p
	}
	ca := c.String("ca")
	return strings.TrimSuffix(ca, filepath.Ext(ca)) + ".crl"
}

func readCRLIfAny(path string) (*x509.RevocationList, error) {
	crl, err := pki.ReadCRL(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return crl, err
}

func pkiRevoke(c *cli.Context) error {
	reason, err := pki.ParseReason(c.String("reason"))
	if err != nil {
		return usageErr(fmt.Errorf("--reason: %w", err))
	}
	validity, err := days(c, "crl-days")
	if err != nil {
		return err
	}
	var certs []*x509.Certificate
	for _, p := range c.StringSlice("cert") {
		cs, err := signer.LoadCertificates(p)
		if err != nil {
			return err
		}
		certs = append(certs, cs...)
	}
	issuer, closeCA, err := loadIssuer(c)
	if err != nil {
		return err
	}
	defer closeCA()
	path := crlPathFor(c)
	prev, err := readCRLIfAny(path)
	if err != nil {
		return err
	}
	crl, added, err := pki.UpdateCRL(prev, issuer, pki.CRLUpdate{Revoke: certs, Reason: reason, Validity: validity}, pki.Options{})
	if err != nil {
		return err
	}
	if err := pki.WriteCRL(path, crl); err != nil {
		return err
	}
	for _, cert := range certs {
		fmt.Fprintf(c.App.Writer, "revoked %s\n  kernel blacklist: %s\n", describeCert(cert), strings.Join(pki.BlacklistEntries(cert), " "))
	}
	fmt.Fprintf(c.App.Writer, "wrote %s: CRL number %v, %d new, %d revoked in all, next update %s\n",
		path, crl.Number, added, len(crl.RevokedCertificateEntries), crl.NextUpdate.UTC().Format(time.RFC3339))
	return nil
}

func pkiCRL(c *cli.Context) error {
	validity, err := days(c, "crl-days")
	if err != nil {
		return err
	}
	issuer, closeCA, err := loadIssuer(c)
	if err != nil {
		return err
	}
	defer closeCA()
	path := crlPathFor(c)
	prev, err := readCRLIfAny(path)
	if err != nil {
		return err
	}
	crl, _, err := pki.UpdateCRL(prev, issuer, pki.CRLUpdate{Validity: validity}, pki.Options{})
	if err != nil {
		return err
	}
	if err := pki.WriteCRL(path, crl); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "wrote %s: CRL number %v, %d revoked, next update %s\n",
		path, crl.Number, len(crl.RevokedCertificateEntries), crl.NextUpdate.UTC().Format(time.RFC3339))
	return nil
}

// trustStore loads the trust store of the --root, --intermediate and --crl
// flags (relative paths from the working directory).
func trustStore(c *cli.Context) (*pki.TrustStore, error) {
	return pki.LoadTrustStore(pki.TrustConfig{
		Roots:         c.StringSlice("root"),
		Intermediates: c.StringSlice("intermediate"),
		CRLs:          c.StringSlice("crl"),
		Revocation:    c.String("revocation"),
	}, "")
}

// revocationFlag sets the trust store's revocation mode: by default every
// CA of a checked chain needs a current CRL (--crl); best-effort makes a
// missing or stale one a warning.
var revocationFlag = &cli.StringFlag{Name: "revocation", Usage: "`MODE` required (default: every CA of a chain needs a current --crl) or best-effort (a missing or stale CRL is a warning)"}

func pkiExport(c *cli.Context) error {
	ts, err := trustStore(c)
	if err != nil {
		return err
	}
	if err := addCertFiles(c.StringSlice("cert"), ts.Add); err != nil {
		return err
	}
	res, err := pki.Export(ts, c.String("out"), time.Now())
	if err != nil {
		return err
	}
	w := c.App.Writer
	for _, e := range res.Loaded {
		fmt.Fprintf(w, "load    %-8s %s (key id %s)\n", e.Role, e.Subject, e.KeyID)
		for _, warn := range e.Warnings {
			fmt.Fprintf(c.App.ErrWriter, "imaforge: warning: %s: %s\n", e.Subject, warn)
		}
	}
	for _, e := range res.Revoked {
		fmt.Fprintf(w, "revoked %-8s %s (key id %s): blacklisted\n", e.Role, e.Subject, e.KeyID)
	}
	for _, e := range res.Skipped {
		fmt.Fprintf(w, "skipped %-8s %s (key id %s): its issuer is revoked\n", e.Role, e.Subject, e.KeyID)
	}
	fmt.Fprintf(w, "wrote %d certificates and %s to %s\n", len(res.Loaded), strings.Join(res.Files, ", "), c.String("out"))
	return nil
}

func pkiVerify(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageErrf("pki verify: give exactly one CERT")
	}
	now := time.Now()
	if at := c.String("at"); at != "" {
		t, err := parseTime(at) // verify.go: RFC 3339 or a plain date
		if err != nil {
			return usageErr(fmt.Errorf("--at: %w", err))
		}
		now = t
	}
	path := c.Args().First()
	cert, err := signer.LoadCertificate(path)
	if err != nil {
		return err
	}
	ts, err := trustStore(c)
	if err != nil {
		return err
	}
	var pub any
	if k := c.String("key"); k != "" {
		key, err := openKey(c, "key", "")
		if err != nil {
			return err
		}
		if cl, ok := key.(io.Closer); ok {
			defer cl.Close()
		}
		pub = key.Public()
	}
	chain, err := ts.CheckSigner(cert, pub, now)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	for _, p := range c.StringSlice("path") {
		if err := chain.CheckPath(p); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	for _, warn := range chain.Warnings {
		fmt.Fprintf(c.App.ErrWriter, "imaforge: warning: %s\n", warn)
	}
	w := c.App.Writer
	fmt.Fprintf(w, "%s: OK\n", path)
	for i, cc := range chain.Certs {
		fmt.Fprintf(w, "  %d %s\n", i, describeCert(cc))
	}
	if s, err := pki.ParseScope(cert); err == nil {
		fmt.Fprintf(w, "  scope: %s\n", s)
	}
	return nil
}

func pemDecode(data []byte) ([]byte, error) {
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, errors.New("no PEM block")
	}
	return b.Bytes, nil
}
