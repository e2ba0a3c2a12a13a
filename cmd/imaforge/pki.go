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
			indexFlag(),
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
					&cli.StringFlag{Name: "name", Usage: "subject common name (required unless --csr gives the subject)"},
					&cli.StringFlag{Name: "org", Usage: "subject organization (optional)"},
					&cli.StringFlag{Name: "out", Usage: "output `DIR`", Required: true},
					&cli.StringFlag{Name: "basename", Usage: "output file names `BASE`.key/.der/.pem (default: owner-ca, or the name in lowercase for ima)"},
					&cli.IntFlag{Name: "days", Usage: "validity in days (default: owner-ca 1095, ima 365)"},
					&cli.StringSliceFlag{Name: "scope", Usage: "image path glob the key may sign, e.g. '/opt/acme/**' (repeatable; default: unrestricted)"},
					&cli.StringFlag{Name: "pubkey", Usage: "certify this existing public key or key file `FILE` instead of generating one (PEM/DER certificate, public or private key)"},
					&cli.StringFlag{Name: "csr", Usage: "certify the key of PKCS#10 request `FILE` (PEM or DER; its signature must verify: proof of possession); only its public key and subject are used"},
					&cli.StringFlag{Name: "not-before", Usage: "validity start `TIME` (RFC 3339; default: now minus one hour)"},
					&cli.StringFlag{Name: "not-after", Usage: "validity end `TIME` (RFC 3339; instead of --days; refused beyond the issuer's)"},
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
					&cli.StringSliceFlag{Name: "index", Usage: "inventory `FILE` of a CA, to blacklist revoked certificates not given (repeatable; default: each --root/--intermediate's .index beside it, when there)"},
				}, trustIn()...),
				Action: pkiExport,
			},
			{
				Name:  "list",
				Usage: "list the certificates a CA issued, from its inventory: subject, serial, scope, validity, expired, revoked",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "ca", Usage: "the CA certificate `CA.pem` (PEM or DER)", Required: true},
					indexFlag(),
					&cli.StringFlag{Name: "at", Usage: "judge expiry at `TIME` (RFC 3339, or YYYY-MM-DD) instead of now"},
					&cli.BoolFlag{Name: "json", Usage: "print the list as JSON"},
				},
				Action: pkiList,
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
					&cli.BoolFlag{Name: "json", Usage: "print the result as JSON (also when the check fails)"},
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
		return pki.Issuer{}, nil, inputErr(err)
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
	crlPath, indexPath := filepath.Join(dir, "root.crl"), filepath.Join(dir, "root.index")
	if err := writeNewCA(crlPath, indexPath, pki.Issuer{Cert: root.Cert, Key: root.Key}, c.Bool("force")); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "root CA: %s\nwrote %s, %s, %s\n", describeCert(root.Cert), strings.Join(paths, ", "), crlPath, indexPath)
	return nil
}

// writeNewCA writes the first (empty) CRL of a new CA and its empty
// inventory (which records that CRL's number).
func writeNewCA(crlPath, indexPath string, ca pki.Issuer, force bool) error {
	for _, p := range []string{crlPath, indexPath} {
		if _, err := os.Lstat(p); err == nil && !force {
			return fmt.Errorf("%s: %w", p, pki.ErrExists)
		}
	}
	crl, _, err := pki.UpdateCRL(nil, ca, pki.CRLUpdate{}, pki.Options{})
	if err != nil {
		return err
	}
	if err := pki.CreateInventory(indexPath, ca.Cert, crl, force); err != nil {
		return err
	}
	return pki.WriteCRL(crlPath, crl)
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
	if err := validityFlags(c, &req); err != nil {
		return err
	}
	switch csrPath := c.String("csr"); {
	case csrPath != "" && (c.IsSet("name") || c.IsSet("org") || c.IsSet("pubkey")):
		return usageErrf("--csr gives the key and the subject: drop --name, --org and --pubkey")
	case csrPath != "":
		csr, err := pki.ReadCSR(csrPath)
		if err != nil {
			return usageErr(err)
		}
		req.FromCSR(csr)
	case req.Name == "":
		return usageErrf("give --name (or --csr)")
	}
	if p := c.String("pubkey"); p != "" {
		if req.PublicKey, err = loadPublicKey(p); err != nil {
			return err
		}
	}
	keyOpts, err := newKeyOptions(c)
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
	if _, err := pki.CheckIssuedPaths(dir, base, req.PublicKey == nil, c.Bool("force")); err != nil {
		return err
	}
	issuer, closeCA, err := loadIssuer(c)
	if err != nil {
		return err
	}
	defer closeCA()
	inv, err := openInventory(c, issuer.Cert)
	if err != nil {
		return err
	}
	defer inv.Close()
	iss, err := inv.Issue(req, issuer, pki.Options{})
	if err != nil {
		return err
	}
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
		crlPath, indexPath := filepath.Join(dir, base+".crl"), filepath.Join(dir, base+".index")
		if iss.Key == nil {
			fmt.Fprintf(c.App.ErrWriter, "imaforge: warning: no CRL or inventory written (the key is not here: run `imaforge pki crl` where it is)\n")
		} else if err := writeNewCA(crlPath, indexPath, pki.Issuer{Cert: iss.Cert, Key: iss.Key}, c.Bool("force")); err != nil {
			return err
		} else {
			paths = append(paths, crlPath, indexPath)
		}
	}
	fmt.Fprintf(c.App.Writer, "recorded serial %x in %s\nwrote %s\n", iss.Cert.SerialNumber, inv.Path, strings.Join(paths, ", "))
	return nil
}

// validityFlags sets req's explicit validity from --not-before and
// --not-after (RFC 3339).
func validityFlags(c *cli.Context, req *pki.Request) error {
	for _, f := range []struct {
		name string
		dst  *time.Time
	}{{"not-before", &req.NotBefore}, {"not-after", &req.NotAfter}} {
		v := c.String(f.name)
		if v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return usageErr(fmt.Errorf("--%s: want RFC 3339 (2031-01-01T00:00:00Z): %w", f.name, err))
		}
		*f.dst = t
	}
	if c.IsSet("days") && !req.NotAfter.IsZero() {
		return usageErrf("give --days or --not-after, not both")
	}
	if !req.NotBefore.IsZero() && !req.NotAfter.IsZero() && req.NotBefore.After(req.NotAfter) {
		return usageErrf("--not-before %s is after --not-after %s", c.String("not-before"), c.String("not-after"))
	}
	return nil
}

// indexFlag names a CA's inventory file.
func indexFlag() cli.Flag {
	return &cli.StringFlag{Name: "index", Usage: "the CA's inventory `FILE` (default: the CA certificate's path with .index)"}
}

func indexPathFor(c *cli.Context) string {
	if p := c.String("index"); p != "" {
		return p
	}
	return pki.InventoryPath(c.String("ca"))
}

// openInventory locks the inventory of the CA of --ca (--index). A CA made
// before inventories existed gets one now, started from its CRL.
func openInventory(c *cli.Context, ca *x509.Certificate) (*pki.InventoryFile, error) {
	crl, err := readCRLIfAny(crlPathFor(c))
	if err != nil {
		return nil, err
	}
	inv, err := pki.OpenInventory(indexPathFor(c), ca, true, crl)
	if err != nil {
		return nil, err
	}
	if inv.Created && crl != nil {
		fmt.Fprintf(c.App.ErrWriter, "imaforge: warning: %s: started the inventory of %s from its CRL %s (number %v, %d revoked); certificates it issued before are not in it until revoked\n",
			inv.Path, ca.Subject, crlPathFor(c), crl.Number, len(crl.RevokedCertificateEntries))
	}
	return inv, nil
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
	var certs []*x509.Certificate
	for _, p := range c.StringSlice("cert") {
		cs, err := signer.LoadCertificates(p)
		if err != nil {
			return inputErr(err)
		}
		certs = append(certs, cs...)
	}
	crl, added, err := updateCRL(c, pki.CRLUpdate{Revoke: certs, Reason: reason})
	if err != nil {
		return err
	}
	for _, cert := range certs {
		fmt.Fprintf(c.App.Writer, "revoked %s\n  kernel blacklist: %s\n", describeCert(cert), strings.Join(pki.BlacklistEntries(cert), " "))
	}
	fmt.Fprintf(c.App.Writer, "wrote %s: CRL number %v, %d new, %d revoked in all, next update %s\n",
		crlPathFor(c), crl.Number, added, len(crl.RevokedCertificateEntries), crl.NextUpdate.UTC().Format(time.RFC3339))
	return nil
}

// updateCRL signs the next CRL of the CA of --ca under its inventory's lock
// (recording u's revocations there first) and writes it.
func updateCRL(c *cli.Context, u pki.CRLUpdate) (*x509.RevocationList, int, error) {
	validity, err := days(c, "crl-days")
	if err != nil {
		return nil, 0, err
	}
	u.Validity = validity
	issuer, closeCA, err := loadIssuer(c)
	if err != nil {
		return nil, 0, err
	}
	defer closeCA()
	inv, err := openInventory(c, issuer.Cert)
	if err != nil {
		return nil, 0, err
	}
	defer inv.Close()
	path := crlPathFor(c)
	prev, err := readCRLIfAny(path)
	if err != nil {
		return nil, 0, err
	}
	crl, added, err := inv.UpdateCRL(prev, issuer, u, pki.Options{})
	if err != nil {
		return nil, 0, err
	}
	return crl, added, pki.WriteCRL(path, crl)
}
func pkiCRL(c *cli.Context) error {
	crl, _, err := updateCRL(c, pki.CRLUpdate{})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "wrote %s: CRL number %v, %d revoked, next update %s\n",
		crlPathFor(c), crl.Number, len(crl.RevokedCertificateEntries), crl.NextUpdate.UTC().Format(time.RFC3339))
	return nil
}

// trustStore loads the trust store of the --root, --intermediate and --crl
// flags (relative paths from the working directory).
func trustStore(c *cli.Context) (*pki.TrustStore, error) {
	ts, err := pki.LoadTrustStore(pki.TrustConfig{
		Roots:         c.StringSlice("root"),
		Intermediates: c.StringSlice("intermediate"),
		CRLs:          c.StringSlice("crl"),
		Revocation:    c.String("revocation"),
	}, "")
	return ts, inputErr(err)
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
	if err := addInventories(c, ts); err != nil {
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
		fmt.Fprintf(w, "revoked %-8s %s (serial %s, key id %s): blacklisted\n", e.Role, e.Subject, e.Serial, e.KeyID)
	}
	for _, e := range res.Skipped {
		why := "its issuer is revoked"
		for _, warn := range e.Warnings {
			if after, ok := strings.CutPrefix(warn, "left out: "); ok {
				why = after
			}
		}
		fmt.Fprintf(w, "skipped %-8s %s (serial %s, key id %s): %s\n", e.Role, e.Subject, e.Serial, e.KeyID, why)
	}
	for _, warn := range res.Warnings {
		fmt.Fprintf(c.App.ErrWriter, "imaforge: warning: %s\n", warn)
	}
	fmt.Fprintf(w, "wrote %s and %s to %s\n", count(int64(len(res.Loaded)), "certificate"), strings.Join(res.Files, ", "), c.String("out"))
	return nil
}

// addInventories adds the inventories of --index, or else those beside the
// --root and --intermediate files (X.pem -> X.index) that exist, to ts.
func addInventories(c *cli.Context, ts *pki.TrustStore) error {
	paths := c.StringSlice("index")
	if len(paths) == 0 {
		for _, p := range append(c.StringSlice("root"), c.StringSlice("intermediate")...) {
			if ip := pki.InventoryPath(p); ip != p {
				if _, err := os.Stat(ip); err == nil {
					paths = append(paths, ip)
				}
			}
		}
	}
	for _, p := range paths {
		data, err := boundedfile.ReadFile(p, boundedfile.CRLLimit)
		if err != nil {
			return err
		}
		inv, err := pki.ParseInventory(data)
		if err == nil {
			err = ts.AddInventory(inv)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	return nil
}

// pkiVerifyResult is what `pki verify --json` prints, also when the check
// fails (then with the error and its reason, pki.ReasonOf).
type pkiVerifyResult struct {
	Cert     string             `json:"cert"`
	At       time.Time          `json:"at"`
	OK       bool               `json:"ok"`
	Error    string             `json:"error,omitempty"`
	Reason   string             `json:"reason,omitempty"`
	Chain    []pki.ExportedCert `json:"chain,omitempty"` // leaf first
	Paths    []string           `json:"paths,omitempty"` // checked against the scopes
	Warnings []string           `json:"warnings,omitempty"`
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
		return inputErr(err)
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
	res := &pkiVerifyResult{Cert: path, At: now.UTC().Truncate(time.Second), Paths: c.StringSlice("path")}
	chain, err := ts.CheckSigner(cert, pub, now)
	if err == nil {
		res.Warnings = chain.Warnings
		for _, cc := range chain.Certs {
			res.Chain = append(res.Chain, pki.Describe(cc))
		}
		for _, p := range res.Paths {
			if err = chain.CheckPath(p); err != nil {
				break
			}
		}
	}
	if err != nil {
		err = fmt.Errorf("%s: %w", path, err)
		res.Error, res.Reason = err.Error(), pki.ReasonOf(err)
	}
	res.OK = err == nil
	if c.Bool("json") {
		if jerr := printJSON(c.App.Writer, res); jerr != nil {
			return jerr
		}
		for _, warn := range res.Warnings {
			fmt.Fprintf(c.App.ErrWriter, "imaforge: warning: %s\n", warn)
		}
		return err
	}
	if err != nil {
		return err
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

func pkiList(c *cli.Context) error {
	at := time.Now()
	if s := c.String("at"); s != "" {
		t, err := parseTime(s)
		if err != nil {
			return usageErr(fmt.Errorf("--at: %w", err))
		}
		at = t
	}
	ca, err := signer.LoadCertificate(c.String("ca"))
	if err != nil {
		return inputErr(err)
	}
	inv, err := pki.ReadInventory(indexPathFor(c), ca)
	if errors.Is(err, pki.ErrNoInventory) {
		return &exitError{code: 1, err: err, hint: fmt.Sprintf("this CA has issued, revoked or re-signed nothing since inventories exist; `imaforge pki crl --ca %s --ca-key KEY` starts its inventory from its CRL", c.String("ca"))}
	}
	if err != nil {
		return err
	}
	l := inv.List(at)
	w := c.App.Writer
	if c.Bool("json") {
		return printJSON(w, l)
	}
	fmt.Fprintf(w, "CA %s: %s, last CRL number %s (expiry judged at %s)\n", l.CA, count(int64(len(l.Certs)), "certificate"), l.CRLNumber, l.At.Format(time.RFC3339))
	for _, e := range l.Certs {
		if e.Subject == "" {
			fmt.Fprintf(w, "%-13s serial %s (certificate not known: imported from the CRL)  revoked %s %s\n", e.Status, e.Serial, e.RevokedAt.Format(time.RFC3339), e.Reason)
			continue
		}
		fmt.Fprintf(w, "%-13s %-8s %s  serial %s  %s to %s", e.Status, e.Role, e.Subject, e.Serial, e.NotBefore.Format(time.RFC3339), e.NotAfter.Format(time.RFC3339))
		if e.Expired && e.Status == "revoked" {
			fmt.Fprint(w, " (expired)")
		}
		if e.RevokedAt != nil {
			fmt.Fprintf(w, "  revoked %s %s", e.RevokedAt.Format(time.RFC3339), e.Reason)
		}
		if len(e.Scope) > 0 {
			fmt.Fprintf(w, "  scope %s", strings.Join(e.Scope, ","))
		}
		fmt.Fprintln(w)
	}
	return nil
}
