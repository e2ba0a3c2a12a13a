package atomicfile

import (
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Write-behind: Commit's fsync of a large output (a 660 MB image took 0.38 s
// on a quiet machine, 0.6-0.7 s under load) started only once the last byte
// was written, so the whole image went to the disk after the work was done.
// A Behind starts the writeback of each stretch the writer has finished
// while the next ones are still being written, so the fsync finds little
// left to write.
//
// It asks with sync_file_range(2) SYNC_FILE_RANGE_WRITE alone: the call
// starts the writeback of the range's dirty pages and returns; it neither
// waits for them nor makes anything durable, and it does not consume a
// writeback error (only the WAIT flags check the file's error state), so
// the fsync in Commit still makes the data durable and still reports any
// error. The calls run on a goroutine of their own, never on the writer's:
// starting writeback can block on a full device queue, and earlier tries
// that called it inline from the image writer made builds slower.
// A call that fails only ends the hints; nothing is treated as written.
//
// Starting the writeback is not the end of it: the fsync still waits for
// the device to flush what it has taken (a virtual disk writes its host's
// cache out then), and on this 2-CPU VM the large files' 676 MB lz4 image
// spent 0.32-0.44 s in that fsync with nothing else left to run, a third of
// the pack. A writer that sets SyncEvery also has the goroutine call
// fdatasync(2) each time that many more bytes have been handed over, so the
// device flushes while the image is still being made and the fsync finds
// only the last stretch. Unlike a hint, such a call can fail with the
// file's writeback error, which the next fsync would then no longer report:
// the first error is kept and Commit fails with it.

// behindChunk is the stretch of finished bytes handed to writeback at once.
const behindChunk = 8 << 20

// behindQueue is the number of stretches waiting for the goroutine; a
// writer that finds the queue full carries on and hands a larger stretch
// later (it never waits).
const behindQueue = 4

// syncRange is sync_file_range(2) (a variable: tests record the calls).
var syncRange = unix.SyncFileRange

// dataSync is fdatasync(2) (a variable: tests record the calls and fail them).
var dataSync = unix.Fdatasync

// Behind is f's writer that starts the writeback of what it has written
// (WriteBehind). Its methods are those the image writers use; writes that
// bypass it (f.File directly) are still written and synced by Commit, they
// only do not start writeback early.
type Behind struct {
	f      *File
	pos    int64 // the write offset
	handed int64 // bytes before this offset have been handed to writeback
	queue  chan [2]int64
	done   chan struct{}
	quit   atomic.Bool // Stop: skip what is still queued
	once   sync.Once
	every  int64 // SyncEvery; 0: hints only
	err    error // the first fdatasync error, read after done is closed
}

// SyncEvery makes the writer also call fdatasync each time n more bytes
// have been handed to writeback (0 or less: never), so that Commit's fsync
// has little left to wait for. It must be called before the first Write.
func (b *Behind) SyncEvery(n int64) *Behind {
	b.every = max(n, 0)
	return b
}

// WriteBehind returns a writer of f that starts writing the data it has
// written to the disk in the background. Commit and Abort stop it; calling
// it again returns the same writer. The write offset must be f's current
// one (the start of the file, for a new File).
func (f *File) WriteBehind() *Behind {
	if f.behind != nil {
		return f.behind
	}
	pos, err := f.File.Seek(0, io.SeekCurrent)
	if err != nil {
		pos = 0
	}
	b := &Behind{f: f, pos: pos, handed: pos, queue: make(chan [2]int64, behindQueue), done: make(chan struct{})}
	go b.run(int(f.File.Fd()))
	f.behind = b
	return b
}

func (b *Behind) run(fd int) {
	defer close(b.done)
	var handed int64 // since the last fdatasync
	for r := range b.queue {
		if b.quit.Load() {
			continue
		}
		if err := syncRange(fd, r[0], r[1], unix.SYNC_FILE_RANGE_WRITE); err != nil {
			// ENOSYS, ESPIPE, EINVAL...: the fsync does the work
			b.quit.Store(true)
			continue
		}
		if handed += r[1]; b.every > 0 && handed >= b.every {
			handed = 0
			if err := dataSync(fd); err != nil {
				// a writeback error this call consumed: Commit reports it
				b.err = fmt.Errorf("fdatasync while writing: %w", err)
				b.quit.Store(true)
			}
		}
	}
}

// stop ends the hints and waits for the call in progress (Commit syncs and
// closes the file after it); it returns the first fdatasync error.
func (b *Behind) stop() error {
	b.once.Do(func() {
		b.quit.Store(true)
		close(b.queue)
	})
	<-b.done
	return b.err
}

// Write writes p at the write offset and hands each finished stretch of
// behindChunk bytes to writeback.
func (b *Behind) Write(p []byte) (int, error) {
	n, err := b.f.File.Write(p)
	b.pos += int64(n)
	if b.pos-b.handed >= behindChunk && !b.quit.Load() {
		select {
		case b.queue <- [2]int64{b.handed, b.pos - b.handed}:
			b.handed = b.pos
		default: // busy: a larger stretch next time
		}
	}
	return n, err
}

// Seek moves the write offset. What is written from there on is handed
// over from there: a writer going back (a SquashFS writer rolling back a
// duplicate file, or writing its superblock last) dirties pages already
// handed over, and hands them again once it has written a whole stretch.
func (b *Behind) Seek(offset int64, whence int) (int64, error) {
	n, err := b.f.File.Seek(offset, whence)
	if err == nil {
		b.pos, b.handed = n, n
	}
	return n, err
}

// ReadAt reads from the file.
func (b *Behind) ReadAt(p []byte, off int64) (int, error) { return b.f.File.ReadAt(p, off) }

// Truncate changes the file's size (the write offset is unchanged).
func (b *Behind) Truncate(size int64) error {
	err := b.f.File.Truncate(size)
	b.handed = min(b.handed, size)
	return err
}
