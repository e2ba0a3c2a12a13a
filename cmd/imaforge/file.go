package main

import (
	"fmt"
	"runtime"
	"sync/atomic"

	"github.com/urfave/cli/v2"

	"github.com/imaforge/imaforge/imasig"
	"github.com/imaforge/imaforge/signer"
)

func init() {
	storeFlags := []cli.Flag{
		&cli.BoolFlag{Name: "sigfile", Usage: "signature in FILE.sig, the raw security.ima value (evmctl --sigfile)"},
		&cli.BoolFlag{Name: "xattr", Usage: "signature in the file's security.ima extended attribute"},
		&cli.IntFlag{Name: "jobs", Aliases: []string{"j"}, Usage: "parallel workers (0: one per CPU)"},
	}
	register(&cli.Command{
		Name:  "file",
		Usage: "sign and verify the IMA signatures of individual files",
		Subcommands: []*cli.Command{
			{
				Name:      "sign",
				Usage:     "write an IMA signature (security.ima v2) for each FILE",
				ArgsUsage: "FILE...",
				Flags: append(append([]cli.Flag{
					&cli.StringFlag{Name: "key", Usage: "private `KEY`: " + keyRefUsage, Required: true},
					&cli.StringFlag{Name: "cert", Usage: "certificate `CERT.pem` of the key (PEM or DER); gives the key id (default: the certificate the token or relic configuration holds, else the key id of the public key, as evmctl without --keyid)"},
					&cli.StringFlag{Name: "hash", Value: "sha256", Usage: "digest algorithm: sha256, sha384 or sha512"},
					relicConfigFlag(),
				}, passphraseFlags()...), storeFlags...),
				Action: fileSign,
			},
			{
				Name:      "verify",
				Usage:     "check the IMA signature of each FILE; fails if any does not verify",
				ArgsUsage: "FILE...",
				Flags: append([]cli.Flag{
					&cli.StringSliceFlag{Name: "cert", Usage: "trusted certificate `CERT.pem` (PEM or DER; repeat for several)", Required: true},
					&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "print a line for every file that verifies"},
				}, storeFlags...),
				Action: fileVerify,
			},
		},
	})
}

// storeOf reads --sigfile/--xattr: exactly one must be given.
func storeOf(c *cli.Context) (signer.Store, error) {
	switch s, x := c.Bool("sigfile"), c.Bool("xattr"); {
	case s && x:
		return 0, usageErrf("give either --sigfile or --xattr, not both")
	case s:
		return signer.SigFile, nil
	case x:
		return signer.Xattr, nil
	}
	return 0, usageErrf("say where signatures go: --sigfile (FILE.sig) or --xattr (security.ima)")
}

func fileSign(c *cli.Context) error {
	store, err := storeOf(c)
	if err != nil {
		return err
	}
	files := c.Args().Slice()
	h, err := imasig.ParseHash(c.String("hash"))
	if err != nil {
		return usageErr(fmt.Errorf("--hash: %w", err))
	}
	s, err := loadSigner(c)
	if err != nil {
		return err
	}
	defer s.Close()
	var n atomic.Int64
	err = signer.SignFiles(c.Context, s, h, store, files, c.Int("jobs"), func(string, []byte) { n.Add(1) })
	if err != nil {
		return inputErr(err) // a FILE that does not exist is an input error
	}
	id := s.KeyID()
	_, err = fmt.Fprintf(c.App.Writer, "signed %s (%s, key id %x, %s, %s) into %s\n",
		count(n.Load(), "file"), h, id[:], s.KeyType(), s.Backend(), storeDesc(store))
	return err
}

func fileVerify(c *cli.Context) error {
	store, err := storeOf(c)
	if err != nil {
		return err
	}
	files := c.Args().Slice()
	v, err := imasig.NewVerifier()
	if err != nil {
		return err
	}
	if err := addCertFiles(c.StringSlice("cert"), v.Add); err != nil {
		return err
	}
	jobs := c.Int("jobs")
	if jobs <= 0 {
		jobs = runtime.GOMAXPROCS(0)
	}
	errs := signer.VerifyFiles(c.Context, v, store, files, jobs)
	failed := 0
	for i, e := range errs {
		if e != nil {
			failed++
			fmt.Fprintf(c.App.ErrWriter, "imaforge: error: %v\n", e)
		} else if c.Bool("verbose") {
			fmt.Fprintf(c.App.Writer, "%s: ok\n", files[i])
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d files failed verification", failed, len(files))
	}
	_, err = fmt.Fprintf(c.App.Writer, "verified %s (%s)\n", count(int64(len(files)), "file"), storeDesc(store))
	return err
}

// storeDesc names where store keeps signatures, for messages.
func storeDesc(s signer.Store) string {
	if s == signer.SigFile {
		return "FILE" + signer.SigFileSuffix
	}
	return imasig.XattrName
}
