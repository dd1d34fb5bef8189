package recordings

import "ivrd/media"

// Placement: where in the recording a packet's samples go. The RTP
// timestamps say how a source's packets lie relative to each other, more
// exactly than their arrival times (network jitter); the arrival time says
// where the source lies on the call's timeline. A placer anchors a
// source's timestamps to the arrival of its first packet and then places
// every packet by timestamp, so lost packets and pauses leave silence of
// the right length and jitter moves nothing. It re-anchors when the
// timestamps stop agreeing with the clock: a new SSRC, a jump either way
// (more than maxSkew), a packet arriving well before its place (the anchor
// packet was delayed), and — judged on the least delay over a second of
// packets — a source whose clock runs slow against ours.
const (
	maxSkew     = 120 * media.SampleRate / 1000 // 120 ms in samples
	earlyLimit  = 20 * media.SampleRate / 1000  // a packet this far before its place moves the anchor at once
	lateLimit   = 10 * media.SampleRate / 1000  // every packet of a window this late moves it
	driftWindow = 50                            // packets
)

type placer struct {
	started bool
	ssrc    uint32
	lastTS  uint32
	ext     int64 // the last (highest) timestamp, unwrapped, relative to the anchor
	base    int64 // position of ext 0: position = base + ext

	minDelay  int64
	inWindow  int
	reanchors int
}

// place returns the position (in samples from the recording's start) of a
// packet with timestamp ts from ssrc that arrived at sample position
// arrival.
func (p *placer) place(ssrc, ts uint32, arrival int64) int64 {
	if !p.started || ssrc != p.ssrc {
		if p.started {
			p.reanchors++
		}
		p.started, p.ssrc, p.lastTS, p.ext, p.base = true, ssrc, ts, 0, arrival
		p.inWindow = 0
		return arrival
	}
	ext := p.ext + int64(int32(ts-p.lastTS))
	pos := p.base + ext
	switch delay := arrival - pos; {
	case delay > maxSkew || delay < -maxSkew:
		// A jump of the timestamps, or of the source's timeline.
		p.base = arrival - ext
		p.ext, p.lastTS = ext, ts
		p.reanchors++
		p.inWindow = 0
		return arrival
	case delay < -earlyLimit:
		p.base += delay
		pos = arrival
		p.inWindow = 0
	default:
		if p.inWindow == 0 || delay < p.minDelay {
			p.minDelay = delay
		}
		p.inWindow++
		if p.inWindow >= driftWindow {
			if p.minDelay > lateLimit {
				p.base += p.minDelay
			}
			p.inWindow = 0
		}
	}
	if ext > p.ext {
		p.ext, p.lastTS = ext, ts
	}
	return pos
}
