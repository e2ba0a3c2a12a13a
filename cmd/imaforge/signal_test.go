package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// outputSet maps every name under dir (hidden ones too) to a digest of its
// content.
func outputSet(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		s := sha256.Sum256(b)
		rel, _ := filepath.Rel(dir, p)
		lines = append(lines, rel+" "+hex.EncodeToString(s[:6]))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// TestBuildSignals sends SIGINT, SIGTERM and SIGHUP to `imaforge build` at
// seeded times: the build stops with exit code 1 (or finishes first, 0),
// leaving the previous outputs or the complete new ones, no temporary file,
// stage or lock. Before, SIGHUP killed the process where it stood.
func TestBuildSignals(t *testing.T) {
	dir := buildProject(t)
	rnd := rand.New(rand.NewSource(16))
	// Enough data that the build takes a while.
	for i := range 40 {
		b := make([]byte, 256<<10)
		rnd.Read(b)
		if err := os.WriteFile(filepath.Join(dir, "src", fmt.Sprintf("f%02d", i)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m := filepath.Join(dir, "m.yaml")
	if code, _, errOut := run(t, "build", "--quiet", m); code != 0 {
		t.Fatalf("first build: %d %s", code, errOut)
	}
	out := filepath.Join(dir, "out")
	prev := outputSet(t, out)
	// The next builds give other outputs: another epoch.
	env := append(os.Environ(), "SOURCE_DATE_EPOCH=1800000000")
	cmd := exec.Command("imaforge", "build", "--quiet", m)
	cmd.Env = env
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	next := outputSet(t, out)
	if next == prev {
		t.Fatal("the two builds give the same outputs")
	}
	cancelled := 0
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP} {
		for range 2 {
			if outputSet(t, out) != prev {
				if err := os.RemoveAll(out); err != nil {
					t.Fatal(err)
				}
				if code, _, errOut := run(t, "build", "--quiet", m); code != 0 {
					t.Fatalf("build: %d %s", code, errOut)
				}
			}
			d := time.Duration(rnd.Intn(300)) * time.Millisecond
			cmd := exec.Command("imaforge", "build", "--quiet", m)
			cmd.Env = env
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// Signal once the build holds its lock (main's handler is
			// installed by then), d later.
			exited := make(chan struct{})
			go func() {
				lock := filepath.Join(out, ".img.sqsh.lock")
				for {
					select {
					case <-exited:
						return
					default:
					}
					if _, err := os.Stat(lock); err == nil {
						break
					}
					time.Sleep(time.Millisecond)
				}
				time.Sleep(d)
				cmd.Process.Signal(sig)
			}()
			err := cmd.Wait()
			close(exited)
			code := 0
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				if ws := ee.Sys().(syscall.WaitStatus); ws.Signaled() {
					t.Fatalf("%v after %v: killed by the signal, not cancelled", sig, d)
				}
				code = ee.ExitCode()
			}
			got := outputSet(t, out)
			switch {
			case code == 0 && got == next:
			case code == 1 && (got == prev || got == next):
				cancelled++
				if !strings.Contains(stderr.String(), "context canceled") {
					t.Errorf("%v after %v: stderr %q", sig, d, stderr.String())
				}
			default:
				t.Errorf("%v after %v: exit %d, outputs:\n%s\nwant the previous:\n%s\nor the new:\n%s\nstderr: %s", sig, d, code, got, prev, next, stderr.String())
			}
		}
	}
	t.Logf("%d of 6 builds cancelled", cancelled)
	if cancelled == 0 {
		t.Error("no build was cancelled: the signals came too late")
	}
}
