package main

import (
	"fmt"
	"runtime/debug"

	"github.com/urfave/cli/v2"
)

// Set with -ldflags "-X main.version=... -X main.commit=..." by the Makefile.
var (
	version = ""
	commit  = ""
)

// buildVersion returns the version and commit, falling back to the module
// build information when the linker did not set them.
func buildVersion() (v, c string) {
	v, c = version, commit
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && c == "" {
				c = s.Value
			}
		}
	}
	if v == "" || v == "(devel)" {
		v = "devel"
	}
	if c == "" {
		c = "unknown"
	}
	return v, c
}

func init() {
	register(&cli.Command{
		Name:  "version",
		Usage: "print the version and commit",
		Action: func(c *cli.Context) error {
			v, cm := buildVersion()
			_, err := fmt.Fprintf(c.App.Writer, "imaforge %s (commit %s)\n", v, cm)
			return err
		},
	})
}
