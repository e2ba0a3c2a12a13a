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
// memoryLimitFactor times it (internal/memlimit). A fixed 100 MiB kept small
// builds near their live size (50,000 small files: 207 MiB peak RSS without
// a limit, 143 MiB with it, same wall time) but made large ones collect
// without pause once their live heap neared it (200,000 files: 50 of 74
// CPU-seconds in the collector).
//
// The factor trades peak RSS (about the limit: factor times the live heap)
// against collections (one per factor-1 times the live heap allocated). A
// million small files (scripts/bench-million.sh's tree, zstd-3, ECDSA
// P-256, about 355-380 B/file live; load 11-16, one run each, the hidden
// IMAFORGE_MEMLIMIT_FACTOR): at 1.5 peak RSS 538 MiB, 83 collections, GC
// share 0.077; at 1.4 465 MiB, 111, 0.090; at 1.3 444 MiB, 151, 0.107.
// The binary before at 1.5 in the same minutes: 599-622 MiB, 77-79, 0.075-
// 0.082 (0.040-0.045 on a quiet machine). 1.4 keeps a million files under
// 512 MiB with the collector's share about 1.1-1.2 times 1.5's.
const (
	defaultMemoryLimit = 100 << 20
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
