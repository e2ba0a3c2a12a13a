package main

import (
	"slices"
	"testing"

	"github.com/urfave/cli/v2"
)

func TestParseArgsUsage(t *testing.T) {
	for _, tt := range []struct {
		usage string
		ok    bool
		min   int
		max   int // -1: any
	}{
		{"", true, 0, 0},
		{"IMAGE", true, 1, 1},
		{"DIR OUT", true, 2, 2},
		{"FILE...", true, 1, -1},
		{"[DIR]", true, 0, 1},
		{"[FILE...]", true, 0, -1},
		{"[FILE]...", true, 0, -1},
		{"SRC [DST]", true, 1, 2},
		{"[A] B", false, 0, 0},
		{"FILE... MORE", false, 0, 0},
		{"<file>", false, 0, 0},
	} {
		spec, ok := parseArgsUsage(tt.usage)
		if ok != tt.ok {
			t.Errorf("%q: ok %v, want %v", tt.usage, ok, tt.ok)
			continue
		}
		if !ok {
			continue
		}
		for n := 0; n <= 4; n++ {
			want := n >= tt.min && (tt.max < 0 || n <= tt.max)
			if got := spec.check(n) == nil; got != want {
				t.Errorf("%q with %d arguments: accepted %v, want %v", tt.usage, n, got, want)
			}
		}
	}
}

// TestArgsUsageChecked: every command's synopsis is in a shape the argument
// check reads, so none escapes it.
func TestArgsUsageChecked(t *testing.T) {
	var walk func(string, []*cli.Command)
	walk = func(path string, cmds []*cli.Command) {
		for _, c := range cmds {
			if _, ok := parseArgsUsage(c.ArgsUsage); !ok {
				t.Errorf("%s %s: ArgsUsage %q is not checked", path, c.Name, c.ArgsUsage)
			}
			walk(path+" "+c.Name, c.Subcommands)
		}
	}
	walk("imaforge", newApp().Commands)
}

func TestPermuteArgs(t *testing.T) {
	app := newApp()
	for _, tt := range []struct{ in, want []string }{
		{[]string{"verify", "img", "--cert", "c", "-v"}, []string{"verify", "--cert", "c", "-v", "img"}},
		{[]string{"verify", "--cert=c", "img"}, []string{"verify", "--cert=c", "img"}},
		{[]string{"file", "verify", "a", "--sigfile", "b", "--cert", "c"}, []string{"file", "verify", "--sigfile", "--cert", "c", "a", "b"}},
		{[]string{"file", "verify", "--cert", "c", "--", "-v"}, []string{"file", "verify", "--cert", "c", "--", "-v"}},
		{[]string{"file", "verify", "-", "--cert", "c"}, []string{"file", "verify", "--cert", "c", "-"}},
		{[]string{"squashfs", "pack", "d", "o", "--bogus"}, []string{"squashfs", "pack", "--bogus", "d", "o"}},
		{[]string{"verify", "img", "--generate-bash-completion"}, []string{"verify", "img", "--generate-bash-completion"}},
		{[]string{"--version"}, []string{"--version"}},
		{[]string{"nosuch", "x", "--y"}, []string{"nosuch", "x", "--y"}},
	} {
		got := permuteArgs(app.Commands, append([]string{"imaforge"}, tt.in...))[1:]
		if !slices.Equal(got, tt.want) {
			t.Errorf("%q: got %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCount(t *testing.T) {
	for _, c := range []struct {
		n    int64
		want string
	}{{0, "0 files"}, {1, "1 file"}, {2, "2 files"}, {15036, "15036 files"}} {
		if got := count(c.n, "file"); got != c.want {
			t.Errorf("count(%d) = %q, want %q", c.n, got, c.want)
		}
	}
}
