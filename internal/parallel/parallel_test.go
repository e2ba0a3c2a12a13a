package parallel

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
)

// TestForEach: every index is visited exactly once, on no more goroutines
// than asked, for job counts around the worker count.
func TestForEach(t *testing.T) {
	for _, tc := range []struct{ n, workers int }{
		{0, 4}, {1, 4}, {3, 4}, {4, 4}, {1000, 4}, {1000, 1}, {50, 0},
	} {
		seen := make([]atomic.Int32, tc.n)
		var running, peak atomic.Int32
		err := ForEach(context.Background(), tc.n, tc.workers, func(_ context.Context, i int) error {
			r := running.Add(1)
			for {
				p := peak.Load()
				if r <= p || peak.CompareAndSwap(p, r) {
					break
				}
			}
			seen[i].Add(1)
			running.Add(-1)
			return nil
		})
		if err != nil {
			t.Fatalf("n=%d workers=%d: %v", tc.n, tc.workers, err)
		}
		for i := range seen {
			if c := seen[i].Load(); c != 1 {
				t.Errorf("n=%d workers=%d: index %d visited %d times", tc.n, tc.workers, i, c)
			}
		}
		if tc.workers > 0 && int(peak.Load()) > tc.workers {
			t.Errorf("n=%d workers=%d: %d calls at once", tc.n, tc.workers, peak.Load())
		}
	}
}

// TestForEachFirstError: the first error is returned, cancels the context
// the other calls see, and stops the handing out of indexes long before
// the end.
func TestForEachFirstError(t *testing.T) {
	boom := errors.New("boom")
	var calls atomic.Int32
	err := ForEach(context.Background(), 100000, 2, func(_ context.Context, i int) error {
		calls.Add(1)
		if i == 10 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	if c := calls.Load(); c > 1000 {
		t.Errorf("%d calls after the error at index 10", c)
	}
	ctxSeen := make(chan error, 1)
	var once sync.Once
	ForEach(context.Background(), 2, 1, func(ctx context.Context, i int) error {
		if i == 0 {
			return boom
		}
		once.Do(func() { ctxSeen <- ctx.Err() })
		return nil
	})
	select {
	case e := <-ctxSeen:
		if !errors.Is(e, context.Canceled) {
			t.Errorf("a call after the error saw ctx.Err() = %v, want context.Canceled", e)
		}
	default: // index 1 was never handed out: also correct
	}
}

// TestForEachCancelled: a cancelled caller's context is the result even
// though no call failed.
func TestForEachCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	err := ForEach(ctx, 100000, 2, func(_ context.Context, i int) error {
		if i == 5 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}
