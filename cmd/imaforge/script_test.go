package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/rogpeppe/go-internal/testscript"
)

// TestMain makes the test binary the real imaforge: testscript.Main puts a
// copy named "imaforge" on PATH for the whole test run, and a process started
// under that name runs main. CLI tests therefore run the real main in a
// child process, and pin its stdout, stderr and exit code exactly as a user
// sees them: the scripts in testdata/script (TestScripts), and runCLI for
// the tests in Go.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"imaforge": main})
}

// TestScripts runs testdata/script/*.txtar. A script runs in a fresh
// directory ($WORK) with these variables beside testscript's own:
//
//	TESTDATA  the repository's testdata directory (absolute)
//	KEYS      testdata/signer/keys: rsa2048, p256, p384 keys and certificates
//	CI        passed through, so internal/testenv's rule holds in scripts too
//
// and one command beside testscript's own:
//
//	exits CODE PROGRAM [ARGS...]  runs PROGRAM like exec and fails unless it
//	                              exits with CODE (exec demands 0, "! exec"
//	                              any other code; imaforge's 1 and 2 differ)
//
// Write "exec imaforge ..." for success and "exits 2 imaforge ..." for a
// usage error, then pin the output with "stdout", "stderr", "cmp" and
// "! stderr .": stdout carries results, stderr every message.
func TestScripts(t *testing.T) {
	testdata, err := filepath.Abs(filepath.Join("..", "..", "testdata"))
	if err != nil {
		t.Fatal(err)
	}
	testscript.Run(t, testscript.Params{
		Dir:                 filepath.Join("testdata", "script"),
		RequireExplicitExec: true,
		RequireUniqueNames:  true,
		// [serve]: this test binary has the signing service (the
		// imaforge_serve build tag, which make unit sets).
		Condition: func(cond string) (bool, error) {
			if cond == "serve" {
				return workerMain != nil, nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Setup: func(env *testscript.Env) error {
			env.Setenv("TESTDATA", testdata)
			env.Setenv("KEYS", filepath.Join(testdata, "signer", "keys"))
			env.Setenv("CI", os.Getenv("CI"))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"exits": cmdExits,
		},
	})
}

// cmdExits is the script command "exits CODE PROGRAM [ARGS...]".
func cmdExits(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: exits CODE PROGRAM [ARGS...]")
	}
	want, err := strconv.Atoi(args[0])
	if err != nil {
		ts.Fatalf("exits: code %q: %v", args[0], err)
	}
	err = ts.Exec(args[1], args[2:]...)
	got := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		got = ee.ExitCode()
	} else if err != nil {
		ts.Fatalf("exits: %v", err)
	}
	if got != want {
		ts.Fatalf("%s exited %d, want %d", args[1], got, want)
	}
}

// runCLI runs the real imaforge (see TestMain) with args in the test's
// working directory and environment, and returns its stdout, stderr and exit
// code.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command("imaforge", args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("imaforge %v: %v", args, err)
	}
	return o.String(), e.String(), code
}

// run is runCLI with the results in another order.
func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	o, e, c := runCLI(t, args...)
	return c, o, e
}
