package testcaller

import (
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/pion/rtp"

	"ivrd/media"
)

// slots is the number of 1 ms slots in a frame: the sender's wheel.
const slots = int(media.FrameDuration / time.Millisecond)

// sender sends the RTP of every call in the process. A goroutine and a
// timer per call cost a load generator more CPU in wake-ups than in
// packets; instead one goroutine wakes every millisecond and sends the
// frames of the calls in that millisecond's slot of a 20 ms wheel — a
// call stays in the slot it joined, so its frames keep 20 ms apart while
// the calls together spread over the frame. The goroutine runs only while
// there are calls, and wakes only for slots that hold some.
type sender struct {
	mu      sync.Mutex
	wheel   [slots][]*Call
	calls   int
	running bool
	epoch   time.Time // the running goroutine's tick 0
}

var rtpSender sender

// add starts sending c's frames, the first within about a millisecond.
func (s *sender) add(c *Call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		s.running, s.epoch = true, time.Now()
		go s.run(s.epoch)
	}
	slot := (int(time.Since(s.epoch)/time.Millisecond) + 1) % slots
	s.wheel[slot] = append(s.wheel[slot], c)
	s.calls++
}

func (s *sender) run(epoch time.Time) {
	var (
		buf   = new(frameBuf)
		due   []*Call
		ended []*Call
	)
	for tick := 0; ; tick++ {
		time.Sleep(time.Until(epoch.Add(time.Duration(tick) * time.Millisecond)))
		slot := tick % slots
		s.mu.Lock()
		due = append(due[:0], s.wheel[slot]...)
		s.mu.Unlock()
		ended = ended[:0]
		for _, c := range due {
			if !c.sendFrame(buf) {
				ended = append(ended, c)
			}
		}
		// The slot's packets on shared sockets go out together.
		for _, sh := range buf.batched {
			_ = sh.out.Flush()
		}
		clear(buf.batched)
		buf.batched = buf.batched[:0]
		s.mu.Lock()
		if len(ended) > 0 {
			s.wheel[slot] = slices.DeleteFunc(s.wheel[slot], func(c *Call) bool { return slices.Contains(ended, c) })
			s.calls -= len(ended)
		}
		last := s.calls == 0
		if last {
			s.running = false
		}
		// Sleep through empty slots: a lone test call wakes the sender 50
		// times a second, not 1,000. A call added meanwhile to a slot
		// slept through sends its first frame a turn of the wheel later.
		for i := 0; i < slots-1 && len(s.wheel[(tick+1)%slots]) == 0; i++ {
			tick++
		}
		s.mu.Unlock()
		for _, c := range ended {
			c.wg.Done()
		}
		clear(due)
		if last {
			return
		}
	}
}

// frameBuf is the sender's room to build a packet in.
type frameBuf struct {
	pcm     [media.FrameSamples]int16
	payload [media.FrameSamples]byte
	packet  [1500]byte
	batched []*sharedRTP // shared sockets with packets queued in this slot
}

// sendFrame sends the call's next packet — a queued digit's or a frame of
// its Source — and reports false once the call has stopped sending. Only
// the sender's goroutine calls it.
func (c *Call) sendFrame(buf *frameBuf) bool {
	select {
	case <-c.stop:
		return false
	default:
	}
	if len(c.queue) == 0 {
		select {
		case q := <-c.digitsQ:
			// Every packet of one RFC 4733 event carries the timestamp
			// of the event's start (§2.5.1.2); a changing timestamp
			// would read as a new key press per packet.
			c.queue = make([]outFrame, len(q))
			for i, f := range q {
				if !f.fixedTS {
					f.ts, f.fixedTS = c.ts, true
				}
				c.queue[i] = f
			}
		default:
		}
	}
	var f outFrame
	if len(c.queue) > 0 {
		f, c.queue = c.queue[0], c.queue[1:]
	} else {
		c.src.Next(buf.pcm[:])
		media.EncodeFrame(c.law, buf.payload[:], buf.pcm[:])
		f = outFrame{payload: buf.payload[:], pt: c.law.PayloadType()}
	}
	c.seq += uint16(c.skip.Swap(0))
	ts := c.ts
	if f.fixedTS {
		ts = f.ts
	}
	h := rtp.Header{Version: 2, PayloadType: f.pt, SequenceNumber: c.seq, Timestamp: ts, SSRC: c.ssrc, Marker: f.marker}
	if sh := c.shared; sh != nil {
		// Queued in the shared socket's batch; the slot's end sends it.
		out := sh.out.Buffer()
		if hn, err := h.MarshalTo(out); err == nil {
			n := copy(out[hn:], f.payload)
			_ = sh.out.Queue(hn+n, c.sendTo)
			if !slices.Contains(buf.batched, sh) {
				buf.batched = append(buf.batched, sh)
			}
		}
	} else if hn, err := h.MarshalTo(buf.packet[:]); err == nil {
		n := copy(buf.packet[hn:], f.payload)
		_, _ = c.conn().WriteToUDPAddrPort(buf.packet[:hn+n], c.sendTo)
	}
	c.seq++
	c.ts += media.FrameSamples
	return true
}

// startSending readies the call's send state and gives it to the sender.
func (c *Call) startSending() {
	c.src = c.opts.Source
	if c.src == nil {
		c.src = Silence{}
	}
	// Unmapped: an IPv4 socket refuses an IPv4-mapped IPv6 address.
	ap := c.remote.AddrPort()
	c.sendTo = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	rtpSender.add(c)
}
