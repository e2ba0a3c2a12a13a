package memlimit

import (
	"math"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"
)

func TestLimit(t *testing.T) {
	for _, tc := range []struct {
		live, floor uint64
		factor      float64
		want        int64
	}{
		{0, 100 << 20, 1.5, 100 << 20},
		{50 << 20, 100 << 20, 1.5, 100 << 20},
		{100 << 20, 100 << 20, 1.5, 150 << 20},
		{400 << 20, 100 << 20, 1.25, 500 << 20},
		{math.MaxUint64, 0, 2, math.MaxInt64},
	} {
		if got := Limit(tc.live, tc.floor, tc.factor); got != tc.want {
			t.Errorf("Limit(%d, %d, %v) = %d, want %d", tc.live, tc.floor, tc.factor, got, tc.want)
		}
	}
}

var keep [][]byte

// With 64 MiB live and a 16 MiB floor, the limit rises above the live heap
// after a collection instead of staying at the floor.
func TestFollow(t *testing.T) {
	defer debug.SetMemoryLimit(math.MaxInt64)
	Follow(16<<20, 1.5)
	if got := debug.SetMemoryLimit(-1); got != 16<<20 {
		t.Fatalf("limit after Follow = %d, want the floor %d", got, 16<<20)
	}
	for range 64 {
		keep = append(keep, make([]byte, 1<<20))
	}
	deadline := time.Now().Add(10 * time.Second)
	for debug.SetMemoryLimit(-1) < 64<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("limit %d did not follow a 64 MiB live heap", debug.SetMemoryLimit(-1))
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	keep = nil
}

// TestFactor: the default without the variable; a factor from it within
// 1.05..4; anything else refused, naming the variable.
func TestFactor(t *testing.T) {
	for _, tc := range []struct {
		env  string
		want float64
		ok   bool
	}{
		{"", 1.5, true},
		{"1.25", 1.25, true},
		{"4", 4, true},
		{"1.05", 1.05, true},
		{"1", 0, false},
		{"0.5", 0, false},
		{"5", 0, false},
		{"NaN", 0, false},
		{"1.3x", 0, false},
		{"abc", 0, false},
	} {
		got, err := Factor(1.5, func(k string) string {
			if k != FactorEnv {
				t.Errorf("Factor read %s", k)
			}
			return tc.env
		})
		if tc.ok && (err != nil || got != tc.want) {
			t.Errorf("%s=%q: %v, %v; want %v", FactorEnv, tc.env, got, err, tc.want)
		}
		if !tc.ok && (err == nil || !strings.Contains(err.Error(), FactorEnv)) {
			t.Errorf("%s=%q: %v, %v; want an error naming the variable", FactorEnv, tc.env, got, err)
		}
	}
}
