package main

import (
	"strings"
	"testing"
)

// A /metrics page as the Go collector writes it, with a labelled sample
// and comments that must be skipped.
const metricsPage = `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 22
go_info{version="go1.26"} 1
go_memstats_heap_alloc_bytes 2.0e+07
go_memstats_heap_inuse_bytes 3.0e+07
go_memstats_heap_idle_bytes 5.0e+07
go_memstats_heap_released_bytes 4.0e+07
go_memstats_stack_sys_bytes 2.097152e+06
go_memstats_gc_sys_bytes 6e+06
go_memstats_mspan_sys_bytes 4e+06
go_memstats_mcache_sys_bytes 16000
go_memstats_buck_hash_sys_bytes 1.5e+06
go_memstats_other_sys_bytes 2.484e+06
ivrd_calls_total{outcome="completed"} 12
`

func TestGoMemory(t *testing.T) {
	m, err := parseMetrics(strings.NewReader(metricsPage))
	if err != nil {
		t.Fatal(err)
	}
	if m["go_goroutines"] != 22 {
		t.Errorf("go_goroutines %v", m["go_goroutines"])
	}
	if _, ok := m[`go_info{version="go1.26"}`]; ok || len(m) != 11 {
		t.Errorf("labelled samples or comments read: %v", m)
	}
	g, err := memoryFrom(m)
	if err != nil {
		t.Fatal(err)
	}
	want := goMemory{HeapLive: 20e6, HeapInUse: 30e6, HeapFree: 10e6, Stacks: 2 << 20, Runtime: 14e6}
	if g != want {
		t.Errorf("got %+v, want %+v", g, want)
	}
	// RSS 60 MiB after: 30 + 10 + 2 + 14 MB by Go's account, the rest outside.
	rows := memoryRows(goMemory{}, g, 0, 60<<20)
	if got := rows[1]; got[2] != "9.5" { // 10 MB between the live objects
		t.Errorf("room row %q", got)
	}
	if got := rows[len(rows)-1]; got[2] != "6.5" { // 62,914,560 − 56,097,152 B
		t.Errorf("outside row %q", got)
	}

	delete(m, "go_memstats_stack_sys_bytes")
	if _, err := memoryFrom(m); err == nil || !strings.Contains(err.Error(), "go_memstats_stack_sys_bytes") {
		t.Errorf("a missing metric: %v", err)
	}
}
