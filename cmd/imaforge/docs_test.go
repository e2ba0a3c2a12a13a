package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/imaforge/imaforge/internal/testenv"
)

// Runnable documentation. In README.md and docs/*.md, an HTML comment marks
// what a test runs (GitHub does not render it):
//
//	<!-- doctest NAME -->             the next fenced block is shell, run with bash -e
//	<!-- doctest NAME file=PATH -->   the next fenced block is written to PATH
//	<!-- doctest NAME                 the comment's own lines are shell: setup or
//	...                               checks the reader need not see
//	-->
//
// The files of one NAME are written into a fresh directory, then its shell
// steps run there in document order as one bash -e script (variables carry
// over) with the real imaforge on PATH (TestMain) and $REPO naming the
// repository; a command that fails fails the test, and the output shows the
// file:line of the block it was in. TestDocs runs every NAME of
// every file, so an example that stops working fails `make test`.

// docStep is one marked block.
type docStep struct {
	file  string // document
	line  int    // line of the marker
	path  string // file=PATH, or "" for shell
	text  string
	fence bool // from a fenced block (shown to the reader)
}

var docMarker = regexp.MustCompile(`^<!-- doctest (\S+)(?: file=(\S+))?( -->)?\s*$`)

// parseDocTests returns the doc tests of a Markdown file by name.
func parseDocTests(file string, data string) (map[string][]docStep, error) {
	tests := map[string][]docStep{}
	sc := bufio.NewScanner(strings.NewReader(data))
	sc.Buffer(nil, 1<<20)
	n := 0
	next := func() (string, bool) {
		if !sc.Scan() {
			return "", false
		}
		n++
		return sc.Text(), true
	}
	for {
		l, ok := next()
		if !ok {
			break
		}
		m := docMarker.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		st := docStep{file: file, line: n, path: m[2]}
		var body []string
		if m[3] == "" { // multi-line comment: its lines are the step
			for {
				l, ok := next()
				if !ok {
					return nil, fmt.Errorf("%s:%d: doctest comment not closed", file, st.line)
				}
				if strings.TrimSpace(l) == "-->" {
					break
				}
				body = append(body, l)
			}
		} else { // the next fenced block
			l, ok := next()
			for ok && strings.TrimSpace(l) == "" {
				l, ok = next()
			}
			if !ok || !strings.HasPrefix(l, "```") {
				return nil, fmt.Errorf("%s:%d: doctest marker not followed by a fenced block", file, st.line)
			}
			st.fence = true
			for {
				l, ok := next()
				if !ok {
					return nil, fmt.Errorf("%s:%d: fenced block not closed", file, st.line)
				}
				if strings.HasPrefix(l, "```") {
					break
				}
				body = append(body, l)
			}
		}
		st.text = strings.Join(body, "\n") + "\n"
		tests[m[1]] = append(tests[m[1]], st)
	}
	return tests, sc.Err()
}

func TestDocs(t *testing.T) {
	bash := testenv.NeedTool(t, "bash")
	root := filepath.Join("..", "..")
	docs, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	docs = append([]string{filepath.Join(root, "README.md")}, docs...)
	absRoot, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, doc := range docs {
		data, err := os.ReadFile(doc)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, doc)
		tests, err := parseDocTests(rel, string(data))
		if err != nil {
			t.Fatal(err)
		}
		names := make([]string, 0, len(tests))
		for name := range tests {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			total++
			steps := tests[name]
			t.Run(rel+"/"+name, func(t *testing.T) {
				dir := t.TempDir()
				var script strings.Builder
				for _, st := range steps {
					if st.path == "" {
						// a marker line on stderr says which block failed
						fmt.Fprintf(&script, "echo '>>> %s:%d' >&2\n%s", st.file, st.line, st.text)
						continue
					}
					p := filepath.Join(dir, st.path)
					if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(p, []byte(st.text), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				cmd := exec.Command(bash, "-e", "-o", "pipefail", "-c", script.String())
				cmd.Dir = dir
				cmd.Env = append(os.Environ(), "REPO="+absRoot)
				out, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("%v\n%s", err, out)
				}
			})
		}
	}
	if total < 5 {
		t.Errorf("only %d doc tests found in README.md and docs/*.md", total)
	}
}

func TestParseDocTests(t *testing.T) {
	md := "text\n<!-- doctest a -->\n```sh\necho one\n```\n<!-- doctest a file=x/m.yaml -->\n\n```yaml\nk: v\n```\n" +
		"<!-- doctest b\ntest -f x\n-->\n```sh\nnot marked\n```\n"
	got, err := parseDocTests("d.md", md)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || len(got["a"]) != 2 || len(got["b"]) != 1 ||
		got["a"][0].text != "echo one\n" || got["a"][1].path != "x/m.yaml" || got["a"][1].text != "k: v\n" ||
		got["b"][0].text != "test -f x\n" || got["b"][0].fence || got["a"][0].line != 2 {
		t.Errorf("parsed %+v", got)
	}
	for _, bad := range []string{"<!-- doctest a -->\ntext\n", "<!-- doctest a -->\n```\nopen\n", "<!-- doctest a\nopen\n"} {
		if _, err := parseDocTests("d.md", bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func FuzzParseDocTests(f *testing.F) {
	for _, p := range []string{filepath.Join("..", "..", "README.md"), filepath.Join("..", "..", "docs", "pki.md")} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(string(b))
		}
	}
	f.Add("<!-- doctest a -->\n```sh\necho\n```\n<!-- doctest a\nx\n-->\n")
	f.Fuzz(func(t *testing.T, md string) {
		tests, err := parseDocTests("f.md", md)
		if err != nil {
			return
		}
		for _, steps := range tests {
			for _, st := range steps {
				if st.line < 1 || !strings.HasSuffix(st.text, "\n") {
					t.Fatalf("step %+v", st)
				}
			}
		}
	})
}
