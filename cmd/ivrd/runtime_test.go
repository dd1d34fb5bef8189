package main

import (
	"bytes"
	"context"
	"log/slog"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"ivrd/media"
	"ivrd/recordings"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Memory goes back once after a busy spell and a quiet wait — not while
// calls are in progress, not when nothing happened, not twice.
func TestReleaseMemoryWhenIdle(t *testing.T) {
	var out syncBuffer
	log := slog.New(slog.NewTextHandler(&out, nil))
	var calls atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		releaseMemoryWhenIdle(ctx, func() int { return int(calls.Load()) }, 5*time.Millisecond, 40*time.Millisecond, log)
	}()
	released := func() int { return strings.Count(out.String(), "memory returned") }

	time.Sleep(100 * time.Millisecond) // idle from the start: nothing to give back
	if n := released(); n != 0 {
		t.Fatalf("released %d times before any call", n)
	}
	calls.Store(3)
	time.Sleep(100 * time.Millisecond) // busy: never
	if n := released(); n != 0 {
		t.Fatalf("released %d times during calls", n)
	}
	calls.Store(0)
	deadline := time.Now().Add(2 * time.Second)
	for released() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // still quiet: not again
	cancel()
	<-done
	if n := released(); n != 1 {
		t.Fatalf("released %d times after one busy spell, want 1; log:\n%s", n, out.String())
	}
}

// TestRelayLatencyMetric: /metrics carries media's relay latency as a
// Prometheus histogram per direction, cumulative buckets in seconds.
func TestRelayLatencyMetric(t *testing.T) {
	reg := prometheus.NewRegistry()
	registerPacing(reg)
	count := func() (toAgent, toCaller, under2ms uint64) {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "ivrd_relay_latency_seconds" {
				continue
			}
			for _, m := range mf.GetMetric() {
				h := m.GetHistogram()
				switch m.GetLabel()[0].GetValue() {
				case "to_agent":
					toAgent = h.GetSampleCount()
					for _, b := range h.GetBucket() {
						if b.GetUpperBound() == 0.002 {
							under2ms = b.GetCumulativeCount()
						}
					}
				case "to_caller":
					toCaller = h.GetSampleCount()
				}
			}
		}
		return
	}
	a0, c0, u0 := count()
	media.ObserveRelay(media.ToAgent, time.Now().Add(-time.Millisecond))
	media.ObserveRelay(media.ToAgent, time.Now().Add(-30*time.Millisecond))
	a1, c1, u1 := count()
	if a1-a0 != 2 || c1 != c0 || u1-u0 != 1 {
		t.Errorf("to_agent +%d (want 2), to_caller +%d (want 0), ≤ 2 ms +%d (want 1)", a1-a0, c1-c0, u1-u0)
	}
}

// The collector runs at defaultGCPercent unless GOGC chose otherwise.
func TestTuneGC(t *testing.T) {
	orig := debug.SetGCPercent(100)
	defer debug.SetGCPercent(orig)
	env := map[string]string{}
	if got := tuneGC(func(k string) string { return env[k] }); got != defaultGCPercent {
		t.Errorf("no GOGC: tuneGC = %d", got)
	}
	if got := debug.SetGCPercent(100); got != defaultGCPercent {
		t.Errorf("no GOGC: the runtime's target is %d, want %d", got, defaultGCPercent)
	}
	env["GOGC"] = "200"
	debug.SetGCPercent(200) // as the runtime does at start with GOGC=200
	if got := tuneGC(func(k string) string { return env[k] }); got != 200 {
		t.Errorf("GOGC=200: tuneGC = %d", got)
	}
	if got := debug.SetGCPercent(100); got != 200 {
		t.Errorf("GOGC=200: the runtime's target is %d", got)
	}
}

// TestSpilledBlocksMetric: a recording whose writer has not caught up
// spills blocks out of its window, and /metrics counts them.
func TestSpilledBlocksMetric(t *testing.T) {
	reg := prometheus.NewRegistry()
	registerPacing(reg)
	spilled := func() float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "ivrd_recording_spilled_blocks_total" {
				return mf.GetMetric()[0].GetCounter().GetValue()
			}
		}
		t.Fatal("no ivrd_recording_spilled_blocks_total")
		return 0
	}
	lib, err := recordings.Open(recordings.Config{Dir: t.TempDir(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer lib.Close(context.Background())
	before := spilled()
	start := time.Now()
	rec := lib.Start("spill", media.ULaw, start)
	frame := bytes.Repeat([]byte{0xff}, media.FrameSamples)
	// A second of audio arriving at once, long before the writer's next
	// pass may take any of it: the window (560 ms) cannot hold it.
	for k := range 50 {
		rec.FromCaller(media.AudioPacket{SSRC: 1, Sequence: uint16(k), Timestamp: uint32(k * media.FrameSamples), Payload: frame},
			start.Add(time.Duration(k)*media.FrameDuration))
	}
	if got := spilled() - before; got < 2 {
		t.Errorf("spilled %v blocks for a second of audio the writer had not taken, want at least 2", got)
	}
	rec.Close(start.Add(time.Second))
	rec.Wait()
}
