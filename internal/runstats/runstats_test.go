package runstats

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

var sink [][]byte

// A live allocation of 64 MiB shows in the peak live heap and the peak RSS,
// and the heap profile and JSON are written.
func TestSampler(t *testing.T) {
	dir := t.TempDir()
	prof := filepath.Join(dir, "heap.pprof")
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4)) // idle Ps to mark on, whatever the machine
	s := Start(time.Millisecond, prof)
	for range 64 {
		b := make([]byte, 1<<20)
		for i := range b {
			b[i] = 1
		}
		sink = append(sink, b)
	}
	runtime.GC()
	time.Sleep(20 * time.Millisecond)
	gcTotal := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(gcTotal)
	st, err := s.Stop()
	sink = nil
	if err != nil {
		t.Fatal(err)
	}
	if st.LiveHeapPeak < 64<<20 {
		t.Errorf("LiveHeapPeak = %d, want >= 64 MiB", st.LiveHeapPeak)
	}
	if st.MaxRSS < 64<<20 || st.CPUSeconds <= 0 || st.GCCycles == 0 {
		t.Errorf("MaxRSS %d, CPUSeconds %v, GCCycles %d: want >= 64 MiB, > 0, > 0", st.MaxRSS, st.CPUSeconds, st.GCCycles)
	}
	if st.HeapAllocated < 64<<20 {
		t.Errorf("HeapAllocated = %d, want >= the 64 MiB allocated", st.HeapAllocated)
	}
	if st.GCFraction < 0 || st.GCFraction > 1 {
		t.Errorf("GCFraction = %v, want 0..1", st.GCFraction)
	}
	// runtime.GC's caller waits while the collector marks 64 MiB: the
	// other Ps are idle, so some of the marking is idle marking.
	if st.GCIdleMarkCPUSeconds <= 0 || st.GCIdleMarkCPUSeconds > st.CPUSeconds {
		t.Errorf("GCIdleMarkCPUSeconds = %v, want > 0 and <= CPUSeconds %v", st.GCIdleMarkCPUSeconds, st.CPUSeconds)
	}
	// the collector's time is all of it, idle marking included: at
	// least what the runtime counted before Stop
	if before := gcTotal[0].Value.Float64(); st.GCCPUSeconds < before {
		t.Errorf("GCCPUSeconds = %v, less than the runtime's GC total %v before Stop (idle marking %v left out?)", st.GCCPUSeconds, before, st.GCIdleMarkCPUSeconds)
	}
	if fi, err := os.Stat(prof); err != nil || fi.Size() == 0 {
		t.Errorf("heap profile: %v", err)
	}
	out := filepath.Join(dir, "st.json")
	if err := st.WriteFile(out); err != nil {
		t.Fatal(err)
	}
	var back Stats
	b, _ := os.ReadFile(out)
	if err := json.Unmarshal(b, &back); err != nil || back != st {
		t.Errorf("JSON round trip: %v, %+v != %+v", err, back, st)
	}
}
