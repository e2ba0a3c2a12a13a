package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/imaforge/imaforge/internal/testenv"
)

// treeNode is what the command tree says a command path offers.
type treeNode struct {
	path       []string
	subs       []string // names and aliases of visible subcommands
	flags      []string // every flag name, as typed
	hasAction  bool
	hasExample bool
}

// commandTree walks newApp's commands directly (not through the completion
// generator), for the tests to compare the generated files with.
func commandTree(t *testing.T) []treeNode {
	t.Helper()
	var nodes []treeNode
	var walk func(path []string, cmds []*cli.Command, flags []cli.Flag, action bool)
	walk = func(path []string, cmds []*cli.Command, flags []cli.Flag, action bool) {
		n := treeNode{path: path, hasAction: action && len(cmds) == 0, hasExample: examples[strings.Join(path, " ")] != ""}
		for _, c := range cmds {
			if !c.Hidden && c.Name != "help" {
				n.subs = append(n.subs, c.Names()...)
			}
		}
		for _, f := range flags {
			if v, ok := f.(cli.VisibleFlag); ok && !v.IsVisible() {
				continue
			}
			for _, name := range f.Names() {
				if name == "help" || name == "h" {
					continue
				}
				if len(name) == 1 {
					n.flags = append(n.flags, "-"+name)
				} else {
					n.flags = append(n.flags, "--"+name)
				}
			}
		}
		n.flags = append(n.flags, "--help")
		if len(path) == 0 {
			n.flags = append(n.flags, "--version")
		}
		sort.Strings(n.subs)
		sort.Strings(n.flags)
		nodes = append(nodes, n)
		for _, c := range cmds {
			if !c.Hidden && c.Name != "help" {
				walk(append(slices.Clone(path), c.Name), c.Subcommands, c.Flags, c.Action != nil)
			}
		}
	}
	walk(nil, newApp().Commands, nil, false)
	if len(nodes) < 20 {
		t.Fatalf("command tree has %d nodes", len(nodes))
	}
	return nodes
}

// TestBashCompletion runs the generated bash completion function for every
// command path of the tree and compares what it offers with the tree: the
// subcommands for a word, the flags for "-".
func TestBashCompletion(t *testing.T) {
	bash := testenv.NeedTool(t, "bash")
	script, _, code := runCLI(t, "completion", "bash")
	if code != 0 {
		t.Fatalf("completion bash: exit %d", code)
	}
	nodes := commandTree(t)
	var prog bytes.Buffer
	prog.WriteString(script)
	for _, n := range nodes {
		for _, cur := range []string{"", "-"} {
			words := append(append([]string{"imaforge"}, n.path...), cur)
			fmt.Fprintf(&prog, "COMP_WORDS=(%s); COMP_CWORD=%d; _imaforge; echo \"${COMPREPLY[*]}\"\n",
				quoteWords(words), len(words)-1)
		}
	}
	out, err := exec.Command(bash, "-c", prog.String()).Output()
	if err != nil {
		t.Fatalf("bash: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != 2*len(nodes) {
		t.Fatalf("%d lines of completions for %d nodes", len(lines), len(nodes))
	}
	for i, n := range nodes {
		subs, flags := strings.Fields(lines[2*i]), strings.Fields(lines[2*i+1])
		sort.Strings(subs)
		sort.Strings(flags)
		if !slices.Equal(subs, n.subs) {
			t.Errorf("imaforge %s <TAB>: %q, want %q", strings.Join(n.path, " "), subs, n.subs)
		}
		if !slices.Equal(flags, n.flags) {
			t.Errorf("imaforge %s -<TAB>: %q, want %q", strings.Join(n.path, " "), flags, n.flags)
		}
	}
	// Flags and their values before a subcommand do not change the node.
	out, err = exec.Command(bash, "-c", script+`COMP_WORDS=(imaforge pki issue --name x ''); COMP_CWORD=5; _imaforge; echo "${#COMPREPLY[@]}"
COMP_WORDS=(imaforge ceremony audit ''); COMP_CWORD=3; _imaforge; echo "${COMPREPLY[*]}"`).Output()
	if err != nil || string(out) != "0\nverify\n" {
		t.Errorf("completion after flags / nested: %q %v", out, err)
	}
}

func quoteWords(ws []string) string {
	q := make([]string, len(ws))
	for i, w := range ws {
		q[i] = "'" + w + "'"
	}
	return strings.Join(q, " ")
}

// TestZshFishCompletion loads the zsh and fish scripts in their shells
// (syntax) and runs each for every node of the tree: the commands and flags
// it offers must be the tree's.
func TestZshFishCompletion(t *testing.T) {
	nodes := commandTree(t)
	for _, sh := range []string{"zsh", "fish"} {
		t.Run(sh, func(t *testing.T) {
			bin := testenv.NeedTool(t, sh)
			script, _, code := runCLI(t, "completion", sh)
			if code != 0 {
				t.Fatalf("completion %s: exit %d", sh, code)
			}
			f := filepath.Join(t.TempDir(), "imaforge."+sh)
			if err := os.WriteFile(f, []byte(script), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(bin, "-n", f).CombinedOutput(); err != nil {
				t.Fatalf("%s -n: %v\n%s", sh, err, out)
			}
			if sh == "zsh" {
				checkZshCompletion(t, bin, f, nodes)
				return
			}
			// fish itself completes every node of the tree.
			var prog strings.Builder
			fmt.Fprintf(&prog, "source %s\n", f)
			for _, n := range nodes {
				line := strings.Join(append([]string{"imaforge"}, n.path...), " ") + " "
				fmt.Fprintf(&prog, "echo (complete -C %s | string match -rv '^[./]|/' | string split -f1 \\t)\n", fishQuote(line))
				fmt.Fprintf(&prog, "echo (complete -C %s | string split -f1 \\t)\n", fishQuote(line+"-"))
			}
			out, err := exec.Command(bin, "--no-config", "-c", prog.String()).Output()
			if err != nil {
				t.Fatalf("fish: %v", err)
			}
			lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
			if len(lines) != 2*len(nodes) {
				t.Fatalf("%d lines of completions for %d nodes:\n%s", len(lines), len(nodes), out)
			}
			for i, n := range nodes {
				subs, flags := strings.Fields(lines[2*i]), strings.Fields(lines[2*i+1])
				sort.Strings(subs)
				sort.Strings(flags)
				if len(n.subs) > 0 && !slices.Equal(subs, n.subs) {
					t.Errorf("fish: imaforge %s <TAB>: %q, want %q", strings.Join(n.path, " "), subs, n.subs)
				}
				if !slices.Equal(flags, n.flags) {
					t.Errorf("fish: imaforge %s -<TAB>: %q, want %q", strings.Join(n.path, " "), flags, n.flags)
				}
			}
		})
	}
}

// checkZshCompletion loads the zsh script as compsys does and runs its
// function for every node of the tree. The script registers itself with the
// real compinit; _describe and _files are then replaced by functions that
// print what they were given (the names before each ":description"), since
// compadd only works inside a completion widget.
func checkZshCompletion(t *testing.T, zsh, script string, nodes []treeNode) {
	t.Helper()
	var prog strings.Builder
	fmt.Fprintf(&prog, `autoload -U compinit && compinit -u -d %s
source %s
print -r -- "registered ${_comps[imaforge]}"
_describe() { local -a a; a=("${(@P)4}"); print -r -- "${(j: :)${a[@]%%%%:*}}"; }
_files() { print -r -- FILES; }
`, filepath.Join(t.TempDir(), "zcompdump"), script)
	for _, n := range nodes {
		for _, cur := range []string{"", "-"} {
			words := append(append([]string{"imaforge"}, n.path...), cur)
			fmt.Fprintf(&prog, "words=(%s); CURRENT=%d; _imaforge\n", quoteWords(words), len(words))
		}
	}
	// flags and their values before a subcommand do not change the node
	prog.WriteString("words=(imaforge pki issue --name x ''); CURRENT=5; _imaforge\n")
	out, err := exec.Command(zsh, "-f", "-c", prog.String()).CombinedOutput()
	if err != nil {
		t.Fatalf("zsh: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != 2*len(nodes)+2 || lines[0] != "registered _imaforge" {
		t.Fatalf("zsh: %d lines for %d nodes, want the registration first:\n%s", len(lines), len(nodes), out)
	}
	lines = lines[1:]
	for i, n := range nodes {
		subs, flags := strings.Fields(lines[2*i]), strings.Fields(lines[2*i+1])
		sort.Strings(subs)
		sort.Strings(flags)
		want := n.subs
		if len(want) == 0 {
			want = []string{"FILES"}
		}
		if !slices.Equal(subs, want) {
			t.Errorf("zsh: imaforge %s <TAB>: %q, want %q", strings.Join(n.path, " "), subs, want)
		}
		if !slices.Equal(flags, n.flags) {
			t.Errorf("zsh: imaforge %s -<TAB>: %q, want %q", strings.Join(n.path, " "), flags, n.flags)
		}
	}
	if last := lines[len(lines)-1]; last != "FILES" {
		t.Errorf("zsh: imaforge pki issue --name x <TAB>: %q, want file names", last)
	}
}

// TestManPages: a page per command of the tree, no page for a command that
// is not there, every flag on its command's page, the examples on it.
func TestManPages(t *testing.T) {
	dir := t.TempDir()
	if _, errOut, code := runCLI(t, "man", dir); code != 0 {
		t.Fatalf("man: exit %d %s", code, errOut)
	}
	want := map[string]bool{"imaforge.1": true}
	for _, n := range commandTree(t)[1:] {
		name := "imaforge-" + strings.Join(n.path, "-") + ".1"
		want[name] = true
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Error(err)
			continue
		}
		page := strings.ReplaceAll(string(b), `\-`, "-")
		for _, fl := range n.flags {
			if fl != "--help" && !strings.Contains(page, fl) {
				t.Errorf("%s lacks %s", name, fl)
			}
		}
		for _, s := range n.subs {
			if !strings.Contains(page, s) {
				t.Errorf("%s lacks subcommand %s", name, s)
			}
		}
		if n.hasExample && !strings.Contains(page, "EXAMPLES") {
			t.Errorf("%s lacks the examples", name)
		}
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !want[e.Name()] {
			t.Errorf("page %s for no command", e.Name())
		}
	}
	if len(ents) != len(want) {
		t.Errorf("%d pages, want %d", len(ents), len(want))
	}
}

// TestEveryCommandHasExamples: each command that runs something shows
// examples in its --help, and every example belongs to a command.
func TestEveryCommandHasExamples(t *testing.T) {
	paths := map[string]bool{}
	for _, n := range commandTree(t) {
		p := strings.Join(n.path, " ")
		paths[p] = true
		if n.hasAction && !n.hasExample {
			t.Errorf("imaforge %s: no examples (cmd/imaforge/examples.go)", p)
		}
	}
	for p := range examples {
		if !paths[p] {
			t.Errorf("examples for %q, which is no command", p)
		}
	}
	out, _, code := runCLI(t, "help", "verify")
	if code != 0 || !strings.Contains(out, "EXAMPLES:\n   imaforge verify ") {
		t.Errorf("help verify: exit %d, no examples:\n%s", code, out)
	}
}
