package main

import (
	"bytes"
	"fmt"
	"io"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/imaforge/imaforge/ceremony"
	"github.com/imaforge/imaforge/internal/atomicfile"
	"github.com/imaforge/imaforge/pipeline"
)

func init() {
	register(&cli.Command{
		Name:      "plan",
		Usage:     "hash a manifest's files and write the signing request for an offline ceremony",
		ArgsUsage: "MANIFEST",
		Description: "Walks and reads every file as `build` does, without writing an image or touching a private\n" +
			"key, and writes what the keys must sign: per key, the unique digests with the certificate\n" +
			"fingerprint and key id, and the manifest digest (see `go doc ceremony`). The request names its\n" +
			"own digest; read it out to the ceremony operator.\n" +
			"--format sha256sum writes one key's unique digests as `DIGEST  PATH` lines for\n" +
			"`evmctl sign_hash` (PATH, one file with that digest, is for reading only: a path that is not\n" +
			"plain text is Go-quoted, never in sha256sum's escaped form, which evmctl misreads); feed its\n" +
			"output to `build --signatures`.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "write to `FILE` (atomically); default stdout"},
			&cli.StringFlag{Name: "format", Value: "json", Usage: "json (a signing request) or sha256sum (evmctl sign_hash input)"},
			&cli.StringFlag{Name: "key", Usage: "with --format sha256sum: the manifest `KEY` whose digests to list (needed when several keys sign)"},
			&cli.BoolFlag{Name: "strict", Usage: "treat warnings as errors"},
			&cli.IntFlag{Name: "workers", Usage: "goroutines reading files (0: all cores)"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print nothing but errors"},
			jsonFlag("the summary (needs --output)"),
		},
		Action: runPlan,
	})
}

func runPlan(c *cli.Context) error {
	args := c.Args().Slice()
	if len(args) != 1 {
		return usageErrf("plan: want one MANIFEST argument, got %d", len(args))
	}
	format := c.String("format")
	if format != "json" && format != "sha256sum" {
		return usageErrf("plan: --format %q: want json or sha256sum", format)
	}
	if c.String("key") != "" && format != "sha256sum" {
		return usageErrf("plan: --key goes with --format sha256sum")
	}
	out := c.String("output")
	if c.Bool("json") && (out == "" || out == "-") {
		return usageErrf("plan: --json prints the summary on stdout: write the request to a file with --output")
	}
	m, err := loadManifest(args[0])
	if err != nil {
		return err
	}
	stderr := c.App.ErrWriter
	v, _ := buildVersion()
	start := time.Now()
	plan, err := pipeline.MakePlan(c.Context, pipeline.PlanOptions{
		Manifest: m, ToolVersion: v, Workers: c.Int("workers"), Strict: c.Bool("strict"),
		Logf: func(format string, args ...any) { fmt.Fprintf(stderr, "imaforge: "+format+"\n", args...) },
	})
	if err != nil {
		if isManifestError(err) {
			return usageErr(err)
		}
		return err
	}
	var buf bytes.Buffer
	if format == "json" {
		b, err := plan.Request.Marshal()
		if err != nil {
			return err
		}
		buf.Write(b)
	} else {
		lines, err := plan.Sums(c.String("key"))
		if err != nil {
			return usageErr(err)
		}
		if err := ceremony.WriteSums(&buf, lines); err != nil {
			return err
		}
	}
	// The summary goes to stderr when the document goes to stdout.
	summary := c.App.Writer
	if out == "" || out == "-" {
		if _, err := c.App.Writer.Write(buf.Bytes()); err != nil {
			return err
		}
		summary = stderr
	} else if err := atomicfile.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		return err
	}
	if c.Bool("json") {
		return printJSON(summary, planSummary{Output: out, Format: format,
			Seconds: time.Since(start).Seconds(), requestSummary: summarizeRequest(plan.Request)})
	}
	if !c.Bool("quiet") {
		printRequestSummary(summary, plan.Request)
		fmt.Fprintf(summary, "  planned in %.2fs\n", time.Since(start).Seconds())
	}
	return nil
}

// requestSummary is the JSON form of printRequestSummary: what a person
// checks before signing, without the digests and certificates.
type requestSummary struct {
	Image         string               `json:"image"`
	Manifest      ceremony.ManifestRef `json:"manifest"`
	Hash          string               `json:"hash"`
	Files         int                  `json:"files"`
	Keys          []keySummary         `json:"keys"`
	RequestSHA256 string               `json:"request_sha256"`
}

type keySummary struct {
	Name       string `json:"name"`
	KeyID      string `json:"key_id"`
	Subject    string `json:"subject"`
	CertSHA256 string `json:"cert_sha256"`
	Files      int    `json:"files"`
	Digests    int    `json:"digests"`
}

func summarizeRequest(r *ceremony.Request) requestSummary {
	s := requestSummary{Image: r.Image, Manifest: r.Manifest, Hash: r.Hash, Files: r.Files,
		Keys: []keySummary{}, RequestSHA256: r.SHA256}
	for _, k := range r.Keys {
		s.Keys = append(s.Keys, keySummary{Name: k.Name, KeyID: k.KeyID, Subject: k.Subject,
			CertSHA256: k.CertSHA256, Files: k.Files, Digests: len(k.Digests)})
	}
	return s
}

// planSummary is what plan --json prints.
type planSummary struct {
	Output string `json:"output"`
	Format string `json:"format"`
	requestSummary
	Seconds float64 `json:"seconds"`
}

// printRequestSummary prints what a person checks before signing.
func printRequestSummary(w io.Writer, r *ceremony.Request) {
	fmt.Fprintf(w, "signing request for image %s\n", r.Image)
	fmt.Fprintf(w, "  manifest   %s sha256 %s\n", r.Manifest.Name, r.Manifest.SHA256)
	fmt.Fprintf(w, "  hash       %s, %d regular files\n", r.Hash, r.Files)
	for _, k := range r.Keys {
		fmt.Fprintf(w, "  key %-14s id %s  %6d files  %6d digests to sign\n", k.Name, k.KeyID, k.Files, len(k.Digests))
		fmt.Fprintf(w, "      subject %s\n      cert sha256 %s\n", k.Subject, k.CertSHA256)
	}
	fmt.Fprintf(w, "  request sha256 %s\n", r.SHA256)
}
