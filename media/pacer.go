package media

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// pacer sends the paced frames (prompt frames or silence) of every started
// session. Instead of a goroutine and a timer per call — at 2,000 calls,
// 100,000 wake-ups a second — it has one shard per CPU (GOMAXPROCS), each
// a goroutine with a timing wheel: every session's frames are due every
// 20 ms at its own phase, so a session sits for good in the 1 ms slot of
// the wheel its phase falls in, and the goroutine wakes at each slot that
// holds sessions and sends their frames. No ordering per frame, no timer
// per call; each session keeps its own phase (the time it started), so
// the packets of different calls stay spread over the 20 ms instead of
// leaving in one burst.
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

// slot is the width of a wheel slot: frames due within it go out together
// (up to slot early; the RTP timestamp still comes from the frame's own
// deadline, so the receiver's timing is unchanged).
const slot = time.Millisecond

// slots is the wheel's size: one frame's worth of slots.
const slots = int(FrameDuration / slot)

// shard is one pacer goroutine and its sessions.
type shard struct {
	mu       sync.Mutex
	incoming []*Session // added, not yet in the wheel
	running  bool       // the goroutine runs (or is about to)
	wake     chan struct{}

	// Owned by the goroutine.
	epoch time.Time // tick 0 of the wheel: slot i serves deadlines epoch + (i + k·slots) ms
	wheel [slots][]*Session
	count int // sessions in the wheel
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
	// The shard may be asleep until a later slot than the newcomer's.
	select {
	case sh.wake <- struct{}{}:
	default:
	}
}

// admit moves the sessions added since the last call into the wheel. It
// reports false, and marks the shard stopped, when there are none at all
// left: the goroutine must then end.
func (sh *shard) admit() bool {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	for _, s := range sh.incoming {
		i := sh.slotOf(s.pace.deadline)
		sh.wheel[i] = append(sh.wheel[i], s)
		sh.count++
	}
	clear(sh.incoming)
	sh.incoming = sh.incoming[:0]
	if sh.count == 0 {
		sh.running = false
		return false
	}
	return true
}

// tickOf is the wheel tick a moment falls in (floor, so negative before
// the epoch).
func (sh *shard) tickOf(t time.Time) int {
	d := t.Sub(sh.epoch)
	tick := int(d / slot)
	if d < 0 && d%slot != 0 {
		tick--
	}
	return tick
}

// slotOf is the slot of the wheel that a deadline falls in.
func (sh *shard) slotOf(deadline time.Time) int {
	return ((sh.tickOf(deadline) % slots) + slots) % slots
}

func (sh *shard) run() {
	sh.epoch = time.Now()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	next := 0 // the next tick to serve
	for sh.admit() {
		now := time.Now()
		cur := sh.tickOf(now)
		if cur-next >= slots {
			next = cur - slots + 1 // far behind (a stalled machine): every slot once
		}
		for ; next <= cur; next++ {
			sh.serve(next%slots, now)
		}
		next = cur + 1 // woken early by a newcomer, next may have been ahead
		// Sleep until the next slot that holds sessions (a newcomer wakes
		// the shard to be placed).
		wake := next
		for i := 0; i < slots && len(sh.wheel[wake%slots]) == 0; i++ {
			wake++
		}
		timer.Reset(time.Until(sh.epoch.Add(time.Duration(wake) * slot)))
		select {
		case <-timer.C:
		case <-sh.wake:
		}
	}
}

// serve sends the frames of slot i's sessions that are due by the end of
// the current slot; a newcomer whose first deadline is a turn of the wheel
// away waits for it. A session that fell behind (the shard was held up)
// catches up at once, a frame after another, as sendFrame allows: left
// due, it would stay a turn of the wheel late for good. Closed sessions
// leave the wheel.
func (sh *shard) serve(i int, now time.Time) {
	horizon := now.Add(slot)
	ss := sh.wheel[i]
	for j := 0; j < len(ss); {
		s, open := ss[j], true
		for open && !s.pace.deadline.After(horizon) {
			open = s.sendFrame(now)
		}
		if open {
			j++
			continue
		}
		last := len(ss) - 1
		ss[j], ss[last] = ss[last], nil
		ss = ss[:last]
		sh.count--
	}
	sh.wheel[i] = ss
}
