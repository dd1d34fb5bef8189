package main

import (
	"context"
	"log/slog"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"ivrd/media"
	"ivrd/recordings"
)

// registerPacing exports the media pacer's counters: how many paced frames
// went out late or were skipped tells whether the machine keeps up with
// the calls it carries.
func registerPacing(reg prometheus.Registerer) {
	counter := func(name, help string, v func(media.PacingStats) uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help},
			func() float64 { return float64(v(media.Pacing())) })
	}
	reg.MustRegister(
		counter("ivrd_rtp_paced_frames_total", "Frames of prompts, music and silence sent on their 20 ms pace.",
			func(p media.PacingStats) uint64 { return p.Frames }),
		counter("ivrd_rtp_paced_late_total", "Of ivrd_rtp_paced_frames_total, frames sent more than half a frame (10 ms) after they were due (the machine was too busy).",
			func(p media.PacingStats) uint64 { return p.Late }),
		counter("ivrd_rtp_paced_skipped_total", "Frames not sent at all because a call's sender fell more than three frames behind.",
			func(p media.PacingStats) uint64 { return p.Skipped }),
		newRelayLatency(),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "ivrd_recording_spilled_blocks_total",
			Help: "200 ms blocks of recordings moved out of their windows because a writer was held up (memory taken only while it lasts; frames drop only when a recording's spill is full)."},
			func() float64 { return float64(recordings.SpilledBlocks()) }),
	)
}

// relayLatency exports media's relay latency histograms as
// ivrd_relay_latency_seconds{direction="to_agent"|"to_caller"}.
type relayLatency struct{ desc *prometheus.Desc }

func newRelayLatency() relayLatency {
	return relayLatency{prometheus.NewDesc("ivrd_relay_latency_seconds",
		"Time a relayed packet spent in ivrd, from the kernel's receive stamp to its copy's send (SRTP and scheduling included), by direction.",
		[]string{"direction"}, nil)}
}

func (r relayLatency) Describe(ch chan<- *prometheus.Desc) { ch <- r.desc }

func (r relayLatency) Collect(ch chan<- prometheus.Metric) {
	for dir, label := range []string{media.ToAgent: "to_agent", media.ToCaller: "to_caller"} {
		counts, sum := media.RelayLatency(dir)
		buckets := make(map[float64]uint64, len(media.RelayBuckets))
		var cum uint64
		for i, le := range media.RelayBuckets {
			cum += counts[i]
			buckets[le.Seconds()] = cum
		}
		cum += counts[len(counts)-1]
		ch <- prometheus.MustNewConstHistogram(r.desc, cum, sum.Seconds(), buckets, label)
	}
}

// Idle memory release: after a busy spell, once no call has been in
// progress for idleRelease, the memory the calls used goes back to the
// system at once rather than over minutes (the Go runtime keeps freed
// heap for reuse and returns it slowly; a box that just carried
// thousands of calls would otherwise show their RSS long after).
const (
	idleCheck   = 10 * time.Second
	idleRelease = 30 * time.Second
)

// releaseMemoryWhenIdle runs until ctx ends, looking every check at the
// calls in progress (active); quiet for after following calls: release.
func releaseMemoryWhenIdle(ctx context.Context, active func() int, check, after time.Duration, log *slog.Logger) {
	t := time.NewTicker(check)
	defer t.Stop()
	busy := false
	var quietSince time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if active() > 0 {
				busy, quietSince = true, time.Time{}
				continue
			}
			if quietSince.IsZero() {
				quietSince = now
			}
			if busy && now.Sub(quietSince) >= after {
				busy = false
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				debug.FreeOSMemory()
				runtime.ReadMemStats(&after)
				log.Info("no calls for a while: memory returned to the system",
					"released_mib", (after.HeapReleased-before.HeapReleased)>>20, "heap_in_use_mib", after.HeapInuse>>20)
			}
		}
	}
}

// defaultGCPercent is ivrd's garbage collector target (GOGC) unless the
// environment sets GOGC. A call keeps ~40 KB of live heap and, at the
// plateau, allocates almost nothing per packet: at Go's default of 100
// the heap grew to twice the live calls (and further while the machine
// was too busy for the collector to keep up) before a collection, about
// as much garbage as calls; at 25 the collector runs four times as often
// on a heap that changes little: ~0.5% more of ivrd's CPU at 2,000 calls.
// docs/configuration.md has the measurements.
const defaultGCPercent = 25

// tuneGC sets the collector's target to defaultGCPercent unless the
// operator chose one with GOGC (a GOMEMLIMIT is the runtime's own and
// applies either way). It returns the target in force.
func tuneGC(getenv func(string) string) int {
	if v := getenv("GOGC"); v != "" {
		prev := debug.SetGCPercent(100)
		debug.SetGCPercent(prev)
		return prev
	}
	debug.SetGCPercent(defaultGCPercent)
	return defaultGCPercent
}
