package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/imaforge/imaforge/internal/blockcache"
	"github.com/imaforge/imaforge/internal/runstats"
	"github.com/imaforge/imaforge/manifest"
	"github.com/imaforge/imaforge/pipeline"
	"github.com/imaforge/imaforge/signer"
)

func init() {
	register(&cli.Command{
		Name:      "build",
		Usage:     "build a signed, reproducible SquashFS image from a manifest",
		ArgsUsage: "MANIFEST",
		Description: "Reads every file once, signs each unique digest with the key the manifest's rules assign,\n" +
			"and writes the image and IMAGE.record.json atomically. SOURCE_DATE_EPOCH, when set,\n" +
			"overrides image.epoch. Exit codes: 0 built, 1 the build failed, 2 usage or manifest error.",
		Flags: append([]cli.Flag{
			&cli.BoolFlag{Name: "verbose", Aliases: []string{"v"}, Usage: "report overlapping sources and other notes"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print nothing but errors"},
			&cli.BoolFlag{Name: "json", Usage: "print a machine-readable summary on stdout"},
			&cli.BoolFlag{Name: "strict", Usage: "treat warnings (an override matching nothing) as errors"},
			&cli.IntFlag{Name: "workers", Usage: "goroutines reading, compressing and signing (0: all cores)"},
			&cli.StringSliceFlag{Name: "signatures", Usage: "sign with no key: take every signature from `FILE` (a `ceremony sign` response or `evmctl sign_hash` output; repeatable), each verified"},
			&cli.StringFlag{Name: "cache", Usage: "reuse the signatures and compressed blocks of earlier builds kept in `DIR` (each verified before use; blocks in DIR/blocks, trimmed to --cache-max) and add new ones"},
			&cli.StringFlag{Name: "cache-max", Value: "2G", Usage: "trim the blocks --cache keeps to `SIZE`, least recently used first"},
			&cli.StringFlag{Name: "signature-cache", Usage: "reuse signatures of earlier builds kept in `DIR` (keyed by certificate, hash and digest; verified before use) and add new ones (--cache DIR does this and keeps blocks)"},
			&cli.StringFlag{Name: "max-spool", Usage: "fail a build whose tarball sources would spool more than `SIZE` (e.g. 2G) of member data to $TMPDIR (holes and runs of zeros are free)"},
			&cli.BoolFlag{Name: "allow-key-in-source", Usage: "warn about, instead of refusing, a source directory that would pack a private key file the manifest names"},
			&cli.StringFlag{Name: "cpuprofile", Hidden: true, Usage: "write a Go CPU profile to `FILE` (for benchmarks)"},
			&cli.StringFlag{Name: "runtime-stats", Hidden: true, Usage: "write peak RSS, peak live heap and GC CPU share as JSON to `FILE` (internal/runstats; for benchmarks)"},
			&cli.StringFlag{Name: "memprofile", Hidden: true, Usage: "with --runtime-stats, write the heap profile at the peak live heap to `FILE`"},
			&cli.StringFlag{Name: "rauc-bundle", Usage: "also write a RAUC bundle (verity format) of the image to `FILE` (rauc.go)"},
		}, raucUpdateFlags("rauc-")...),
		Action: runBuild,
	})
}

func runBuild(c *cli.Context) (err error) {
	args := c.Args().Slice()
	if len(args) != 1 {
		return usageErrf("build: want one MANIFEST argument, got %d", len(args))
	}
	m, err := loadManifest(args[0])
	if err != nil {
		return err
	}
	if p := c.String("cpuprofile"); p != "" {
		stop, err := startCPUProfile(p)
		if err != nil {
			return err
		}
		defer stop()
	}
	if p := c.String("runtime-stats"); p != "" {
		rs := runstats.Start(100*time.Millisecond, c.String("memprofile"))
		defer func() {
			st, serr := rs.Stop()
			if serr == nil {
				serr = st.WriteFile(p)
			}
			if serr != nil && err == nil {
				err = fmt.Errorf("--runtime-stats: %w", serr)
			}
		}()
	}
	quiet := c.Bool("quiet")
	stderr := c.App.ErrWriter
	logf := func(format string, args ...any) {
		if !quiet {
			fmt.Fprintf(stderr, "imaforge: "+format+"\n", args...)
		}
	}
	verbosef := func(format string, args ...any) {
		if c.Bool("verbose") {
			logf(format, args...)
		}
	}
	v, _ := buildVersion()
	opts := pipeline.Options{
		Manifest:    m,
		ToolVersion: v,
		Workers:     c.Int("workers"),
		Strict:      c.Bool("strict"),

		AllowKeyInSource: c.Bool("allow-key-in-source"),
		Logf: func(format string, args ...any) {
			// Overlaps are notes for --verbose; warnings always show.
			if len(format) >= 5 && format[:5] == "note:" {
				verbosef(format, args...)
				return
			}
			logf(format, args...)
		},
	}
	if !quiet {
		opts.Progress = newProgress(stderr)
	}
	if s := c.String("max-spool"); s != "" {
		n, err := parseSize(s)
		if err != nil {
			return usageErr(fmt.Errorf("--max-spool: %w", err))
		}
		opts.MaxSpool = int64(n)
	}
	sigReport, sigDone, err := signatureFlags(c, m, &opts) // ceremony.go
	if err != nil {
		return err
	}
	blockReport, err := blockCacheFlags(c, &opts)
	if err != nil {
		return err
	}
	// Every return closes the block cache: a failed build's blocks, or a
	// good build's whose signature cache could not store, are kept.
	defer blockReport(io.Discard)
	if c.String("rauc-bundle") != "" && c.String("rauc-compatible") == "" {
		return usageErrf("build: --rauc-bundle needs --rauc-compatible")
	}
	start := time.Now()
	res, err := pipeline.Build(c.Context, opts)
	if derr := sigDone(); err == nil && derr != nil {
		return derr // --signature-cache could not store the signatures
	}
	if err != nil {
		if isManifestError(err) {
			return usageErr(err)
		}
		return err
	}
	elapsed := time.Since(start)
	if out := c.String("rauc-bundle"); out != "" {
		if err := writeRAUCBundle(c, m, out, "rauc-"); err != nil {
			return err
		}
	}
	if c.Bool("json") {
		return printBuildJSON(c.App.Writer, res, elapsed)
	}
	if !quiet {
		fmt.Fprintf(c.App.Writer, "built %s: %s (%d signed, %s), %s of content -> %s image in %.2fs\n",
			res.ImagePath, count(int64(res.Files), "file"), res.Signed, count(int64(res.Signatures), "unique signature"), humanBytes(res.Bytes), humanBytes(res.Record.Image.Size), elapsed.Seconds())
		for _, k := range res.Record.Keys {
			fmt.Fprintf(c.App.Writer, "  key %-16s id %s  %5d files  %5d signatures  %s\n", k.Name, k.KeyID, k.Files, k.Signatures, k.Subject)
		}
		fmt.Fprintf(c.App.Writer, "  image sha256 %s\n  record %s\n", res.Record.Image.SHA256, res.RecordPath)
		sigReport(c.App.Writer)
		blockReport(c.App.Writer)
		if !res.Record.Reproducible {
			fmt.Fprintln(c.App.Writer, "  note: a key signs with random nonces; a rebuild will not give the same bytes")
		}
	}
	return nil
}

// blockCacheFlags sets opts.BlockCache from --cache and --cache-max. A
// cache that cannot be used is a warning (through logf), never an error: the
// build then compresses every block. The returned function closes the cache
// (after the build: writes its new pack, merges and trims the packs) and
// prints its use to w, the first time it is called; later calls do nothing.
// Warnings show even with --quiet.
func blockCacheFlags(c *cli.Context, opts *pipeline.Options) (func(io.Writer), error) {
	dir := c.String("cache")
	if dir == "" {
		return func(io.Writer) {}, nil
	}
	limit, err := parseSize(c.String("cache-max"))
	if err != nil || limit <= 0 {
		return nil, usageErrf("--cache-max: want a size such as 500M or 2G, got %q", c.String("cache-max"))
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(c.App.ErrWriter, "imaforge: warning: "+format+"\n", args...)
	}
	bc := blockcache.Open(dir, int64(limit), func(msg string) { logf("%s", msg) })
	opts.BlockCache = bc
	var closed sync.Once
	return func(w io.Writer) {
		closed.Do(func() {
			kept, err := bc.Close()
			if err != nil {
				logf("%v", err)
			}
			st := bc.Stats()
			fmt.Fprintf(w, "  block cache %s: %d reused, %d compressed (%d damaged, not used), %s kept\n",
				bc.Dir(), st.Hits, st.Misses, st.Damaged, humanBytes(kept))
		})
	}, nil
}

// startCPUProfile writes a CPU profile to path until stop is called.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

// loadManifest loads and validates a manifest and applies SOURCE_DATE_EPOCH.
// Problems with the manifest are usage errors (exit code 2).
func loadManifest(path string) (*manifest.Manifest, error) {
	m, err := manifest.Load(path)
	if err != nil {
		return nil, usageErr(err)
	}
	if err := m.SetSourceDateEpoch(os.Getenv("SOURCE_DATE_EPOCH")); err != nil {
		return nil, usageErr(err)
	}
	return m, nil
}

// isManifestError reports whether err is about what the manifest says (a
// source that does not exist, a key file that is missing) rather than a
// failure of the build itself.
//
// A key that does not open (a wrong PIN or passphrase, a missing token or
// PKCS#11 module, a token that fails) is an operation failure (exit 1),
// even when the manifest line of the key is named.
func isManifestError(err error) bool {
	if errors.Is(err, signer.ErrToken) || errors.Is(err, signer.ErrPassphrase) {
		return false
	}
	var me *manifest.Error
	var ml manifest.ErrorList
	return errors.As(err, &me) || errors.As(err, &ml)
}

type buildSummary struct {
	Image        string               `json:"image"`
	Record       string               `json:"record"`
	ImageSHA256  string               `json:"image_sha256"`
	ImageSize    int64                `json:"image_size"`
	Files        int                  `json:"files"`
	Signed       int                  `json:"signed"`
	Signatures   int                  `json:"signatures"`
	Duplicates   int                  `json:"duplicates"`
	ContentBytes int64                `json:"content_bytes"`
	Reproducible bool                 `json:"reproducible"`
	Seconds      float64              `json:"seconds"`
	Keys         []pipeline.RecordKey `json:"keys"`
}

func printBuildJSON(w io.Writer, res *pipeline.Result, elapsed time.Duration) error {
	return printJSON(w, buildSummary{
		Image:        res.ImagePath,
		Record:       res.RecordPath,
		ImageSHA256:  res.Record.Image.SHA256,
		ImageSize:    res.Record.Image.Size,
		Files:        res.Files,
		Signed:       res.Signed,
		Signatures:   res.Signatures,
		Duplicates:   res.Stats.Duplicates,
		ContentBytes: res.Bytes,
		Reproducible: res.Record.Reproducible,
		Seconds:      elapsed.Seconds(),
		Keys:         res.Record.Keys,
	})
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// newProgress returns a progress bar on a terminal and periodic plain lines
// otherwise.
func newProgress(w io.Writer) pipeline.Progress {
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		return &barProgress{w: w}
	}
	return &lineProgress{w: w}
}

type barProgress struct {
	w   io.Writer
	bar *progressbar.ProgressBar
}

func (p *barProgress) Start(files int, bytes int64) {
	p.bar = progressbar.NewOptions64(bytes,
		progressbar.OptionSetWriter(p.w),
		progressbar.OptionSetDescription(fmt.Sprintf("%d files", files)),
		progressbar.OptionShowBytes(true),
		progressbar.OptionShowCount(),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
}

func (p *barProgress) Add(files int, bytes int64) { p.bar.Add64(bytes) }
func (p *barProgress) Done()                      { p.bar.Finish() }

// lineProgress prints a line every few seconds: for CI logs.
type lineProgress struct {
	w          io.Writer
	files, all int64
	doneFiles  atomic.Int64
	doneBytes  atomic.Int64
	stop       chan struct{}
	wg         sync.WaitGroup
}

func (p *lineProgress) Start(files int, bytes int64) {
	p.files, p.all = int64(files), bytes
	p.stop = make(chan struct{})
	start := time.Now()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				f, b := p.doneFiles.Load(), p.doneBytes.Load()
				rate := float64(b) / time.Since(start).Seconds()
				eta := "?"
				if rate > 0 {
					eta = time.Duration(float64(p.all-b) / rate * float64(time.Second)).Round(time.Second).String()
				}
				fmt.Fprintf(p.w, "imaforge: %d/%d files, %s/%s, %s/s, eta %s\n",
					f, p.files, humanBytes(b), humanBytes(p.all), humanBytes(int64(rate)), eta)
			}
		}
	}()
}

func (p *lineProgress) Add(files int, bytes int64) {
	p.doneFiles.Add(int64(files))
	p.doneBytes.Add(bytes)
}

func (p *lineProgress) Done() {
	if p.stop != nil {
		close(p.stop)
		p.wg.Wait()
		p.stop = nil
	}
}
