// Package parallel runs independent jobs on a bounded number of goroutines,
// stopping at the first failure.
package parallel

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
)

// ForEach calls fn(ctx, i) for every i in [0, n) on at most workers
// goroutines (0 or less: GOMAXPROCS). The first error fn returns cancels
// the ctx given to fn and is returned; no index is handed out after the
// cancellation is seen (an index offered at that moment may still be
// taken, and calls under way finish). Without an error from fn, ForEach
// returns the error of the caller's ctx, so a cancelled run never looks
// complete.
func ForEach(ctx context.Context, n, workers int, fn func(ctx context.Context, i int) error) error {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The workers take the next index from a counter, not from a channel
	// fed by the caller: a send per index woke a sleeping goroutine per
	// index, a thread switch each on a 2-core VM, which cost as much as
	// the work for small jobs (an lstat, a seal).
	var (
		next     atomic.Int64
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	done := ctx.Done()
	for range min(workers, max(n, 1)) {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				if err := fn(ctx, int(i)); err != nil {
					once.Do(func() { firstErr = err; cancel() })
				}
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}
