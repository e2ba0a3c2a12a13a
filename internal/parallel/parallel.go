// Package parallel runs independent jobs on a bounded number of goroutines,
// stopping at the first failure.
package parallel

import (
	"context"
	"runtime"
	"sync"
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
	jobs := make(chan int)
	var (
		wg       sync.WaitGroup
		once     sync.Once
		firstErr error
	)
	for range min(workers, max(n, 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				if err := fn(ctx, i); err != nil {
					once.Do(func() { firstErr = err; cancel() })
				}
			}
		}()
	}
feed:
	for i := range n {
		select {
		case jobs <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}
