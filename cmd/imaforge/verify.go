package main

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/imaforge/imaforge/manifest"
	"github.com/imaforge/imaforge/pipeline"
	"github.com/imaforge/imaforge/pki"
	"github.com/imaforge/imaforge/policy"
	"github.com/imaforge/imaforge/verify"
)

func init() {
	register(&cli.Command{
		Name:      "verify",
		Usage:     "check every file signature (security.ima, security.evm) of a SquashFS image or tar archive against a trust store, and predict what the kernel's policy would refuse",
		ArgsUsage: "IMAGE",
		Description: `Reads IMAGE (any SquashFS 4.0 image, mksquashfs's too, or a pax tar, tar.gz or
tar.zst archive such as image.format tar writes), recomputes each regular file's
digest and checks its security.ima: format, signature, key id, chain to a root,
validity at --at (default now), revocation (CRLs) and tenant scope; a
security.evm portable signature is checked over the file's xattrs, owner and mode. Policy
fragments in the image (/etc/ima/policy.d/*, /etc/ima/*.policy, /etc/ima/ima-policy
and the manifest's policy paths) are verified and linted for --kernel; their rules
and --policy files decide which files the kernel would appraise and refuse.

The whole-image signature (IMAGE.verity with IMAGE.verity.cms, or IMAGE.cms, or
the files --verity-descriptor/--verity-signature/--signature name) is checked first;
with --trust-manifest whose manifest sets image.signature_key (or with
--require-image-signature) an image without one fails, and with image.verity one
without its appended hash tree. A file whose blocks do not read fails as
"unreadable"; the other files are still checked.

--record compares every path of the image with the build record: a path missing
or extra, another type, mode (a setuid bit patched in), owner, size, digest,
symlink target or device fails that path. Without --record, setuid and setgid
files are listed as a warning: nothing checked their modes.

Exit status: 0 clean, 1 a file, policy or the image signature failed, 2 usage
errors or an image whose superblock or tables cannot be read. --json always prints
the report documented in docs/verify.md.`,
		Flags: append([]cli.Flag{
			&cli.StringSliceFlag{Name: "root", Usage: "trusted manufacturer root `CERT` (PEM or DER; repeatable)"},
			&cli.StringSliceFlag{Name: "intermediate", Usage: "owner CA or IMA signing `CERT` (repeatable)"},
			&cli.StringSliceFlag{Name: "cert", Usage: "IMA signing `CERT` that signatures' key ids may name (repeatable)"},
			&cli.StringSliceFlag{Name: "crl", Usage: "`CRL` of a CA (PEM or DER; repeatable)"},
			revocationFlag, // pki.go
			&cli.StringFlag{Name: "trust-manifest", Usage: "take the trust: section, the keys' certificates, the policy paths and the kernel from `MANIFEST`"},
			&cli.StringSliceFlag{Name: "policy", Usage: "IMA policy `FILE` in force on the device (repeatable; its rules come before the image's fragments)"},
			&cli.StringSliceFlag{Name: "policy-path", Usage: "also treat image path `P` as a policy fragment (repeatable)"},
			&cli.StringFlag{Name: "kernel", Usage: "target kernel series for the policy grammar (5.10, 5.15, 6.1, 6.6, 6.12; default: the manifest's, else " + policy.DefaultVersion.String() + ")"},
			&cli.StringFlag{Name: "at", Usage: "check certificate validity at `TIME` (RFC 3339 or YYYY-MM-DD) instead of now"},
			&cli.BoolFlag{Name: "no-dates", Usage: "do not check certificate dates (old images; the kernel never checks them)"},
			&cli.StringFlag{Name: "record", Usage: "compare the image with its build record `FILE` (IMAGE.record.json): paths, types, modes, owners, digests"},
			&cli.BoolFlag{Name: "require-signatures", Usage: "fail every regular file without a valid signature, whatever the policy"},
			&cli.BoolFlag{Name: "json", Usage: "print the report as JSON"},
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "list every file, not only failures"},
			&cli.IntFlag{Name: "workers", Usage: "files hashed at once (default: one per CPU)"},
		}, integrityFlags...), // integrity.go
		Action: verifyCmd,
	})
}

func verifyCmd(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageErrf("verify: give exactly one IMAGE")
	}
	image := c.Args().First()
	opts, err := verifyOptions(c)
	if err != nil {
		return err
	}
	if opts.ImageSignature, err = imageSignatureInput(c, image); err != nil { // integrity.go
		return err
	}
	opts.RequireImageSignature = opts.RequireImageSignature || c.Bool("require-image-signature")
	rep, err := verify.File(c.Context, image, opts)
	if err != nil {
		var ie *verify.ImageError
		if !errors.As(err, &ie) {
			return err
		}
		if c.Bool("json") {
			// --json always writes a report, also for an unreadable image.
			if err := writeJSON(c, &verify.Report{Format: verify.ReportFormat, Image: verify.ImageInfo{Path: image}, Error: err.Error()}); err != nil {
				return err
			}
		}
		return usageErr(fmt.Errorf("verify %s: %w", image, err))
	}
	if c.Bool("json") {
		if err := writeJSON(c, rep); err != nil {
			return err
		}
		fmt.Fprintln(c.App.ErrWriter, rep.ImageSignature.Line()) // stdout stays JSON
	} else if err := rep.WriteText(c.App.Writer, c.Bool("verbose")); err != nil {
		return err
	}
	if !rep.OK {
		var rs []string
		for r, n := range rep.Reasons {
			rs = append(rs, fmt.Sprintf("%s %d", r, n))
		}
		sort.Strings(rs)
		msg := fmt.Sprintf("verify %s: %d of %d files failed", image, rep.Summary.Failed, rep.Summary.Files)
		if is := rep.ImageSignature; is.Failed() {
			msg = fmt.Sprintf("verify %s: %s\n%d of %d files failed", image, is.Line(), rep.Summary.Failed, rep.Summary.Files)
		}
		if rep.Record != nil && len(rep.Record.Problems) > 0 {
			msg += fmt.Sprintf(", %d differences from the record %s", len(rep.Record.Problems), rep.Record.Name)
		}
		if rep.Summary.PolicyBad > 0 {
			msg += fmt.Sprintf(", %d policy files rejected", rep.Summary.PolicyBad)
		}
		if len(rs) > 0 {
			msg += " (" + strings.Join(rs, ", ") + ")"
		}
		return &exitError{code: 1, err: errors.New(msg)}
	}
	return nil
}

func writeJSON(c *cli.Context, rep *verify.Report) error { return printJSON(c.App.Writer, rep) }

// verifyOptions turns the flags into verify.Options; every error is a usage
// or input error (exit 2).
func verifyOptions(c *cli.Context) (verify.Options, error) {
	opts := verify.Options{Workers: c.Int("workers"), RequireSignatures: c.Bool("require-signatures")}
	if p := c.String("record"); p != "" {
		b, err := readInput("build record", p)
		if err != nil {
			return opts, err
		}
		rec, err := pipeline.ParseRecord(b)
		if err != nil {
			return opts, usageErr(fmt.Errorf("%s: %w", p, err))
		}
		if opts.Record, err = rec.Expected(p); err != nil {
			return opts, usageErr(fmt.Errorf("%s: %w", p, err))
		}
	}
	cfg := pki.TrustConfig{
		Roots:         c.StringSlice("root"),
		Intermediates: c.StringSlice("intermediate"),
		CRLs:          c.StringSlice("crl"),
	}
	var keyCerts []string
	kernel := c.String("kernel")
	if mp := c.String("trust-manifest"); mp != "" {
		m, err := manifest.Load(mp)
		if err != nil {
			return opts, usageErr(err)
		}
		if m.Trust == nil && len(cfg.Roots) == 0 {
			return opts, usageErrf("verify: %s has no trust: section; give --root", mp)
		}
		if m.Trust != nil {
			cfg.Roots = append(cfg.Roots, m.Trust.Roots...)
			cfg.Intermediates = append(cfg.Intermediates, m.Trust.Intermediates...)
			cfg.CRLs = append(cfg.CRLs, m.Trust.CRLs...)
			cfg.Revocation = m.Trust.Revocation
		}
		names := make([]string, 0, len(m.Keys))
		for n := range m.Keys {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			if m.Keys[n].Cert != "" {
				keyCerts = append(keyCerts, m.Keys[n].Cert)
			}
		}
		for _, p := range m.Policy {
			opts.PolicyPaths = append(opts.PolicyPaths, p.Path)
		}
		if kernel == "" {
			kernel = m.Kernel
		}
		// The image was built to carry what its manifest asks for: a
		// renamed copy, or one whose signature files were deleted, fails.
		opts.RequireImageSignature = m.Image.SignatureKey != ""
		opts.RequireVerityTree = m.Image.Verity
	}
	if c.IsSet("revocation") {
		cfg.Revocation = c.String("revocation")
	}
	if len(cfg.Roots) == 0 {
		return opts, usageErrf("verify: no trust: give --root (with --intermediate, --cert, --crl) or --trust-manifest")
	}
	ts, err := pki.LoadTrustStore(cfg, "")
	if err != nil {
		return opts, usageErr(err)
	}
	if err := addCertFiles(append(keyCerts, c.StringSlice("cert")...), ts.Add); err != nil {
		return opts, usageErr(err)
	}
	opts.Trust = ts
	opts.PolicyPaths = append(opts.PolicyPaths, c.StringSlice("policy-path")...)

	if kernel != "" {
		v, err := policy.ParseVersion(kernel)
		if err != nil {
			return opts, usageErr(fmt.Errorf("--kernel: %w", err))
		}
		opts.Kernel = v
	}
	for _, p := range c.StringSlice("policy") {
		data, err := os.ReadFile(p)
		if err != nil {
			return opts, usageErr(err)
		}
		opts.Policies = append(opts.Policies, verify.PolicyFile{Name: p, Data: data})
	}

	switch {
	case c.Bool("no-dates") && c.IsSet("at"):
		return opts, usageErrf("verify: --at and --no-dates exclude each other")
	case c.Bool("no-dates"):
	case c.IsSet("at"):
		t, err := parseTime(c.String("at"))
		if err != nil {
			return opts, usageErr(err)
		}
		opts.At = t
	default:
		opts.At = time.Now()
	}
	return opts, nil
}

// parseTime reads RFC 3339 or a plain date (midnight UTC).
func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--at %q: want RFC 3339 (2026-01-02T15:04:05Z) or a date (2026-01-02)", s)
}
