package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/imaforge/imaforge/manifest"
	"github.com/imaforge/imaforge/pipeline"
	"github.com/imaforge/imaforge/rootfs"
)

func init() {
	register(&cli.Command{
		Name:  "manifest",
		Usage: "check a manifest, list the tree it declares, print its JSON Schema",
		Subcommands: []*cli.Command{
			{
				Name:  "schema",
				Usage: "print the JSON Schema (draft 2020-12) of the manifest, for editors",
				Action: func(c *cli.Context) error {
					if c.NArg() != 0 {
						return usageErrf("manifest schema: takes no arguments")
					}
					_, err := c.App.Writer.Write(manifest.Schema())
					return err
				},
			},
			{
				Name:      "check",
				Usage:     "run every check of a build that reads no file content, and report all problems at once",
				ArgsUsage: "MANIFEST",
				Description: "Parses and validates the manifest, walks the sources as a build would (missing\n" +
					"sources, type conflicts, symlink loops), renders and lints the policy fragments,\n" +
					"loads the keys' certificates (no private key unless --keys), checks the\n" +
					"trust chains, dates, revocation and scopes, and prints the build's warnings (a rule\n" +
					"matching no file or shadowed, an unused key, no trust:, a file the build's own\n" +
					"policy fragments would make the kernel refuse). Prints every problem as\n" +
					"file:line:col: message and exits 2 when there is one; --strict makes the warnings\n" +
					"errors. --walk also prints the tree's counts; --keys also opens every private key\n" +
					"(its passphrase or PIN as build takes it) and checks it against its certificate.",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "walk", Usage: "print the counts of the walked tree (entries, regular files, overlaps)"},
					&cli.BoolFlag{Name: "strict", Usage: "treat warnings as errors, as build --strict does"},
					&cli.BoolFlag{Name: "keys", Usage: "also open every private key as build does (passphrase or PIN from the manifest's passphrase_env/passphrase_file, else a prompt) and check it matches its certificate"},
				},
				Action: runManifestCheck,
			},
			{
				Name:      "ls",
				Usage:     "list the image tree a manifest declares (like unsquashfs -lls, without times)",
				ArgsUsage: "MANIFEST",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "also report overlapping sources on stderr"},
					&cli.BoolFlag{Name: "strict", Usage: "treat warnings (an override matching nothing) as errors"},
					&cli.BoolFlag{Name: "keys", Usage: "list each regular file with the rule and key that will sign it (manifest_keys.go)"},
				},
				Action: runManifestLs,
			},
		},
	})
}

// walkManifest loads a manifest and walks its tree, printing warnings (and
// with verbose, overlaps) to stderr.
func walkManifest(c *cli.Context, verbose bool) (*manifest.Manifest, *rootfs.Tree, error) {
	if c.NArg() != 1 {
		return nil, nil, usageErrf("manifest %s: want one MANIFEST argument, got %d", c.Command.Name, c.NArg())
	}
	m, err := loadManifest(c.Args().First())
	if err != nil {
		return nil, nil, err
	}
	t, err := rootfs.Walk(c.Context, m, rootfs.Options{Strict: c.Bool("strict")})
	if err != nil {
		if isManifestError(err) {
			return nil, nil, usageErr(err)
		}
		return nil, nil, err
	}
	stderr := c.App.ErrWriter
	for _, w := range t.Warnings {
		fmt.Fprintf(stderr, "imaforge: warning: %v\n", w)
	}
	if verbose {
		for _, o := range t.Overlaps {
			fmt.Fprintf(stderr, "imaforge: note: %s\n", o)
		}
	}
	return m, t, nil
}

func runManifestCheck(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageErrf("manifest check: want one MANIFEST argument, got %d", c.NArg())
	}
	m, err := loadManifest(c.Args().First())
	if err != nil {
		return err
	}
	logf := func(format string, args ...any) { fmt.Fprintf(c.App.ErrWriter, "imaforge: "+format+"\n", args...) }
	if err := pipeline.Check(c.Context, m, pipeline.CheckOptions{Strict: c.Bool("strict"), Logf: logf, OpenKeys: c.Bool("keys")}); err != nil {
		// Check reads no file content: what fails is what the manifest
		// says or names (exit 2).
		return usageErr(err)
	}
	if !c.Bool("walk") {
		_, err = fmt.Fprintf(c.App.Writer, "%s: ok: %d sources, %d entries, %d keys, %d rules\n",
			m.File, len(m.Sources), len(m.Entries), len(m.Keys), len(m.Rules))
		return err
	}
	m, t, err := walkManifest(c, false)
	if err != nil {
		return err
	}
	defer t.Close()
	files := 0
	for i := range t.Entries {
		e := &t.Entries[i]
		if e.Type != rootfs.TypeReg {
			continue
		}
		files++
		if _, err := m.RuleFor(e.Path); err != nil {
			return usageErr(err)
		}
	}
	_, err = fmt.Fprintf(c.App.Writer, "%s: ok: %d entries, %d regular files, %d overlaps, %d warnings\n",
		m.File, len(t.Entries), files, len(t.Overlaps), len(t.Warnings))
	return err
}

func runManifestLs(c *cli.Context) error {
	m, t, err := walkManifest(c, c.Bool("verbose"))
	if err != nil {
		return err
	}
	defer t.Close()
	if c.Bool("keys") {
		return writeKeyListing(c.App.Writer, m, t)
	}
	return t.WriteListing(c.App.Writer)
}
