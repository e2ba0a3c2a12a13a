package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/imaforge/imaforge/internal/atomicfile"
	"github.com/imaforge/imaforge/squashfs"
)

// squashfsCmd is the parent of the `imaforge squashfs` subcommands. It is a
// package-level variable, so it is initialized before any init function runs:
// other files (squashfs_ls.go) add their subcommands to
// squashfsCmd.Subcommands from their own init, in any file order, and main's
// newApp sees them all.
var squashfsCmd = &cli.Command{
	Name:  "squashfs",
	Usage: "pack and inspect SquashFS images with imaforge's own writer and reader",
}

func init() {
	squashfsCmd.Subcommands = append(squashfsCmd.Subcommands, &cli.Command{
		Name:      "pack",
		Usage:     "pack directory DIR into the SquashFS image OUT (xattrs kept when readable)",
		ArgsUsage: "DIR OUT",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "comp", Value: "zstd", Usage: "compressor: " + squashfs.CompressorNames(", ")},
			&cli.IntFlag{Name: "level", Usage: "compression level, 0: the compressor's default (" + squashfs.LevelSummary() + "; lz4 0 = fast, 1-12 = high compression)"},
			&cli.StringFlag{Name: "block-size", Value: "128K", Usage: "data block `SIZE`, a power of two from 4K to 1M"},
			&cli.StringFlag{Name: "epoch", Usage: "set the image time and every entry's time to `SECONDS` (default: $SOURCE_DATE_EPOCH clamps entry times; else the newest entry time)"},
			&cli.BoolFlag{Name: "all-root", Usage: "make every entry owned by root (0:0)"},
			&cli.BoolFlag{Name: "no-xattrs", Usage: "do not store the xattrs found in DIR"},
			&cli.IntFlag{Name: "jobs", Aliases: []string{"j"}, Usage: "parallel workers (0: one per CPU), each reading, with a data block and a fragment block compressor each (zstd: one for both); never changes the image"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print nothing on success"},
		},
		Action: squashfsPack,
	})
	register(squashfsCmd)
}

// packSyncEvery is how much of the image pack writes between two
// fdatasync calls beside the writing (atomicfile.Behind.SyncEvery): the
// large files' 676 MB lz4 image waited 0.32-0.44 s in the final fsync with
// nothing else to do, 0.04-0.09 s with it (load 7).
const packSyncEvery = 64 << 20

// packOptions are the writer's options of a pack with workers workers. Each
// worker reads and has a data block compressor and a fragment block
// compressor, as mksquashfs runs a deflator and a fragment deflator thread
// per CPU, except with zstd: there data and fragment blocks share one
// compressor per worker. On a tree of small and large files, as the Go
// toolchain's, both pools are busy at once, and four zstd-15 contexts
// (about 2 MiB of tables each) took turns on two CPUs, evicting each
// other's tables from the CPU's cache: on one CPU (-j 1) one shared
// compressor took 0.90 of the CPU time of two (GOROOT's runtime, crypto
// and pkg/tool, four alternating pairs, load 8-9; the whole Go tree on two
// CPUs 0.93). zlib's state is about 270 KiB: at gzip-9 one shared
// compressor took 1-3% more (three pairs, 3/3), so the other codecs keep
// a pool of each (measured with zlib; gzip is libdeflate since 8c1b073,
// not measured again).
//
// Pack also lets up to four filled fragment blocks per worker wait for
// their compressors (FragmentsAhead): with the writer's default (one more
// than the compressors), 50,000 files of 1-8 KiB at zstd-15 (every file a
// fragment, about 28 to a fragment block) kept the two compressors waiting
// for their next fragment block 2.5-5 s of a 30-45 s run (Go execution
// trace, load 10-12), 1.7 s with six (pack: ten). It leaves the readers'
// window at the writer's 16 items: 128 small files' tails ahead as well
// cut the wait to 0.2 s there, but took 1.04-1.06 times the CPU on the Go
// tree at zstd-15 (4 of 4 pairs, load 2.5). A build keeps the defaults.
func packOptions(comp squashfs.Compression, level, blockSize, workers int) squashfs.Options {
	o := squashfs.Options{Compression: comp, Level: level, BlockSize: blockSize, Workers: workers,
		Compressors: workers, FragmentCompressors: workers, FragmentsAhead: 4*workers + 2}
	if comp == squashfs.Zstd {
		o.FragmentCompressors = 0 // fragment blocks go to the Compressors
	}
	return o
}

// parseSize reads 4096, 128K, 1M, 2G.
func parseSize(s string) (int, error) {
	mult := 1
	switch {
	case strings.HasSuffix(s, "K"), strings.HasSuffix(s, "k"):
		mult, s = 1<<10, s[:len(s)-1]
	case strings.HasSuffix(s, "M"), strings.HasSuffix(s, "m"):
		mult, s = 1<<20, s[:len(s)-1]
	case strings.HasSuffix(s, "G"), strings.HasSuffix(s, "g"):
		mult, s = 1<<30, s[:len(s)-1]
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

func squashfsPack(c *cli.Context) error {
	if c.NArg() != 2 {
		return usageErrf("squashfs pack needs DIR and OUT")
	}
	dir, out := c.Args().Get(0), c.Args().Get(1)
	comp, err := squashfs.ParseCompression(c.String("comp"))
	if err != nil {
		return usageErr(err)
	}
	bs, err := parseSize(c.String("block-size"))
	if err != nil {
		return usageErrf("--block-size: %v", err)
	}
	if fi, err := os.Stat(dir); err != nil {
		return inputErr(err)
	} else if !fi.IsDir() {
		return usageErrf("%s is not a directory", dir)
	}
	var topts squashfs.TreeOptions
	topts.AllRoot = c.Bool("all-root")
	topts.NoXattrs = c.Bool("no-xattrs")
	topts.Warn = func(msg string) { fmt.Fprintf(c.App.ErrWriter, "imaforge: warning: %s\n", msg) }
	var imageTime *int64
	if s := c.String("epoch"); s != "" {
		t, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return usageErrf("--epoch: %v", err)
		}
		topts.ModTime, imageTime = &t, &t
	} else if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		t, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return usageErrf("SOURCE_DATE_EPOCH: %v", err)
		}
		topts.ClampTime, imageTime = &t, &t
	}

	f, err := atomicfile.Create(out, 0o644) // less the umask, as mksquashfs's
	if err != nil {
		return err
	}
	defer f.Abort()
	// An image written inside DIR must not pack itself.
	skip := map[string]bool{}
	for _, p := range []string{out, f.Name()} {
		if abs, err := filepath.Abs(p); err == nil {
			skip[abs] = true
		}
	}
	topts.Exclude = func(p string) bool {
		abs, err := filepath.Abs(p)
		return err == nil && skip[abs]
	}
	workers := c.Int("jobs")
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	opts := packOptions(comp, c.Int("level"), bs, workers)
	if imageTime != nil {
		opts.ModTime = *imageTime
	}
	// the image goes to the disk while it is written, and the disk is made
	// to flush it every packSyncEvery bytes: Commit's sync then has little
	// left to wait for
	w, err := squashfs.NewWriter(f.WriteBehind().SyncEvery(packSyncEvery), opts)
	if err != nil {
		return usageErr(err)
	}
	tst, err := squashfs.AddTree(w, dir, topts)
	if err != nil {
		return err
	}
	if imageTime == nil { // the image time is then the newest entry time
		if err := w.SetModTime(max(tst.NewestModTime, 0)); err != nil {
			return err
		}
	}
	if err := w.WriteData(c.Context); err != nil {
		return err
	}
	st, err := w.Finish()
	if err != nil {
		return err
	}
	if err := f.Commit(); err != nil {
		return err
	}
	if !c.Bool("quiet") {
		fmt.Fprintf(c.App.Writer, "%s: %d inodes, %d fragments, %d duplicate files, %d bytes (%v, block size %d)\n",
			out, st.Inodes, st.Fragments, st.Duplicates, st.BytesUsed, comp, bs)
	}
	return nil
}
