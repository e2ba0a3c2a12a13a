package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"
)

// The conventions every command follows, applied once here to the whole
// command tree rather than by each command:
//
//   - flags may come before or after positional arguments
//     ("imaforge verify IMAGE --cert C" and "imaforge verify --cert C IMAGE"
//     are the same; after "--" everything is an argument): permuteArgs;
//   - the positional arguments are checked against the command's ArgsUsage
//     ("IMAGE": exactly one, "FILE...": one or more, "[DIR]": optional, none
//     when it is empty), and required flags are checked: a missing or
//     unexpected argument, a missing required flag, an unknown flag or a bad
//     flag value is a usage error, exit code 2, with a hint naming the help.

// permuteArgs returns args (os.Args) with the flags of the command they name
// moved before its positional arguments, because urfave/cli stops parsing
// flags at the first positional argument. The command is found by walking
// cmds with the leading non-flag words; a flag's value is taken with it
// unless the flag is boolean; "--" and what follows stay last. Unknown flags
// are moved as if boolean, so the parser still reports them.
func permuteArgs(cmds []*cli.Command, args []string) []string {
	if len(args) < 2 {
		return args
	}
	out := []string{args[0]}
	rest := args[1:]
	// urfave/cli's shell completion looks for its flag in the last place.
	var tail []string
	if n := len(rest); rest[n-1] == "--generate-bash-completion" {
		rest, tail = rest[:n-1], rest[n-1:]
	}
	var flags []cli.Flag
	found := false
	// Walk down the command names; flags of the levels passed are kept in
	// place (they belong to that level).
	for len(rest) > 0 {
		w := rest[0]
		if strings.HasPrefix(w, "-") && w != "-" {
			if w == "--" {
				break
			}
			n := flagWords(flags, rest)
			out, rest = append(out, rest[:n]...), rest[n:]
			continue
		}
		c := findCommand(cmds, w)
		if c == nil {
			break
		}
		out, rest = append(out, w), rest[1:]
		cmds, flags, found = c.Subcommands, c.Flags, true
	}
	if !found { // no command: leave "imaforge nosuch --x" for its error
		return args
	}
	var pos []string
	for len(rest) > 0 {
		w := rest[0]
		switch {
		case w == "--":
			pos = append(pos, rest...)
			rest = nil
		case strings.HasPrefix(w, "-") && w != "-":
			n := flagWords(flags, rest)
			out, rest = append(out, rest[:n]...), rest[n:]
		default:
			pos, rest = append(pos, w), rest[1:]
		}
	}
	if len(pos) > 0 && pos[0] != "--" && hasDashArg(pos) {
		out = append(out, "--") // keep "-x" arguments arguments
	}
	return append(append(out, pos...), tail...)
}

// flagWords returns how many words of a (a[0] is a flag) belong to the flag:
// two when it takes a value given as the next word, else one.
func flagWords(flags []cli.Flag, a []string) int {
	name := strings.TrimLeft(a[0], "-")
	if strings.Contains(name, "=") || len(a) < 2 {
		return 1
	}
	for _, f := range flags {
		for _, n := range f.Names() {
			if n != name {
				continue
			}
			if v, ok := f.(cli.DocGenerationFlag); ok && v.TakesValue() {
				return 2
			}
			return 1
		}
	}
	return 1
}

func hasDashArg(a []string) bool {
	for _, w := range a {
		if strings.HasPrefix(w, "-") && w != "-" {
			return true
		}
	}
	return false
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		for _, n := range c.Names() {
			if n == name {
				return c
			}
		}
	}
	return nil
}

// argSpec is what a command's ArgsUsage says about its positional arguments.
type argSpec struct {
	names    []string // the required ones, in order
	optional int      // how many optional ones follow
	variadic bool     // the last may repeat
}

var argWord = regexp.MustCompile(`^(\[)?([A-Z][A-Z0-9_]*)(\.\.\.)?(\])?(\.\.\.)?$`)

// parseArgsUsage reads "MANIFEST", "DIR OUT", "FILE...", "[DIR]",
// "[FILE...]"; ok is false for text in another shape, which is not checked.
func parseArgsUsage(s string) (spec argSpec, ok bool) {
	for _, w := range strings.Fields(s) {
		m := argWord.FindStringSubmatch(w)
		if m == nil || (m[1] == "") != (m[4] == "") || spec.variadic {
			return spec, false
		}
		if m[1] != "" {
			spec.optional++
		} else if spec.optional > 0 {
			return spec, false // a required argument after an optional one
		} else {
			spec.names = append(spec.names, m[2])
		}
		spec.variadic = m[3] != "" || m[5] != ""
	}
	return spec, true
}

// check returns a usage error if n arguments do not fit the spec.
func (s argSpec) check(n int) error {
	switch {
	case n < len(s.names):
		return fmt.Errorf("missing argument %s", s.names[n])
	case !s.variadic && n > len(s.names)+s.optional:
		return fmt.Errorf("unexpected argument (takes %s)", s.describe())
	}
	return nil
}

func (s argSpec) describe() string {
	if len(s.names) == 0 && s.optional == 0 {
		return "no arguments"
	}
	n := len(s.names) + s.optional
	if n == 1 {
		return "1 argument"
	}
	return fmt.Sprintf("at most %d arguments", n)
}

// prepareCommands applies the conventions to cmds and their subcommands;
// parent is the command path above them ("imaforge pki").
func prepareCommands(parent string, cmds []*cli.Command) {
	for _, c := range cmds {
		path := parent + " " + c.Name
		c.OnUsageError = func(_ *cli.Context, err error, _ bool) error {
			return usageHint(path, err)
		}
		if ex := examples[cmdPath(path)]; ex != "" {
			c.CustomHelpTemplate = cli.CommandHelpTemplate + "\nEXAMPLES:\n   " +
				strings.ReplaceAll(strings.TrimSpace(ex), "\n", "\n   ") + "\n"
		}
		prepareCommands(path, c.Subcommands)
		if c.Action == nil {
			c.Action = unknownCommand(path)
			continue
		}
		required := unrequire(c.Flags)
		spec, checked := parseArgsUsage(c.ArgsUsage)
		action := c.Action
		c.Action = func(ctx *cli.Context) error {
			for _, f := range required {
				if !isSet(ctx, f) {
					return usageHint(path, fmt.Errorf("missing required flag --%s", f.Names()[0]))
				}
			}
			if checked {
				if err := spec.check(ctx.NArg()); err != nil {
					return usageHint(path, err)
				}
			}
			return action(ctx)
		}
	}
}

// unrequire returns the flags marked Required and clears the mark, so that
// the command's wrapper checks them (urfave/cli's own check prints the help
// to stdout and exits 1).
func unrequire(flags []cli.Flag) []cli.Flag {
	var req []cli.Flag
	for _, f := range flags {
		var r *bool
		switch f := f.(type) {
		case *cli.StringFlag:
			r = &f.Required
		case *cli.StringSliceFlag:
			r = &f.Required
		case *cli.IntFlag:
			r = &f.Required
		case *cli.BoolFlag:
			r = &f.Required
		case *cli.PathFlag:
			r = &f.Required
		case *cli.Int64Flag:
			r = &f.Required
		case *cli.UintFlag:
			r = &f.Required
		case *cli.DurationFlag:
			r = &f.Required
		case *cli.TimestampFlag:
			r = &f.Required
		}
		if r != nil && *r {
			*r = false
			req = append(req, f)
		}
	}
	return req
}

func isSet(c *cli.Context, f cli.Flag) bool {
	for _, n := range f.Names() {
		if c.IsSet(n) {
			return true
		}
	}
	return false
}

// usageHint is a usage error of the command at path, with a hint to its help.
// The flag package's "flag provided but not defined: -x" becomes
// "unknown flag --x".
func usageHint(path string, err error) error {
	const undefined = "flag provided but not defined: -"
	if m := err.Error(); strings.HasPrefix(m, undefined) {
		err = fmt.Errorf("unknown flag --%s", strings.TrimPrefix(m, undefined))
	}
	return &exitError{code: 2, err: fmt.Errorf("%s%w", cmdPrefix(path), err),
		hint: fmt.Sprintf("see '%s --help'", path)}
}

// cmdPrefix is "pki verify: " for "imaforge pki verify", "" for "imaforge".
func cmdPrefix(path string) string {
	if p := cmdPath(path); p != "" {
		return p + ": "
	}
	return ""
}

// cmdPath is "pki verify" for "imaforge pki verify".
func cmdPath(path string) string { return strings.TrimSpace(strings.TrimPrefix(path, "imaforge")) }

// unknownCommand is the action of a command that only groups others: help
// without arguments, a usage error naming the nearest command otherwise.
func unknownCommand(path string) cli.ActionFunc {
	return func(c *cli.Context) error {
		if c.NArg() == 0 {
			return cli.ShowSubcommandHelp(c)
		}
		name := c.Args().First()
		cmds := c.Command.Subcommands
		if cmds == nil { // the application
			cmds = c.App.Commands
		}
		var names []string
		for _, s := range cmds {
			if !s.Hidden {
				names = append(names, s.Name)
			}
		}
		sort.Strings(names)
		hint := fmt.Sprintf("commands: %s; see '%s --help'", strings.Join(names, ", "), path)
		return &exitError{code: 2, err: fmt.Errorf("%sunknown command %q", cmdPrefix(path), name), hint: hint}
	}
}

func init() {
	cli.VersionFlag = &cli.BoolFlag{Name: "version", Usage: "print the version and commit"}
	cli.VersionPrinter = func(c *cli.Context) {
		fmt.Fprintf(c.App.Writer, "imaforge %s\n", c.App.Version)
	}
}

// wantsJSON reports whether --json is among the flags of args (before "--").
func wantsJSON(args []string) bool {
	for _, a := range args[1:] {
		if a == "--" {
			return false
		}
		if a == "--json" || a == "--json=true" {
			return true
		}
	}
	return false
}

// jsonError is what a command given --json prints on stdout when it fails
// before writing its own result: the error (as on stderr) and the exit code.
type jsonError struct {
	Error    string `json:"error"`
	Hint     string `json:"hint,omitempty"`
	ExitCode int    `json:"exit_code"`
}

func writeJSONError(w io.Writer, err error, code int) {
	je := jsonError{Error: err.Error(), ExitCode: code}
	var ee *exitError
	if errors.As(err, &ee) {
		je.Hint = ee.hint
	}
	printJSON(w, je) //nolint:errcheck // stdout is gone: nothing left to report to
}

// printJSON writes v as the indented JSON document every --json command
// prints on stdout, one per run.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// count says n things: "1 file", "2 files" (word is the singular and
// takes an s).
func count(n int64, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return strconv.FormatInt(n, 10) + " " + word + "s"
}

// jsonFlag is the --json flag of a command that reports.
func jsonFlag(what string) cli.Flag {
	return &cli.BoolFlag{Name: "json", Usage: "print " + what + " as JSON on stdout (errors too)"}
}
