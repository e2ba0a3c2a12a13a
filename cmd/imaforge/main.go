// Command imaforge builds signed, reproducible SquashFS firmware images that a
// Linux kernel with IMA appraisal accepts.
//
// Messages follow one style: errors are printed to stderr as
//
//	imaforge: error: <what went wrong, naming the file, line or path>
//	imaforge: hint: <what to do about it, when there is something to say>
//
// warnings as "imaforge: warning: ..." lines on stderr;
// results go to stdout (JSON with --json). Exit codes: 0 success, 1 the
// operation failed (a bad signature, a failed build), 2 usage or input errors
// (unknown flag, missing argument or required flag, a malformed manifest).
// Flags may be written before or after positional arguments (cli.go).
//
// Each subcommand lives in its own file and registers itself with register;
// the logic lives in importable packages, never here.
package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/imaforge/imaforge/internal/countio"
	"github.com/imaforge/imaforge/internal/memlimit"
)

// commands is filled by register calls in the init functions of the
// per-command files.
var commands []*cli.Command

func register(c *cli.Command) { commands = append(commands, c) }

// exitError carries an exit code, and a hint printed on its own line,
// through urfave/cli.
type exitError struct {
	code int
	err  error
	hint string
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErr marks err as a usage or input error (exit code 2).
func usageErr(err error) error { return &exitError{code: 2, err: err} }

// usageErrf formats a usage error.
func usageErrf(format string, args ...any) error { return usageErr(fmt.Errorf(format, args...)) }

// inputErr marks err as an input error (exit 2) when an input the command
// line names does not exist or may not be read; any other error (a read that
// fails midway, content that fails a check) keeps exit 1.
func inputErr(err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) {
		return usageErr(err)
	}
	return err
}

func newApp() *cli.App {
	sort.Slice(commands, func(i, j int) bool { return commands[i].Name < commands[j].Name })
	prepareCommands("imaforge", commands) // cli.go: conventions of every command
	v, cm := buildVersion()
	return &cli.App{
		Name:                 "imaforge",
		Usage:                "build signed, reproducible SquashFS images for Linux IMA appraisal",
		Version:              fmt.Sprintf("%s (commit %s)", v, cm),
		Commands:             commands,
		EnableBashCompletion: true,
		Action:               unknownCommand("imaforge"),
		OnUsageError: func(c *cli.Context, err error, isSubcommand bool) error {
			return usageHint("imaforge", err)
		},
		ExitErrHandler: func(*cli.Context, error) {}, // main prints and exits
	}
}

// defaultMemoryLimit is the floor of the Go heap's soft limit unless
// GOMEMLIMIT says otherwise; above it the limit follows the live heap,
// memoryLimitFactor times it (internal/memlimit). Below the floor the
// runtime's own goal (GOGC=100: twice the live heap) decides, so a build
// with less than half the floor live collects as any Go program does; the
// floor only stops a build with more from collecting without pause.
//
// The floor is most of the 512 MiB a million small files may take (issue 22):
// such a build holds its tree, nodes and file states (about 320 MiB) from the
// end of the walk on, and a limit at 1.4 times that left it about 80 MiB to
// allocate between collections, 93 of them, each marking the whole tree.
// With this floor instead of 100 MiB (3 alternating pairs of the million
// build, load 4-8, the same image): 77 collections instead of 90-92, the
// collector 11.0-12.3% of the CPU profile's samples instead of 13.3-13.4%,
// peak RSS 484-492 against 481-495 MiB (at the end the limit is still 1.4
// times the live heap's peak). 448 MiB, 7/8 of 512, leaves a margin for what
// is not Go heap (zstd's and libcrypto's memory, thread stacks: about 17 MiB
// with a fixed 470 MiB limit, GOMEMLIMIT, which gave 70 collections). The
// 100 MiB floor before kept builds between 50 and 224 MiB live lower, at
// the cost of collecting each time they had allocated 0.4 times their live
// heap; 50,000 small files (43 MiB live) peak at 117-124 MiB either way.
//
// The factor trades peak RSS (about the limit: factor times the live heap)
// against collections (one per factor-1 times the live heap allocated) once
// the live heap is above the floor's 1/factor. A
// million small files (scripts/bench-million.sh's tree, zstd-3, ECDSA
// P-256, about 355-380 B/file live; load 11-16, one run each, the hidden
// IMAFORGE_MEMLIMIT_FACTOR, floor 100 MiB): at 1.5 peak RSS 538 MiB, 83
// collections, GC share 0.077; at 1.4 465 MiB, 111, 0.090; at 1.3 444 MiB,
// 151, 0.107.
const (
	defaultMemoryLimit = 448 << 20
	memoryLimitFactor  = 1.4
)

// workerMain, set in the build with the signing service (serve_relic.go),
// runs relic's PKCS#11 token worker and exits when args ask for one.
var workerMain func(args []string)

func main() {
	if workerMain != nil {
		workerMain(os.Args) // returns unless this process is a token worker
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		f, err := memlimit.Factor(memoryLimitFactor, os.Getenv)
		if err != nil {
			fmt.Fprintln(os.Stderr, "imaforge:", err)
			os.Exit(2)
		}
		memlimit.Follow(defaultMemoryLimit, f)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	app := newApp()
	out := &countio.Writer{W: os.Stdout} // counts what a command wrote to stdout
	app.Writer = out
	err := app.RunContext(ctx, permuteArgs(app.Commands, os.Args)) // cli.go: flags after arguments
	stop()
	code := report(err)
	if err != nil && out.N == 0 && wantsJSON(os.Args) {
		writeJSONError(os.Stdout, err, code) // cli.go: --json errors are JSON too
	}
	os.Exit(code)
}

// report prints err in the documented style to stderr and returns the exit
// code.
func report(err error) int {
	if err == nil {
		return 0
	}
	code := 1
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	var ce cli.ExitCoder
	if ee == nil && errors.As(err, &ce) {
		code = 2 // urfave/cli's own errors are all about usage
	}
	fmt.Fprintf(os.Stderr, "imaforge: error: %v\n", err)
	if ee != nil && ee.hint != "" {
		fmt.Fprintf(os.Stderr, "imaforge: hint: %s\n", ee.hint)
	}
	return code
}
