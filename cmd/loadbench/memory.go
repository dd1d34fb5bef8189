package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// goMemory is where ivrd's resident memory is by the Go runtime's own
// account (its memstats on /metrics): what a quiet server keeps of a load
// run, and why RSS may stay above the idle level with nothing leaking.
type goMemory struct {
	HeapLive  int64 `json:"heap_live"`   // bytes of objects: live, or garbage not yet collected
	HeapInUse int64 `json:"heap_in_use"` // bytes of spans holding at least one object: live + room between them
	HeapFree  int64 `json:"heap_free"`   // free heap spans not yet returned to the system
	Stacks    int64 `json:"stacks"`      // goroutine stacks
	Runtime   int64 `json:"runtime"`     // the runtime's own: GC metadata, span descriptors, profiling buckets, caches
}

// goMemoryMetrics are the memstats goMemory reads.
var goMemoryMetrics = []string{
	"go_memstats_heap_alloc_bytes", "go_memstats_heap_inuse_bytes", "go_memstats_heap_idle_bytes",
	"go_memstats_heap_released_bytes", "go_memstats_stack_sys_bytes", "go_memstats_gc_sys_bytes",
	"go_memstats_mspan_sys_bytes", "go_memstats_mcache_sys_bytes", "go_memstats_buck_hash_sys_bytes",
	"go_memstats_other_sys_bytes",
}

// memoryFrom reads goMemory from the samples of a /metrics page.
func memoryFrom(m map[string]float64) (goMemory, error) {
	for _, name := range goMemoryMetrics {
		if _, ok := m[name]; !ok {
			return goMemory{}, fmt.Errorf("metric %s not found", name)
		}
	}
	v := func(name string) int64 { return int64(m[name]) }
	return goMemory{
		HeapLive:  v("go_memstats_heap_alloc_bytes"),
		HeapInUse: v("go_memstats_heap_inuse_bytes"),
		HeapFree:  v("go_memstats_heap_idle_bytes") - v("go_memstats_heap_released_bytes"),
		Stacks:    v("go_memstats_stack_sys_bytes"),
		Runtime: v("go_memstats_gc_sys_bytes") + v("go_memstats_mspan_sys_bytes") + v("go_memstats_mcache_sys_bytes") +
			v("go_memstats_buck_hash_sys_bytes") + v("go_memstats_other_sys_bytes"),
	}, nil
}

// total is what Go's account puts in memory.
func (g goMemory) total() int64 { return g.HeapInUse + g.HeapFree + g.Stacks + g.Runtime }

// memoryRows lines up idle and after: each part, and what RSS holds
// beyond Go's account (the binary's own pages, and pages the system has
// not taken back yet).
func memoryRows(idle, after goMemory, idleRSS, afterRSS int64) [][3]string {
	mib := func(b int64) string { return fmt.Sprintf("%.1f", float64(b)/(1<<20)) }
	return [][3]string{
		{"heap, objects (live, or garbage not yet collected)", mib(idle.HeapLive), mib(after.HeapLive)},
		{"heap, room between them in the same spans", mib(idle.HeapInUse - idle.HeapLive), mib(after.HeapInUse - after.HeapLive)},
		{"heap, free spans not yet returned", mib(idle.HeapFree), mib(after.HeapFree)},
		{"goroutine stacks", mib(idle.Stacks), mib(after.Stacks)},
		{"runtime metadata (GC, spans, profiling)", mib(idle.Runtime), mib(after.Runtime)},
		{"outside Go's account (the binary's pages)", mib(idleRSS - idle.total()), mib(afterRSS - after.total())},
	}
}

// metrics reads every unlabelled sample of ivrd's /metrics.
func (s *server) metrics() (map[string]float64, error) {
	resp, err := http.Get("http://" + s.httpAddr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return parseMetrics(resp.Body)
}

// parseMetrics reads the unlabelled samples of a Prometheus text page.
func parseMetrics(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") || strings.Contains(name, "{") {
			continue
		}
		if f, err := strconv.ParseFloat(strings.TrimSpace(value), 64); err == nil {
			out[name] = f
		}
	}
	return out, sc.Err()
}
