package atomicfile

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// recordRanges replaces syncRange for the test: it records each call (and
// fails with fail, when set) and returns the calls made so far.
func recordRanges(t *testing.T, fail error) func() [][2]int64 {
	t.Helper()
	var mu sync.Mutex
	var calls [][2]int64
	orig := syncRange
	syncRange = func(fd int, off, n int64, flags int) error {
		if flags != unix.SYNC_FILE_RANGE_WRITE {
			t.Errorf("sync_file_range flags %#x, want SYNC_FILE_RANGE_WRITE alone (the WAIT flags consume writeback errors)", flags)
		}
		mu.Lock()
		calls = append(calls, [2]int64{off, n})
		mu.Unlock()
		if fail != nil {
			return fail
		}
		return orig(fd, off, n, flags)
	}
	t.Cleanup(func() { syncRange = orig })
	return func() [][2]int64 {
		mu.Lock()
		defer mu.Unlock()
		return append([][2]int64(nil), calls...)
	}
}

// createBehind creates a File at a fresh path and its Behind; the test
// aborts it at its end (a no-op after Commit).
func createBehind(t *testing.T) (f *File, w *Behind, path string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "image")
	f, err := Create(path, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Abort)
	return f, f.WriteBehind(), path
}

// TestWriteBehind: what a Behind writes is what was written (with seeks back
// and a truncation, as the image writers do), every finished stretch is
// handed to writeback once it is whole, and Commit stops the hints before it
// syncs and renames.
func TestWriteBehind(t *testing.T) {
	calls := recordRanges(t, nil)
	f, w, p := createBehind(t)
	if f.WriteBehind() != w {
		t.Fatal("a second WriteBehind made a second writer")
	}
	want := make([]byte, 3*behindChunk+12345)
	for i := range want {
		want[i] = byte(rand.N(256))
	}
	// pieces of odd sizes, as a SquashFS writer's flushes
	for off := 0; off < len(want); {
		n := min(len(want)-off, 1+rand.N(1<<20))
		if k, err := w.Write(want[off : off+n]); err != nil || k != n {
			t.Fatalf("Write: %d, %v", k, err)
		}
		off += n
	}
	// a roll-back rewrites the start of the file, then the end is written
	// again (a superblock written last does the same)
	if _, err := w.Seek(100, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	copy(want[100:], bytes.Repeat([]byte{7}, behindChunk+1))
	if _, err := w.Write(want[100 : 100+behindChunk+1]); err != nil {
		t.Fatal(err)
	}
	// the goroutine skips what is still queued at Commit: let it catch up
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if c := calls(); len(c) > 0 && c[len(c)-1][0] == 100 {
			break
		}
	}
	if _, err := w.Seek(0, io.SeekEnd); err != nil {
		t.Fatal(err)
	}
	if err := w.Truncate(int64(len(want) - 45)); err != nil {
		t.Fatal(err)
	}
	want = want[:len(want)-45]
	got := make([]byte, 10)
	if _, err := w.ReadAt(got, 100); err != nil || !bytes.Equal(got, want[100:110]) {
		t.Fatalf("ReadAt: %v, %x", err, got)
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	atCommit := calls()
	if b, err := os.ReadFile(p); err != nil || !bytes.Equal(b, want) {
		t.Fatalf("committed file differs from what was written (%v)", err)
	}

	// the first pass: whole stretches from 0, contiguous; then the rewrite
	// from offset 100
	var next int64
	rewrote := false
	for _, c := range atCommit {
		if c[1] < behindChunk {
			t.Errorf("stretch %v shorter than %d", c, behindChunk)
		}
		switch {
		case c[0] == next:
			next += c[1]
		case c[0] == 100 && !rewrote:
			rewrote = true
		default:
			t.Errorf("stretch %v: not where the writer had finished (next %d)", c, next)
		}
		if c[0]+c[1] > int64(len(want)+45) {
			t.Errorf("stretch %v past the end of what was written", c)
		}
	}
	if next < 2*behindChunk || !rewrote {
		t.Errorf("stretches %v: want the first %d bytes handed over, then the rewrite at 100", atCommit, 2*behindChunk)
	}
	// after Commit, nothing more (the file is closed)
	if _, err := w.Write(make([]byte, behindChunk)); err == nil {
		t.Error("Write after Commit succeeded")
	}
	if n := len(calls()); n != len(atCommit) {
		t.Errorf("%d sync_file_range calls after Commit", n-len(atCommit))
	}
}

// TestWriteBehindFailing: a failing sync_file_range (a file system without
// it) ends the hints; the writes and Commit's own sync are unaffected.
func TestWriteBehindFailing(t *testing.T) {
	calls := recordRanges(t, unix.ENOSYS)
	f, w, p := createBehind(t)
	want := bytes.Repeat([]byte("imaforge"), 4*behindChunk/8)
	for off := 0; off < len(want); off += 1 << 20 {
		if _, err := w.Write(want[off : off+1<<20]); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Commit(); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(p); err != nil || !bytes.Equal(b, want) {
		t.Fatalf("committed file differs (%v)", err)
	}
	if n := len(calls()); n != 1 {
		t.Errorf("%d sync_file_range calls after the first failed, want none", n-1)
	}
}

// TestWriteBehindAbort: Abort stops the hints and removes the file.
func TestWriteBehindAbort(t *testing.T) {
	recordRanges(t, nil)
	f, w, p := createBehind(t)
	dir := filepath.Dir(p)
	if _, err := w.Write(make([]byte, 2*behindChunk)); err != nil {
		t.Fatal(err)
	}
	f.Abort()
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("after Abort: %d entries", len(ents))
	}
	if _, err := w.Write([]byte("x")); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Write after Abort: %v, want os.ErrClosed", err)
	}
}

// recordSyncs replaces dataSync for the test: each call appends "sync" to
// the log that recordRanges' calls are counted against (fails with fail,
// when set) and returns the number of calls so far.
func recordSyncs(t *testing.T, fail error) func() int {
	t.Helper()
	var mu sync.Mutex
	n := 0
	orig := dataSync
	dataSync = func(fd int) error {
		mu.Lock()
		n++
		mu.Unlock()
		if fail != nil {
			return fail
		}
		return orig(fd)
	}
	t.Cleanup(func() { dataSync = orig })
	return func() int {
		mu.Lock()
		defer mu.Unlock()
		return n
	}
}

// writeStretches writes k stretches of behindChunk bytes through w, each
// once the goroutine has handed the previous one to writeback (so none is
// merged into a larger one), and returns what was written.
func writeStretches(t *testing.T, w *Behind, k int, ranges func() [][2]int64) []byte {
	t.Helper()
	var all []byte
	for i := range k {
		b := bytes.Repeat([]byte{byte(i + 1)}, behindChunk)
		if _, err := w.Write(b); err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
		for deadline := time.Now().Add(time.Minute); len(ranges()) < i+1; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("stretch %d not handed over", i)
			}
		}
	}
	return all
}

// TestWriteBehindSyncEvery: with SyncEvery the writer calls fdatasync each
// time that many bytes have been handed over, and never without it.
func TestWriteBehindSyncEvery(t *testing.T) {
	for _, tc := range []struct {
		every     int64
		chunks    int
		wantSyncs int
	}{
		{0, 5, 0},
		{2 * behindChunk, 5, 2},
		{2 * behindChunk, 6, 3},
		{behindChunk, 3, 3},
		{10 * behindChunk, 5, 0},
	} {
		ranges := recordRanges(t, nil)
		syncs := recordSyncs(t, nil)
		f, w, p := createBehind(t)
		if w.SyncEvery(tc.every) != w {
			t.Fatal("SyncEvery returned another writer")
		}
		want := writeStretches(t, w, tc.chunks, ranges)
		// Commit waits for the goroutine's last call, the sync after it
		if err := f.Commit(); err != nil {
			t.Fatal(err)
		}
		if n := syncs(); n != tc.wantSyncs {
			t.Errorf("every %d, %d stretches: %d fdatasync calls, want %d", tc.every, tc.chunks, n, tc.wantSyncs)
		}
		if b, err := os.ReadFile(p); err != nil || !bytes.Equal(b, want) {
			t.Fatalf("committed file differs (%v)", err)
		}
	}
}

// TestWriteBehindSyncError: an fdatasync that fails while the file is
// written consumes the file's writeback error (the fsync in Commit would
// then succeed): Commit fails with it and publishes nothing.
func TestWriteBehindSyncError(t *testing.T) {
	ranges := recordRanges(t, nil)
	syncs := recordSyncs(t, unix.EIO)
	f, w, p := createBehind(t)
	w.SyncEvery(behindChunk)
	writeStretches(t, w, 1, ranges)
	for deadline := time.Now().Add(time.Minute); syncs() == 0; time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no fdatasync call")
		}
	}
	// the failure ended the hints: nothing more is handed over or synced
	if _, err := w.Write(make([]byte, 2*behindChunk)); err != nil {
		t.Fatal(err)
	}
	err := f.Commit()
	if !errors.Is(err, unix.EIO) {
		t.Fatalf("Commit after a failed fdatasync: %v, want EIO", err)
	}
	if !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "fdatasync") {
		t.Errorf("error %q does not name the file and the call", err)
	}
	if ents, _ := os.ReadDir(filepath.Dir(p)); len(ents) != 0 {
		t.Fatalf("after a failed Commit: %d entries in the directory", len(ents))
	}
	if n := syncs(); n != 1 {
		t.Errorf("%d fdatasync calls, want none after the failed one", n)
	}
}
