package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/cpuguy83/go-md2man/v2/md2man"
	"github.com/urfave/cli/v2"

	"github.com/imaforge/imaforge/internal/atomicfile"
)

func init() {
	register(&cli.Command{
		Name:      "man",
		Usage:     "write the manual pages: DIR/imaforge.1 and DIR/imaforge-COMMAND.1 for every command",
		ArgsUsage: "DIR",
		Hidden:    true, // make build runs it; the pages ship in the .deb
		Action: func(c *cli.Context) error {
			return writeManPages(c.App, c.Args().First())
		},
	})
}

// writeManPages writes imaforge.1 (every command, from urfave/cli) and one
// page per command with subcommands' own pages, generated from the command
// tree: name, synopsis, description, options, examples.
func writeManPages(app *cli.App, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	pages := map[string][]byte{}
	var walk func(path string, cmds []*cli.Command)
	walk = func(path string, cmds []*cli.Command) {
		for _, c := range cmds {
			if c.Hidden || c.Name == "help" {
				continue
			}
			p := strings.TrimSpace(path + " " + c.Name)
			pages["imaforge-"+strings.ReplaceAll(p, " ", "-")+".1"] = md2man.Render([]byte(commandManMarkdown(p, c)))
			walk(p, c.Subcommands)
		}
	}
	walk("", app.Commands)
	main, err := app.ToManWithSection(1)
	if err != nil {
		return err
	}
	pages["imaforge.1"] = []byte(main)
	for name, b := range pages {
		if err := atomicfile.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// commandManMarkdown is the page of the command at path ("pki issue") in
// go-md2man's Markdown.
func commandManMarkdown(path string, c *cli.Command) string {
	name := "imaforge-" + strings.ReplaceAll(path, " ", "-")
	var b strings.Builder
	fmt.Fprintf(&b, "%% %s 1\n\n# NAME\n\n%s - %s\n\n# SYNOPSIS\n\n**imaforge %s**", name, name, c.Usage, path)
	if len(c.Subcommands) > 0 {
		b.WriteString(" *COMMAND*")
	}
	if len(c.Flags) > 0 {
		b.WriteString(" [*OPTIONS*]")
	}
	if c.ArgsUsage != "" {
		fmt.Fprintf(&b, " *%s*", c.ArgsUsage)
	}
	b.WriteString("\n\n")
	if c.Description != "" {
		fmt.Fprintf(&b, "# DESCRIPTION\n\n%s\n\n", manEscape(c.Description))
	}
	var subs []string
	for _, s := range c.Subcommands {
		if !s.Hidden && s.Name != "help" {
			subs = append(subs, s.Name)
			if len(subs) == 1 {
				b.WriteString("# COMMANDS\n\n")
			}
			fmt.Fprintf(&b, "**%s**\n: %s (see **%s-%s**(1))\n\n", s.Name, manEscape(s.Usage), name, s.Name)
		}
	}
	var opts []string
	for _, f := range c.Flags {
		var names []string
		for _, n := range f.Names() {
			if n == "help" || n == "h" {
				continue
			}
			if len(n) == 1 {
				names = append(names, "**-"+n+"**")
			} else {
				names = append(names, "**--"+n+"**")
			}
		}
		if len(names) == 0 {
			continue
		}
		usage := ""
		if d, ok := f.(cli.DocGenerationFlag); ok {
			usage = d.GetUsage()
			if v := d.GetValue(); v != "" && v != "0" && d.TakesValue() {
				usage += " (default: " + v + ")"
			}
		}
		opts = append(opts, fmt.Sprintf("%s\n: %s\n", strings.Join(names, ", "), manEscape(usage)))
	}
	if len(opts) > 0 {
		fmt.Fprintf(&b, "# OPTIONS\n\n%s\n", strings.Join(opts, "\n"))
	}
	if ex := examples[path]; ex != "" {
		fmt.Fprintf(&b, "# EXAMPLES\n\n```\n%s\n```\n\n", strings.TrimSpace(ex))
	}
	b.WriteString("# EXIT STATUS\n\n0 success, 1 the operation failed, 2 usage or input error.\n\n# SEE ALSO\n\n**imaforge**(1)\n")
	return b.String()
}

// manEscape keeps Markdown from reading text as markup.
func manEscape(s string) string {
	r := strings.NewReplacer("\\", "\\\\", "*", "\\*", "_", "\\_", "`", "")
	return r.Replace(s)
}
