package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestSignPoolBatches: a key with a batchFunc gets the queued digests in
// batches (at most batchSize, one key per batch), the other key one by one;
// every result is its own digest's value; a failing batch falls back to
// single signatures, so an error stays with its own digest.
func TestSignPoolBatches(t *testing.T) {
	var mu sync.Mutex
	var sizes []int
	single := func(key string) signFunc {
		return func(_ string, d []byte) ([]byte, error) {
			time.Sleep(100 * time.Microsecond)
			if string(d) == "bad-7" {
				return nil, errors.New("bad digest")
			}
			return []byte(key + ":" + string(d)), nil
		}
	}
	failBatch := false
	batch := func(ds [][]byte) ([][]byte, error) {
		time.Sleep(time.Duration(len(ds)) * 100 * time.Microsecond)
		mu.Lock()
		sizes = append(sizes, len(ds))
		mu.Unlock()
		if failBatch {
			return nil, errors.New("batch failed")
		}
		out := make([][]byte, len(ds))
		for i, d := range ds {
			if string(d) == "bad-7" {
				return nil, errors.New("bad digest in the batch")
			}
			out[i] = []byte("a:" + string(d))
		}
		return out, nil
	}
	for _, fail := range []bool{false, true} {
		failBatch, sizes = fail, nil
		p := newSignPool(context.Background(), map[string]signFunc{"a": single("a"), "b": single("b")},
			map[string]batchFunc{"a": batch}, 2)
		type want struct {
			r     *sigResult
			value string
		}
		var ws []want
		for i := range 300 {
			key := []string{"a", "b"}[i%3/2]
			d := fmt.Sprintf("d-%d", i)
			if i == 7 {
				d = "bad-7"
			}
			ws = append(ws, want{p.submit(key, "/f", []byte(d)), key + ":" + d})
		}
		p.close()
		for i, w := range ws {
			err := p.wait(w.r)
			if i == 7 {
				if err == nil {
					t.Errorf("fail=%v: the bad digest has no error", fail)
				}
				continue
			}
			if err != nil || string(w.r.value) != w.value {
				t.Fatalf("fail=%v: result %d = %q, %v; want %q", fail, i, w.r.value, err, w.value)
			}
		}
		big := 0
		for _, n := range sizes {
			if n > batchSize {
				t.Fatalf("a batch of %d", n)
			}
			if n > 1 {
				big++
			}
		}
		if big == 0 {
			t.Errorf("fail=%v: no batch of more than one digest (%v)", fail, sizes)
		}
	}
}
