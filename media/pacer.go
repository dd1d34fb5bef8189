package media

import (
	"container/heap"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// coalesce is how early a frame may go out so that one wake-up of a pacer
// shard serves every session due within it. The frame's RTP timestamp still
// comes from its own deadline, so the receiver's timing is unchanged.
const coalesce = time.Millisecond

// pacer sends the paced frames (prompt frames or silence) of every started
// session. Instead of a goroutine and a timer per call — at 2,000 calls,
// 100,000 wake-ups a second — it has one shard per CPU (GOMAXPROCS), each
// a goroutine that keeps its sessions ordered by their next deadline,
// sleeps until the earliest one and then sends every frame due within
// coalesce. Each session keeps its own phase (the time it started), so the
// packets of different calls stay spread over the 20 ms instead of leaving
// in one burst.
//
// A shard's goroutine runs only while it has sessions: it is started by
// the first one and ends once its last one has closed. An idle server, and
// a test that has closed its sessions, has no pacer goroutine left.
type pacer struct {
	shards []*shard
	next   atomic.Uint32 // round robin over the shards
}

// sharedPacer is the pacer of every session in the process, made on first
// use with one shard per GOMAXPROCS.
var sharedPacer = sync.OnceValue(func() *pacer { return newPacer(runtime.GOMAXPROCS(0)) })

func newPacer(shards int) *pacer {
	p := &pacer{shards: make([]*shard, max(1, shards))}
	for i := range p.shards {
		p.shards[i] = &shard{wake: make(chan struct{}, 1)}
	}
	return p
}

// add starts pacing a session whose first deadline (s.pace) is set. The
// session leaves the pacer by itself at its first deadline after Close.
func (p *pacer) add(s *Session) {
	p.shards[p.next.Add(1)%uint32(len(p.shards))].add(s)
}

// shard is one pacer goroutine and its sessions.
type shard struct {
	mu       sync.Mutex
	incoming []*Session // added, not yet in due
	running  bool       // the goroutine runs (or is about to)
	wake     chan struct{}

	due dueHeap // owned by the goroutine
}

func (sh *shard) add(s *Session) {
	sh.mu.Lock()
	sh.incoming = append(sh.incoming, s)
	start := !sh.running
	sh.running = true
	sh.mu.Unlock()
	if start {
		go sh.run()
		return
	}
	// The shard may be asleep until a later deadline than the newcomer's.
	select {
	case sh.wake <- struct{}{}:
	default:
	}
}

// admit moves the sessions added since the last call into due. It reports
// false, and marks the shard stopped, when there are none at all left: the
// goroutine must then end.
func (sh *shard) admit() bool {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for _, s := range sh.incoming {
		heap.Push(&sh.due, s)
	}
	clear(sh.incoming)
	sh.incoming = sh.incoming[:0]
	if len(sh.due) == 0 {
		sh.running = false
		return false
	}
	return true
}

func (sh *shard) run() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for sh.admit() {
		now := time.Now()
		horizon := now.Add(coalesce)
		for len(sh.due) > 0 && !sh.due[0].pace.deadline.After(horizon) {
			if sh.due[0].sendFrame(now) {
				heap.Fix(&sh.due, 0) // its next deadline, 20 ms on
			} else {
				heap.Pop(&sh.due) // closed
			}
		}
		if len(sh.due) == 0 {
			continue // admit decides whether to end
		}
		timer.Reset(time.Until(sh.due[0].pace.deadline))
		select {
		case <-timer.C:
		case <-sh.wake:
		}
	}
}

// dueHeap orders sessions by their next deadline, the earliest first
// (container/heap).
type dueHeap []*Session

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].pace.deadline.Before(h[j].pace.deadline) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(*Session)) }
func (h *dueHeap) Pop() any {
	old := *h
	s := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return s
}
