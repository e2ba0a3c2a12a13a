// Package runstats measures a process's memory and garbage-collector cost
// for the benchmarks (scripts/bench-million.sh): the peak live heap (sampled
// from runtime/metrics' /gc/heap/live:bytes), the share of CPU the garbage
// collector took (runtime/metrics /cpu/classes, idle marking included), and
// the peak RSS and CPU time from getrusage(2). The memory figures are
// independent of the machine's load; the CPU figures are not, and the GC's
// (the runtime's estimates from the time its Ps spent) grow with it more
// than getrusage's CPU seconds do.
package runstats

import (
	"bytes"
	"encoding/json"
	"os"
	"runtime/metrics"
	"runtime/pprof"
	"syscall"
	"time"
)

// Stats is what Stop reports, written as JSON by WriteFile.
type Stats struct {
	// LiveHeapPeak is the largest live heap seen after a collection.
	LiveHeapPeak uint64 `json:"live_heap_peak_bytes"`
	// MaxRSS is the process's peak resident set (ru_maxrss).
	MaxRSS int64 `json:"max_rss_bytes"`
	// CPUSeconds is user+system time (getrusage).
	CPUSeconds float64 `json:"cpu_s"`
	// GCCycles counts completed collections.
	GCCycles uint64 `json:"gc_cycles"`
	// GCCPUSeconds is the collector's CPU time (runtime/metrics'
	// estimate, /cpu/classes/gc/total: assists, dedicated, fractional and
	// idle marking, pauses), and GCFraction its share of the runtime's
	// non-idle CPU time (/cpu/classes/total less /cpu/classes/idle).
	// Idle marking counts: Go's documentation calls it the part that is
	// not compulsory, but a cycle needs about the same marking whoever
	// does it, and the process spends that CPU time (getrusage counts
	// it). Left out, a million-file build's share read 0.071 where all
	// of the marking took 12.5% of its CPU samples (perf).
	GCCPUSeconds float64 `json:"gc_cpu_s"`
	GCFraction   float64 `json:"gc_fraction"`
	// GCIdleMarkCPUSeconds is the part of GCCPUSeconds marked on Ps that
	// had nothing else to run (/cpu/classes/gc/mark/idle). Like the
	// others, the runtime's estimate from the time its Ps spent so,
	// which grows with the machine's load.
	GCIdleMarkCPUSeconds float64 `json:"gc_idle_mark_cpu_s"`
	// HeapAllocated is the bytes allocated on the heap over the process's
	// life (/gc/heap/allocs:bytes): with the live heap, what sets how
	// often the collector runs under a limit that follows the live heap.
	HeapAllocated uint64 `json:"heap_allocated_bytes"`
}

// Sampler samples the live heap until Stop.
type Sampler struct {
	profile  string
	stop     chan struct{}
	done     chan struct{}
	peak     uint64
	heapProf []byte // the heap profile taken at the peak
}

// Start begins sampling every interval. With profile not empty, the heap
// profile as of the collection that saw the peak is written there by Stop.
func Start(interval time.Duration, profile string) *Sampler {
	s := &Sampler{profile: profile, stop: make(chan struct{}), done: make(chan struct{})}
	go s.run(interval)
	return s
}

func (s *Sampler) run(interval time.Duration) {
	defer close(s.done)
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		metrics.Read(sample)
		if v := sample[0].Value.Uint64(); v > s.peak+s.peak/20 || (v > s.peak && s.profile == "") {
			s.peak = v
			if s.profile != "" {
				var b bytes.Buffer
				if pprof.Lookup("heap").WriteTo(&b, 0) == nil {
					s.heapProf = b.Bytes()
				}
			}
		}
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

// Stop ends sampling and returns the process's figures so far.
func (s *Sampler) Stop() (Stats, error) {
	close(s.stop)
	<-s.done
	names := []string{
		"/gc/cycles/total:gc-cycles",
		"/cpu/classes/gc/total:cpu-seconds",
		"/cpu/classes/gc/mark/idle:cpu-seconds",
		"/cpu/classes/total:cpu-seconds",
		"/cpu/classes/idle:cpu-seconds",
		"/gc/heap/live:bytes",
		"/gc/heap/allocs:bytes",
	}
	ms := make([]metrics.Sample, len(names))
	for i, n := range names {
		ms[i].Name = n
	}
	metrics.Read(ms)
	st := Stats{LiveHeapPeak: max(s.peak, ms[5].Value.Uint64()), GCCycles: ms[0].Value.Uint64(), HeapAllocated: ms[6].Value.Uint64()}
	st.GCIdleMarkCPUSeconds = ms[2].Value.Float64()
	st.GCCPUSeconds = ms[1].Value.Float64()
	if busy := ms[3].Value.Float64() - ms[4].Value.Float64(); busy > 0 {
		st.GCFraction = st.GCCPUSeconds / busy
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return st, err
	}
	st.MaxRSS = ru.Maxrss << 10 // KiB on Linux
	st.CPUSeconds = time.Duration(syscall.TimevalToNsec(ru.Utime) + syscall.TimevalToNsec(ru.Stime)).Seconds()
	if s.profile != "" && s.heapProf != nil {
		if err := os.WriteFile(s.profile, s.heapProf, 0o644); err != nil {
			return st, err
		}
	}
	return st, nil
}

// WriteFile writes st as indented JSON to path.
func (st Stats) WriteFile(path string) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
