// Package scripts holds the tests of the shell scripts beside it: the
// benchmark report tooling of `make bench` (scripts/bench.sh,
// scripts/bench-lib.sh, scripts/bench-report.sh) against fixtures and golden
// files in testdata/bench. The benchmarks themselves are never run here.
package scripts

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/imaforge/imaforge/internal/testenv"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/bench")

// run runs a bash command line in this directory with the tools the
// scripts need; it returns stdout and fails the test on a non-zero exit
// unless wantFail.
func run(t *testing.T, wantFail bool, env []string, args ...string) (string, string) {
	t.Helper()
	testenv.NeedTool(t, "jq")
	cmd := exec.Command(testenv.NeedTool(t, "bash"), args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if wantFail && err == nil {
		t.Fatalf("%v succeeded, want a failure\n%s", args, stdout.String())
	}
	if !wantFail && err != nil {
		t.Fatalf("%v: %v\n%s", args, err, stderr.String())
	}
	return stdout.String(), stderr.String()
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "bench", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test ./scripts/ -update rewrites it):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func readJSON(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

// TestBenchReportCollect: collect wraps the rows of two runs and the
// parts' timings into the document the fixture testdata/bench/bench.json
// is (the date and commit aside).
func TestBenchReportCollect(t *testing.T) {
	out := filepath.Join(t.TempDir(), "bench.json")
	run(t, false, nil, "bench-report.sh", "collect", "testdata/bench/rows.jsonl", out, "full", "testdata/bench/parts.jsonl")
	got := readJSON(t, out)
	if d, _ := got["date"].(string); len(d) != len("2026-12-05T05:00Z") || !strings.HasSuffix(d, "Z") {
		t.Errorf("date = %q, want YYYY-MM-DDTHH:MMZ", d)
	}
	if c, _ := got["commit"].(string); c == "" {
		t.Error("no commit")
	}
	want := readJSON(t, "testdata/bench/bench.json")
	for _, doc := range []map[string]any{got, want} {
		delete(doc, "date")
		delete(doc, "commit")
		delete(doc, "cpus")
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("collect differs from testdata/bench/bench.json:\n%v\n%v", got, want)
	}
	if got["runs"] != 2.0 {
		t.Errorf("runs = %v, want 2", got["runs"])
	}

	// without the parts' file: no parts, the runs counted from the rows
	run(t, false, nil, "bench-report.sh", "collect", "testdata/bench/rows.jsonl", out, "quick")
	got = readJSON(t, out)
	if got["runs"] != 2.0 || got["mode"] != "quick" || len(got["parts"].([]any)) != 0 || len(got["rows"].([]any)) != 15 {
		t.Errorf("collect without parts: runs %v mode %v parts %v rows %d", got["runs"], got["mode"], got["parts"], len(got["rows"].([]any)))
	}
}

// TestBenchReportTable: one line per figure, one column per run (a run
// without the row shows "-"), the verdict of each run, rows in the order of
// the items of issue 22, "|" in a name escaped, and the summary line.
func TestBenchReportTable(t *testing.T) {
	got, _ := run(t, false, nil, "bench-report.sh", "table", "testdata/bench/bench.json")
	golden(t, "table.golden.md", got)
}

// TestBenchReportMerge: two documents of two runs each make one of four
// runs, the second's rows and parts renumbered 3 and 4.
func TestBenchReportMerge(t *testing.T) {
	out := filepath.Join(t.TempDir(), "merged.json")
	run(t, false, nil, "bench-report.sh", "merge", out, "testdata/bench/bench.json", "testdata/bench/bench.json")
	got := readJSON(t, out)
	if got["runs"] != 4.0 {
		t.Errorf("runs = %v, want 4", got["runs"])
	}
	count := map[float64]int{}
	for _, r := range got["rows"].([]any) {
		count[r.(map[string]any)["run"].(float64)]++
	}
	if want := map[float64]int{1: 8, 2: 7, 3: 8, 4: 7}; !reflect.DeepEqual(count, want) {
		t.Errorf("rows per run = %v, want %v", count, want)
	}
	parts := got["parts"].([]any)
	if len(parts) != 14 || parts[13].(map[string]any)["run"] != 4.0 || parts[7].(map[string]any)["run"] != 0.0 {
		t.Errorf("parts = %v, want 14, the trees' in run 0 and the last in run 4", parts)
	}
	table, _ := run(t, false, nil, "bench-report.sh", "table", out)
	if !strings.Contains(table, "| run 4: ratio (ours / ref) |") || !strings.Contains(table, "| **no**, yes, **no**, yes |") {
		t.Errorf("the merged table has no fourth run:\n%s", table)
	}
	run(t, true, nil, "bench-report.sh", "merge", out)
}

// TestBenchReportReadme: the table replaces what lies between the markers
// and nothing else; a README without the markers is an error and is left
// as it was.
func TestBenchReportReadme(t *testing.T) {
	dir := t.TempDir()
	readme := filepath.Join(dir, "README.md")
	in, err := os.ReadFile("testdata/bench/README.in.md")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(readme, in, 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, false, nil, "bench-report.sh", "readme", "testdata/bench/bench.json", readme)
	got, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "README.golden.md", string(got))
	// again: the same README (the old table is replaced, not appended to)
	run(t, false, nil, "bench-report.sh", "readme", "testdata/bench/bench.json", readme)
	again, _ := os.ReadFile(readme)
	if !bytes.Equal(again, got) {
		t.Errorf("a second readme changed the README:\n%s", again)
	}

	plain := filepath.Join(dir, "plain.md")
	if err := os.WriteFile(plain, []byte("# no markers\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr := run(t, true, nil, "bench-report.sh", "readme", "testdata/bench/bench.json", plain)
	if !strings.Contains(stderr, plain) || !strings.Contains(stderr, "markers") {
		t.Errorf("error %q does not name the file and the markers", stderr)
	}
	if b, _ := os.ReadFile(plain); string(b) != "# no markers\n" {
		t.Errorf("the README without markers was changed: %q", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("files left behind in %s: %v", dir, ents)
	}
}

// TestBenchRow: bench_row (scripts/bench-lib.sh) writes one JSON line with
// the ratio, the verdict and the run; "-" is no goal, a zero reference no
// ratio; nothing is written without BENCH_JSON.
func TestBenchRow(t *testing.T) {
	rows := filepath.Join(t.TempDir(), "rows.jsonl")
	script := `. ./bench-lib.sh
bench_row large "8 files" "wall s" 3.8 3.2 peer 0.5 "CPU 4 s"
bench_row million "1M files" "peak RSS MiB" 377.25 512 "limit" 1
bench_row service "sign" "CPU ms/sig" .5 0.25 local -
bench_row incremental "Go tree" "CPU s" 3 0 cold 0.1
BENCH_JSON= bench_row peer "not written" "wall s" 1 1 peer 1`
	run(t, false, []string{"BENCH_JSON=" + rows, "BENCH_RUN=2"}, "-c", script)
	b, err := os.ReadFile(rows)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d rows, want 4:\n%s", len(lines), b)
	}
	type row struct {
		Item  string   `json:"item"`
		Ours  float64  `json:"ours"`
		Ratio *float64 `json:"ratio"`
		Goal  *float64 `json:"goal"`
		Met   *bool    `json:"met"`
		Run   int      `json:"run"`
		Note  string   `json:"note"`
	}
	f := func(x float64) *float64 { return &x }
	b2 := func(x bool) *bool { return &x }
	want := []row{
		{Item: "large", Ours: 3.8, Ratio: f(1.1875), Goal: f(0.5), Met: b2(false), Run: 2, Note: "CPU 4 s"},
		{Item: "million", Ours: 377.25, Ratio: f(0.7368), Goal: f(1), Met: b2(true), Run: 2},
		{Item: "service", Ours: 0.5, Ratio: f(2), Run: 2},
		{Item: "incremental", Ours: 3, Goal: f(0.1), Run: 2},
	}
	for i, l := range lines {
		var r row
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("row %d: %v: %s", i, err, l)
		}
		if !reflect.DeepEqual(r, want[i]) {
			got, _ := json.Marshal(r)
			exp, _ := json.Marshal(want[i])
			t.Errorf("row %d = %s, want %s", i, got, exp)
		}
	}
}

// TestBenchMedian: bench_median (scripts/bench-lib.sh), the figure a
// repeated measurement reports: the middle sample, the mean of the middle two
// for an even count, in numeric (not text) order; no samples is an error.
func TestBenchMedian(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"1.43", "1.43"},
		{"1.75 1.43 1.5", "1.5"},
		{"9.4 10.1 8.5", "9.4"},
		{"2 1", "1.5"},
		{"12.5 9 3 100", "10.75"},
	} {
		out, _ := run(t, false, nil, "-c", ". ./bench-lib.sh; bench_median "+c.in)
		if got := strings.TrimSpace(out); got != c.want {
			t.Errorf("bench_median %s = %q, want %q", c.in, got, c.want)
		}
	}
	run(t, true, nil, "-c", ". ./bench-lib.sh; bench_median")
	// bench_max: the largest in numeric order, empty samples left out
	if out, _ := run(t, false, nil, "-c", `. ./bench-lib.sh; bench_max 95 "" 111 9.5`); strings.TrimSpace(out) != "111" {
		t.Errorf("bench_max 95 \"\" 111 9.5 = %q, want 111", out)
	}
	_, stderr := run(t, true, []string{"BENCH_REPS=0"}, "-c", ". ./bench-lib.sh")
	if !strings.Contains(stderr, "BENCH_REPS") {
		t.Errorf("BENCH_REPS=0: %q, want a message naming BENCH_REPS", stderr)
	}
}

// TestBenchUsage: scripts/bench.sh refuses a bad --runs or an unknown part
// before it builds or measures anything.
func TestBenchUsage(t *testing.T) {
	for _, args := range [][]string{{"--runs", "0"}, {"--runs=x"}, {"--runs"}, {"--fast"}, {"nosuchpart"}} {
		_, stderr := run(t, true, []string{"BENCH_DIR=/nonexistent/bench"}, append([]string{"bench.sh"}, args...)...)
		if stderr == "" {
			t.Errorf("bench.sh %v: no message", args)
		}
	}
}

// TestScriptsShellcheck: every script in scripts/ (the benchmarks, the
// release, the dependency installer, the kernel end-to-end test's host and
// guest sides) is shellcheck-clean, notes included.
func TestScriptsShellcheck(t *testing.T) {
	scripts, err := filepath.Glob("*.sh")
	if err != nil || len(scripts) < 10 {
		t.Fatalf("scripts: %v %v", scripts, err)
	}
	e2e, err := filepath.Glob("kernel-e2e/*.sh")
	if err != nil || len(e2e) < 7 {
		t.Fatalf("kernel-e2e scripts: %v %v", e2e, err)
	}
	scripts = append(scripts, e2e...)
	scripts = append(scripts, "kernel-e2e/guest/lib.sh", "kernel-e2e/guest/init")
	args := []string{"-x"}
	for _, s := range scripts {
		args = append(args, filepath.Join("scripts", s))
	}
	// From the project root: source directives name files by that path.
	cmd := exec.Command(testenv.NeedTool(t, "shellcheck"), args...)
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("shellcheck: %v\n%s", err, out)
	}
}
