package main

import (
	"fmt"
	"os"

	"github.com/urfave/cli/v2"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/policy"
	"github.com/imaforge/imaforge/signer"
)

func init() {
	kernelFlag := &cli.StringFlag{Name: "kernel", Value: policy.DefaultVersion.String(),
		Usage: "target kernel series: 5.10, 5.15, 6.1, 6.6 or 6.12 (a release such as 6.1.0-18-amd64 also works)"}
	kconfigFlag := &cli.StringFlag{Name: "kernel-config", Usage: "the target kernel's `CONFIG` file (/boot/config-*): says whether it has CONFIG_IMA_APPRAISE_MODSIG and CONFIG_IMA_MEASURE_ASYMMETRIC_KEYS"}
	xattrFlag := &cli.BoolFlag{Name: "xattr", Usage: "use the file's security.ima extended attribute instead of FILE.sig"}
	register(&cli.Command{
		Name:  "policy",
		Usage: "lint, sign and verify IMA policy files",
		Subcommands: []*cli.Command{
			{
				Name:      "lint",
				Usage:     "check each FILE with the kernel's policy grammar; exit 1 if the kernel would reject one",
				ArgsUsage: "FILE...",
				Flags:     []cli.Flag{kernelFlag, kconfigFlag, jsonFlag("the diagnostics")},
				Action:    policyLint,
			},
			{
				Name:      "fmt",
				Usage:     "print the rules of each FILE in canonical form, one per line, comments dropped (to compare a policy read back from the kernel with the files it came from)",
				ArgsUsage: "FILE...",
				Flags:     []cli.Flag{kernelFlag},
				Action:    policyFmt,
			},
			{
				Name:      "sign",
				Usage:     "lint each FILE, then write its IMA signature to FILE.sig (the raw security.ima value) or --xattr",
				ArgsUsage: "FILE...",
				Flags: append(append([]cli.Flag{
					&cli.StringFlag{Name: "key", Usage: "private `KEY`: " + keyRefUsage, Required: true},
					&cli.StringFlag{Name: "cert", Usage: "certificate `CERT.pem` of the key (PEM or DER); gives the key id (default: the certificate the token or relic configuration holds, else the key id of the public key, as evmctl without --keyid)"},
					&cli.StringFlag{Name: "hash", Value: "sha256", Usage: "digest algorithm: sha256, sha384 or sha512"},
					relicConfigFlag(),
				}, passphraseFlags()...), kernelFlag, kconfigFlag, xattrFlag),
				Action: policySign,
			},
			{
				Name:      "verify",
				Usage:     "lint each FILE, then check its IMA signature (FILE.sig or --xattr)",
				ArgsUsage: "FILE...",
				Flags: []cli.Flag{
					&cli.StringSliceFlag{Name: "cert", Usage: "trusted certificate `CERT.pem` (PEM or DER; repeat for several)", Required: true},
					kernelFlag, kconfigFlag, xattrFlag,
				},
				Action: policyVerify,
			},
		},
	})
}

// lintFiles lints each file for the --kernel series, prints every
// diagnostic as file:line:col to the app's writer and returns an error
// (exit 1) if the kernel would reject any file.
func lintFiles(c *cli.Context, files []string) error {
	if len(files) == 0 {
		return usageErrf("policy %s: no FILE given", c.Command.Name)
	}
	v, err := policy.ParseVersion(c.String("kernel"))
	if err != nil {
		return usageErr(fmt.Errorf("--kernel: %w", err))
	}
	t := policy.Target{Version: v}
	if kc := c.String("kernel-config"); kc != "" {
		data, err := os.ReadFile(kc)
		if err != nil {
			return usageErr(fmt.Errorf("--kernel-config: %w", err))
		}
		t.Config = policy.ParseKconfig(data)
	}
	asJSON := c.Command.Name == "lint" && c.Bool("json")
	rep := lintReport{Kernel: v.String(), Files: []lintedFile{}}
	bad := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return inputErr(err)
		}
		ds := policy.LintTarget(f, data, t)
		lf := lintedFile{File: f, OK: policy.Errors(ds) == nil, Diagnostics: []lintDiagnostic{}}
		for _, d := range ds {
			if !asJSON {
				fmt.Fprintln(c.App.Writer, d)
			}
			lf.Diagnostics = append(lf.Diagnostics, lintDiagnostic{Line: d.Pos.Line, Col: d.Pos.Col, Severity: d.Severity.String(), Message: d.Msg})
		}
		if !lf.OK {
			bad++
		}
		rep.Files = append(rep.Files, lf)
	}
	rep.Rejected = bad
	if asJSON {
		if err := printJSON(c.App.Writer, rep); err != nil {
			return err
		}
	}
	if bad > 0 {
		return fmt.Errorf("%d of %d policy files would be rejected by Linux %s", bad, len(files), v)
	}
	return nil
}

// lintReport is what policy lint --json prints; it is printed also when a
// file would be rejected (exit 1).
type lintReport struct {
	Kernel   string       `json:"kernel"`
	Files    []lintedFile `json:"files"`
	Rejected int          `json:"rejected"` // files the kernel would reject
}

type lintedFile struct {
	File        string           `json:"file"`
	OK          bool             `json:"ok"` // no error-severity diagnostic
	Diagnostics []lintDiagnostic `json:"diagnostics"`
}

type lintDiagnostic struct {
	Line     int    `json:"line"`
	Col      int    `json:"col"`
	Severity string `json:"severity"` // error or warning
	Message  string `json:"message"`
}

func policyLint(c *cli.Context) error { return lintFiles(c, c.Args().Slice()) }

func policyStore(c *cli.Context) signer.Store {
	if c.Bool("xattr") {
		return signer.Xattr
	}
	return signer.SigFile
}

func policySign(c *cli.Context) error {
	files := c.Args().Slice()
	if err := lintFiles(c, files); err != nil {
		return err
	}
	h, err := imasig.ParseHash(c.String("hash"))
	if err != nil {
		return usageErr(fmt.Errorf("--hash: %w", err))
	}
	s, err := loadSigner(c)
	if err != nil {
		return err
	}
	defer s.Close()
	store := policyStore(c)
	if err := signer.SignFiles(c.Context, s, h, store, files, 1, nil); err != nil {
		return err
	}
	id := s.KeyID()
	_, err = fmt.Fprintf(c.App.Writer, "signed %d policy files (%s, key id %x) into %s\n", len(files), h, id[:], storeDesc(store))
	return err
}

func policyVerify(c *cli.Context) error {
	files := c.Args().Slice()
	if err := lintFiles(c, files); err != nil {
		return err
	}
	v, err := imasig.NewVerifier()
	if err != nil {
		return err
	}
	if err := addCertFiles(c.StringSlice("cert"), v.Add); err != nil {
		return err
	}
	failed := 0
	for _, f := range files {
		if err := signer.VerifyFile(v, policyStore(c), f); err != nil {
			failed++
			fmt.Fprintf(c.App.ErrWriter, "imaforge: error: %v\n", err)
			continue
		}
		fmt.Fprintf(c.App.Writer, "%s: signature ok\n", f)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d policy files failed verification", failed, len(files))
	}
	return nil
}

// policyFmt prints each FILE's rules as policy.Rule.String renders them, so
// two policies that the kernel parses to the same rules print the same text
// (the kernel's own listing orders some options differently).
func policyFmt(c *cli.Context) error {
	files := c.Args().Slice()
	if len(files) == 0 {
		return usageErrf("policy fmt: no FILE given")
	}
	v, err := policy.ParseVersion(c.String("kernel"))
	if err != nil {
		return usageErr(fmt.Errorf("--kernel: %w", err))
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return inputErr(err)
		}
		rules, err := policy.ParseFor(f, data, v)
		if err != nil {
			return err
		}
		for i := range rules {
			fmt.Fprintln(c.App.Writer, rules[i].String())
		}
	}
	return nil
}
