package main

import (
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"os"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/imaforge/imaforge/attest"
	"github.com/imaforge/imaforge/internal/atomicfile"
	"github.com/imaforge/imaforge/pipeline"
	"github.com/imaforge/imaforge/pki"
)

func init() {
	register(&cli.Command{
		Name:  "attest",
		Usage: "remote attestation: reference values from build records, and judging a device's TPM quote and IMA measurement list",
		Subcommands: []*cli.Command{
			{
				Name:      "verify",
				Usage:     "judge a measurement list (and a TPM quote) against reference values and a trust store",
				ArgsUsage: "MEASUREMENTS",
				Description: `Reads MEASUREMENTS (binary_runtime_measurements or ascii_runtime_measurements;
templates ima, ima-ng, ima-sig, ima-buf, ima-modsig), recomputes every template
hash, replays PCR 10 and judges every entry: its digest is the reference value
for that path, or its signature is valid with a trusted key whose scope allows
the path, or it is unknown. ima-buf key measurements must be keys of the trust
store. With --quote, the TPM quote (tpm2_quote -m/-s) must be signed by --ak,
carry --nonce, select PCR 10 and match the replay; with --previous-quote its
clock and reset/restart counters must follow that one.

Exit status: 0 trusted, 1 not trusted (an entry, the replay or the quote
failed), 2 usage errors or malformed input. docs/attest.md documents --json.`,
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "reference", Usage: "reference values `FILE` (imaforge attest policy --out)"},
					&cli.StringSliceFlag{Name: "root", Usage: "trusted manufacturer root `CERT` (repeatable)"},
					&cli.StringSliceFlag{Name: "intermediate", Usage: "owner CA `CERT` (repeatable)"},
					&cli.StringSliceFlag{Name: "cert", Usage: "IMA signing `CERT` (repeatable)"},
					&cli.StringSliceFlag{Name: "crl", Usage: "`CRL` of a CA (repeatable)"},
					&cli.StringSliceFlag{Name: "mount", Usage: "an image's mount point `DIR` on the device, for tenant scopes (repeatable; the reference's are used too)"},
					&cli.StringFlag{Name: "quote", Usage: "TPMS_ATTEST `FILE` (tpm2_quote -m)"},
					&cli.StringFlag{Name: "quote-sig", Usage: "TPMT_SIGNATURE `FILE` (tpm2_quote -s)"},
					&cli.StringFlag{Name: "ak", Usage: "attestation key `FILE`: PEM/DER public key (tpm2_createak -f pem) or TPM2B_PUBLIC"},
					&cli.StringFlag{Name: "nonce", Usage: "the `HEX` nonce the quote must carry"},
					&cli.StringFlag{Name: "previous-quote", Usage: "an earlier TPMS_ATTEST `FILE` of the device"},
					&cli.StringFlag{Name: "previous-quote-sig", Usage: "its TPMT_SIGNATURE `FILE`"},
					&cli.StringFlag{Name: "bank", Value: "sha256", Usage: "PCR `BANK` replayed when there is no quote"},
					&cli.StringFlag{Name: "pcr10", Usage: "expected PCR 10 `HEX` of --bank (e.g. from tpm2_pcrread), without a quote"},
					&cli.StringFlag{Name: "template-hash", Value: "sha1", Usage: "template hash `ALGO` of a binary list (sha1; sha256 for binary_runtime_measurements_sha256)"},
					&cli.StringFlag{Name: "at", Usage: "check certificate validity at `TIME` (default: dates not checked, as the kernel does not)"},
					&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
					&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "list every entry, not only those not trusted"},
				},
				Action: attestVerifyCmd,
			},
			{
				Name:  "policy",
				Usage: "write reference values (imaforge's JSON and a Keylime runtime policy) from build records",
				Description: `Each --image RECORD=MOUNT names a build record (IMAGE.record.json) and the
directory the device mounts that image at. The signing certificates come from
--cert (e.g. the certs/ of imaforge pki export); a key of a record without its
certificate is named, and its files can then be judged by digest only.

--out writes imaforge's reference values (docs/attest.md); --keylime writes a
Keylime runtime policy (meta, release, digests, excludes, keyrings, ima, ima-buf,
verification-keys) with the files at their device paths.`,
				Flags: []cli.Flag{
					&cli.StringSliceFlag{Name: "image", Usage: "`RECORD=MOUNT`: a build record and its image's mount point (repeatable)", Required: true},
					&cli.StringSliceFlag{Name: "cert", Usage: "signing `CERT` of the images (PEM or DER; repeatable)"},
					&cli.StringSliceFlag{Name: "boot-aggregate", Usage: "allowed boot_aggregate `ALGO:HEX` (repeatable)"},
					&cli.StringFlag{Name: "keyring", Value: "_ima", Usage: "`NAME` of the keyring the device loads the certificates into (Keylime keyrings)"},
					&cli.StringFlag{Name: "out", Usage: "write imaforge reference values to `FILE`"},
					&cli.StringFlag{Name: "keylime", Usage: "write a Keylime runtime policy to `FILE`"},
				},
				Action: attestPolicyCmd,
			},
		},
	})
}

func readInput(what, p string) ([]byte, error) {
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, usageErr(fmt.Errorf("%s: %w", what, err))
	}
	return b, nil
}

func attestVerifyCmd(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageErrf("attest verify: give exactly one MEASUREMENTS file")
	}
	opts, err := attestVerifyOptions(c)
	if err != nil {
		return err
	}
	name := c.Args().First()
	data, err := readInput("measurement list", name)
	if err != nil {
		return err
	}
	th, err := attest.ParseBank(c.String("template-hash"))
	if err != nil {
		return usageErr(fmt.Errorf("--template-hash: %w", err))
	}
	l, err := attest.Parse(data, attest.ParseOptions{Hash: th})
	if err != nil {
		return usageErr(fmt.Errorf("%s: %w", name, err))
	}
	rep, err := attest.Verify(l, opts)
	if err != nil {
		return usageErr(err)
	}
	if c.Bool("json") {
		if err := printJSON(c.App.Writer, rep); err != nil {
			return err
		}
	} else if err := rep.WriteText(c.App.Writer, c.Bool("verbose")); err != nil {
		return err
	}
	if !rep.Trusted {
		return &exitError{code: 1, err: fmt.Errorf("attest verify %s: not trusted: %d of %d entries trusted, %d problems", name, rep.Summary.Trusted, rep.Summary.Entries, len(rep.Problems))}
	}
	return nil
}

// attestVerifyOptions reads every input the flags name; each error is an
// input error (exit 2).
func attestVerifyOptions(c *cli.Context) (attest.Options, error) {
	var opts attest.Options
	if p := c.String("reference"); p != "" {
		b, err := readInput("reference values", p)
		if err != nil {
			return opts, err
		}
		if opts.Reference, err = attest.ParseReference(b); err != nil {
			return opts, usageErr(fmt.Errorf("%s: %w", p, err))
		}
	}
	if roots := c.StringSlice("root"); len(roots) > 0 {
		ts, err := pki.LoadTrustStore(pki.TrustConfig{Roots: roots, Intermediates: c.StringSlice("intermediate"), CRLs: c.StringSlice("crl")}, "")
		if err != nil {
			return opts, usageErr(err)
		}
		if err := addCertFiles(c.StringSlice("cert"), ts.Add); err != nil {
			return opts, usageErr(err)
		}
		opts.Trust = ts
	} else if c.IsSet("intermediate") || c.IsSet("cert") || c.IsSet("crl") {
		return opts, usageErrf("attest verify: --intermediate, --cert and --crl need --root")
	}
	if opts.Reference == nil && opts.Trust == nil {
		return opts, usageErrf("attest verify: nothing to judge by: give --reference and/or --root")
	}
	opts.Mounts = c.StringSlice("mount")
	bank, err := attest.ParseBank(c.String("bank"))
	if err != nil {
		return opts, usageErr(fmt.Errorf("--bank: %w", err))
	}
	opts.Bank = bank
	if s := c.String("pcr10"); s != "" {
		v, err := hex.DecodeString(strings.TrimPrefix(strings.ToLower(s), "0x"))
		if err != nil || len(v) != bank.Size() {
			return opts, usageErrf("--pcr10: want %d bytes of hex for %s", bank.Size(), c.String("bank"))
		}
		opts.PCR10 = v
	}
	if c.IsSet("at") {
		t, err := parseTime(c.String("at"))
		if err != nil {
			return opts, usageErr(err)
		}
		opts.At = t
	}
	readQuote := func(msgFlag, sigFlag string) (*attest.Quote, error) {
		m, s := c.String(msgFlag), c.String(sigFlag)
		if m == "" && s == "" {
			return nil, nil
		}
		if m == "" || s == "" {
			return nil, usageErrf("attest verify: --%s and --%s go together", msgFlag, sigFlag)
		}
		mb, err := readInput("quote", m)
		if err != nil {
			return nil, err
		}
		sb, err := readInput("quote signature", s)
		if err != nil {
			return nil, err
		}
		q, err := attest.ParseQuote(mb, sb)
		if err != nil {
			return nil, usageErr(fmt.Errorf("%s, %s: %w", m, s, err))
		}
		return q, nil
	}
	if opts.Quote, err = readQuote("quote", "quote-sig"); err != nil {
		return opts, err
	}
	if opts.Previous, err = readQuote("previous-quote", "previous-quote-sig"); err != nil {
		return opts, err
	}
	if opts.Previous != nil && opts.Quote == nil {
		return opts, usageErrf("attest verify: --previous-quote needs --quote")
	}
	if opts.Quote != nil {
		if c.String("ak") == "" || c.String("nonce") == "" {
			return opts, usageErrf("attest verify: --quote needs --ak and --nonce")
		}
		if opts.PCR10 != nil {
			return opts, usageErrf("attest verify: --pcr10 and --quote exclude each other")
		}
		b, err := readInput("attestation key", c.String("ak"))
		if err != nil {
			return opts, err
		}
		if opts.AK, err = attest.ParseAK(b); err != nil {
			return opts, usageErr(fmt.Errorf("%s: %w", c.String("ak"), err))
		}
		if opts.Nonce, err = hex.DecodeString(c.String("nonce")); err != nil || len(opts.Nonce) == 0 {
			return opts, usageErrf("--nonce %q: want hex", c.String("nonce"))
		}
	}
	return opts, nil
}

func attestPolicyCmd(c *cli.Context) error {
	if c.String("out") == "" && c.String("keylime") == "" {
		return usageErrf("attest policy: give --out and/or --keylime")
	}
	var images []attest.ImageSource
	for _, spec := range c.StringSlice("image") {
		recPath, mount, ok := strings.Cut(spec, "=")
		if !ok || recPath == "" || mount == "" {
			return usageErrf("attest policy: --image %q: want RECORD=MOUNT", spec)
		}
		b, err := readInput("build record", recPath)
		if err != nil {
			return err
		}
		rec, err := pipeline.ParseRecord(b)
		if err != nil {
			return usageErr(fmt.Errorf("%s: %w", recPath, err))
		}
		images = append(images, attest.ImageSource{Record: rec, Mount: mount})
	}
	var certs []*x509.Certificate
	if err := addCertFiles(c.StringSlice("cert"), func(cert *x509.Certificate) error { certs = append(certs, cert); return nil }); err != nil {
		return usageErr(err)
	}
	ref, notes, err := attest.NewReference(images, certs, c.StringSlice("boot-aggregate"))
	if err != nil {
		return usageErr(err)
	}
	for _, n := range notes {
		fmt.Fprintf(c.App.ErrWriter, "imaforge: note: %s\n", n)
	}
	if p := c.String("out"); p != "" {
		b, err := ref.Marshal()
		if err != nil {
			return err
		}
		if err := atomicfile.WriteFile(p, b, 0o644); err != nil {
			return err
		}
	}
	if p := c.String("keylime"); p != "" {
		kp, err := ref.Keylime(attest.KeylimeOptions{Keyring: c.String("keyring")})
		if err != nil {
			return err
		}
		b, err := kp.Marshal()
		if err != nil {
			return err
		}
		if err := atomicfile.WriteFile(p, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
