package main

import (
	"sync"
	"time"
)

// sample is one second of the server's life during a step.
type sample struct {
	procSample
	Active     float64  // ivrd_calls_active
	Goroutines float64  // go_goroutines
	Memory     goMemory // the Go runtime's account
}

// sampler reads the server's /proc figures and two gauges every second
// until stopped. Its goroutine owns the samples; stop hands them over.
type sampler struct {
	srv     *server
	done    chan struct{}
	wg      sync.WaitGroup
	samples []sample
}

func startSampler(srv *server, every time.Duration) *sampler {
	sp := &sampler{srv: srv, done: make(chan struct{})}
	sp.wg.Add(1)
	go func() {
		defer sp.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		sp.take()
		for {
			select {
			case <-t.C:
				sp.take()
			case <-sp.done:
				sp.take()
				return
			}
		}
	}()
	return sp
}

func (sp *sampler) take() {
	ps, err := readProc(sp.srv.pid)
	if err != nil {
		return
	}
	s := sample{procSample: ps}
	if m, err := sp.srv.metrics(); err == nil {
		s.Active, s.Goroutines = m["ivrd_calls_active"], m["go_goroutines"]
		s.Memory, _ = memoryFrom(m)
	}
	sp.samples = append(sp.samples, s)
}

// stop ends the sampling and returns every sample, in time order.
func (sp *sampler) stop() []sample {
	close(sp.done)
	sp.wg.Wait()
	return sp.samples
}

// usage sums up a step's samples.
type usage struct {
	CPU        time.Duration // the server's CPU time over the whole step
	Wall       time.Duration
	Cores      float64 // over the plateau: CPU seconds per second
	PlateauS   float64 // how long the plateau lasted
	MaxActive  float64 // most calls in progress at once
	PeakRSS    int64   // VmHWM at the end (reset at the step's start)
	MaxThreads int
	MaxSockets int
	// At the last sample with the most calls in progress: the server's
	// goroutines and memory by the Go runtime's account.
	PeakGoroutines float64
	PeakMemory     goMemory
}

// summarize finds the plateau — the samples with at least frac of the
// most calls in progress — and the server's CPU use over it.
func summarize(samples []sample, frac float64) usage {
	var u usage
	if len(samples) < 2 {
		return u
	}
	first, last := samples[0], samples[len(samples)-1]
	u.CPU = last.CPU - first.CPU
	u.Wall = last.At.Sub(first.At)
	u.PeakRSS = last.PeakRSS
	for _, s := range samples {
		if s.Active >= u.MaxActive {
			u.PeakGoroutines, u.PeakMemory = s.Goroutines, s.Memory
		}
		u.MaxActive = max(u.MaxActive, s.Active)
		u.MaxThreads = max(u.MaxThreads, s.Threads)
		u.MaxSockets = max(u.MaxSockets, s.Sockets)
		u.PeakRSS = max(u.PeakRSS, s.PeakRSS)
	}
	var cpu, wall time.Duration
	for i := 1; i < len(samples); i++ {
		a, b := samples[i-1], samples[i]
		if a.Active >= frac*u.MaxActive && b.Active >= frac*u.MaxActive {
			cpu += b.CPU - a.CPU
			wall += b.At.Sub(a.At)
		}
	}
	if wall > 0 {
		u.Cores = cpu.Seconds() / wall.Seconds()
		u.PlateauS = wall.Seconds()
	}
	return u
}
