package main

import (
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/imaforge/imaforge/integrity/rauc"
	"github.com/imaforge/imaforge/manifest"
	"github.com/imaforge/imaforge/pipeline"
)

// raucUpdateFlags are the RAUC manifest's [update] values and the slot, as
// `rauc bundle` and `build --rauc-bundle` take them.
func raucUpdateFlags(prefix string) []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: prefix + "compatible", Usage: "RAUC compatible `STRING` the device's system.conf names (required)"},
		&cli.StringFlag{Name: prefix + "version", Usage: "bundle version `STRING` ([update] version)"},
		&cli.StringFlag{Name: prefix + "description", Usage: "bundle description ([update] description)"},
		&cli.StringFlag{Name: prefix + "build-id", Usage: "build id ([update] build)"},
		&cli.StringFlag{Name: prefix + "slot", Value: "rootfs", Usage: "slot `CLASS` the image is for"},
		&cli.StringFlag{Name: prefix + "filename", Value: "rootfs.img", Usage: "the image's `NAME` in the bundle"},
		&cli.StringFlag{Name: prefix + "key", Usage: "manifest key `NAME` that signs the bundle (default: image.signature_key)"},
	}
}

func init() {
	register(&cli.Command{
		Name:  "rauc",
		Usage: "write and check RAUC update bundles (verity format) of built images",
		Subcommands: []*cli.Command{
			{
				Name:      "bundle",
				Usage:     "write a RAUC bundle with the image built from MANIFEST as its slot image",
				ArgsUsage: "MANIFEST",
				Description: "Reads image.output and its build record (run `imaforge build` first) and writes a RAUC\n" +
					"bundle in the verity format, signed by a key of the manifest (checked against its trust:\n" +
					"section). `imaforge build --rauc-bundle` does the same right after a build.\n" +
					"Devices verify it with `rauc info|install --keyring CA.pem`; IMA signing certificates\n" +
					"carry extendedKeyUsage codeSigning, so their system.conf needs [keyring]\n" +
					"check-purpose=codesign (docs/integrity.md).",
				Flags: append([]cli.Flag{
					&cli.StringFlag{Name: "out", Aliases: []string{"o"}, Usage: "bundle `FILE` (.raucb)", Required: true},
				}, raucUpdateFlags("")...),
				Action: func(c *cli.Context) error {
					if c.NArg() != 1 {
						return usageErrf("rauc bundle: want one MANIFEST argument, got %d", c.NArg())
					}
					m, err := loadManifest(c.Args().First())
					if err != nil {
						return err
					}
					return writeRAUCBundle(c, m, c.String("out"), "")
				},
			},
			{
				Name:      "verify",
				Usage:     "check a verity-format RAUC bundle: signature, trust chain and every payload block",
				ArgsUsage: "BUNDLE",
				Flags: []cli.Flag{
					&cli.StringSliceFlag{Name: "root", Usage: "trusted root `CERT` (PEM or DER; repeatable)", Required: true},
					&cli.StringSliceFlag{Name: "intermediate", Usage: "intermediate CA `CERT` (repeatable)"},
					&cli.StringSliceFlag{Name: "crl", Usage: "`CRL` of a CA (repeatable)"},
					&cli.BoolFlag{Name: "no-dates", Usage: "do not check certificate dates"},
					revocationFlag,
				},
				Action: raucVerify,
			},
		},
	})
}

// writeRAUCBundle writes the bundle for m's built image; prefix selects the
// flag names (build's are --rauc-*).
func writeRAUCBundle(c *cli.Context, m *manifest.Manifest, out, prefix string) error {
	if c.String(prefix+"compatible") == "" {
		return usageErrf("--%scompatible is required for a RAUC bundle", prefix)
	}
	stderr := c.App.ErrWriter
	b, err := pipeline.WriteRAUCBundle(c.Context, pipeline.RAUCOptions{
		Manifest: m, Out: out,
		Compatible: c.String(prefix + "compatible"), Version: c.String(prefix + "version"),
		Description: c.String(prefix + "description"), Build: c.String(prefix + "build-id"),
		Slot: c.String(prefix + "slot"), Filename: c.String(prefix + "filename"), Key: c.String(prefix + "key"),
		Logf: func(format string, args ...any) { fmt.Fprintf(stderr, "imaforge: "+format+"\n", args...) },
	})
	if err != nil {
		if isManifestError(err) || errors.Is(err, rauc.ErrManifest) {
			return usageErr(err)
		}
		return err
	}
	fmt.Fprintf(c.App.Writer, "RAUC bundle %s: %s for %q, verity root hash %s, %d bytes\n",
		out, b.Manifest.Filename, b.Manifest.Compatible, b.Manifest.VerityHash, b.PayloadSize+b.HashSize+b.SignatureSize+8)
	return nil
}

func raucVerify(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageErrf("rauc verify: give exactly one BUNDLE")
	}
	ts, err := trustStore(c)
	if err != nil {
		return usageErr(err)
	}
	path := c.Args().First()
	f, err := os.Open(path)
	if err != nil {
		return usageErr(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	now := time.Now()
	if c.Bool("no-dates") {
		now = time.Time{}
	}
	b, err := rauc.Verify(f, st.Size(), ts, now)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	fmt.Fprintf(c.App.Writer, "%s: ok: signed by %q; compatible %q version %q; [image.%s] %s, %d bytes, sha256 %s; verity root hash %s\n",
		path, b.Signer.Leaf().Subject.String(), b.Manifest.Compatible, b.Manifest.Version, b.Manifest.Slot,
		b.Manifest.Filename, b.Manifest.Size, b.Manifest.SHA256, b.Manifest.VerityHash)
	return nil
}
