// Package memlimit keeps the Go heap's soft memory limit (debug.SetMemoryLimit)
// a fixed factor above the live heap, and never below a floor.
//
// A fixed limit is either too high for small builds (the default GC goal,
// twice the live heap, roughly doubles their peak RSS) or too low for large
// ones: once the live heap nears it, the runtime collects again and again
// (a "GC storm"; 200,000 small files spent 50 of 74 CPU-seconds collecting
// under a fixed 100 MiB). Following the live heap bounds the collector's work
// the way GOGC does (one collection per factor-1 times the live heap
// allocated) while small processes keep the floor's footprint.
package memlimit

import (
	"fmt"
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"sync/atomic"
)

// Limit is the soft memory limit for a live heap of live bytes: factor times
// live, at least floor.
func Limit(live, floor uint64, factor float64) int64 {
	l := uint64(float64(live) * factor)
	if l < floor {
		l = floor
	}
	if l > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(l)
}

// FactorEnv names the hidden environment variable that replaces the
// factor a program passes to Follow: for measuring the trade between peak
// RSS and the collector's CPU (scripts/bench-million.sh), not a setting to
// document and keep.
const FactorEnv = "IMAFORGE_MEMLIMIT_FACTOR"

// Factor is def, or the factor in FactorEnv when set: a decimal number
// from 1.05 to 4 (a limit at the live heap would collect without pause).
// A value outside that range or not a number is an error, not ignored.
func Factor(def float64, env func(string) string) (float64, error) {
	s := env(FactorEnv)
	if s == "" {
		return def, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || !(f >= 1.05 && f <= 4) {
		return 0, fmt.Errorf("%s=%q: want a factor from 1.05 to 4", FactorEnv, s)
	}
	return f, nil
}

var following atomic.Bool

// Follow sets the limit to floor and, after every garbage collection,
// to Limit(live heap, floor, factor). It returns at once; the adjustment
// runs on the finalizer goroutine for the life of the process. A second call
// does nothing.
func Follow(floor uint64, factor float64) {
	if following.Swap(true) {
		return
	}
	debug.SetMemoryLimit(Limit(0, floor, factor))
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	var arm func()
	arm = func() {
		// A finalizer runs after the collection that found its object
		// unreachable: re-arm on a fresh object each time.
		s := new([16]byte)
		runtime.SetFinalizer(s, func(*[16]byte) {
			metrics.Read(sample)
			debug.SetMemoryLimit(Limit(sample[0].Value.Uint64(), floor, factor))
			arm()
		})
	}
	arm()
}
