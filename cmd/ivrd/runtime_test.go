package main

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
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
