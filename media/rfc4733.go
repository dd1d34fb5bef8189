package media

import (
	"encoding/binary"
	"errors"
	"time"
)

// TelephoneEvent is the payload of an RFC 4733 event packet (§2.3).
type TelephoneEvent struct {
	Event    uint8
	End      bool
	Volume   uint8  // 0..63, in -dBm0
	Duration uint16 // in timestamp units since the event began
}

// ErrShortEvent means a telephone-event payload under 4 bytes.
var ErrShortEvent = errors.New("telephone-event payload shorter than 4 bytes")

// ParseTelephoneEvent reads the first event of a payload (further events in
// the same packet, RFC 4733 §2.5.1.5, are redundancy and are ignored).
func ParseTelephoneEvent(b []byte) (TelephoneEvent, error) {
	if len(b) < 4 {
		return TelephoneEvent{}, ErrShortEvent
	}
	return TelephoneEvent{
		Event:    b[0],
		End:      b[1]&0x80 != 0,
		Volume:   b[1] & 0x3f,
		Duration: binary.BigEndian.Uint16(b[2:4]),
	}, nil
}

// MarshalTo writes the event into b (at least 4 bytes) and returns 4.
func (e TelephoneEvent) MarshalTo(b []byte) (int, error) {
	if len(b) < 4 {
		return 0, ErrShortEvent
	}
	b[0] = e.Event
	b[1] = e.Volume & 0x3f
	if e.End {
		b[1] |= 0x80
	}
	binary.BigEndian.PutUint16(b[2:4], e.Duration)
	return 4, nil
}

const eventKeys = "0123456789*#ABCD"

// EventKey maps an RFC 4733 §3.2 event code (0-15) to its key.
func EventKey(event uint8) (byte, bool) {
	if int(event) < len(eventKeys) {
		return eventKeys[event], true
	}
	return 0, false
}

// KeyEvent maps a key to its RFC 4733 event code.
func KeyEvent(key byte) (uint8, bool) {
	if key >= 'a' && key <= 'd' {
		key -= 'a' - 'A'
	}
	for i := 0; i < len(eventKeys); i++ {
		if eventKeys[i] == key {
			return uint8(i), true
		}
	}
	return 0, false
}

// EventDetector turns telephone-event packets into digits. An event is
// identified by its RTP timestamp (in RFC 4733 every packet of one event
// carries the timestamp of its start), so one key press is one digit
// however many packets carry it: updates, the three end retransmissions,
// and a key held so long that its duration field wraps.
//
// A key held past the largest duration the field can carry (0xFFFF, about
// 8 s) is sent in segments (RFC 4733 §2.5.1.3): each new segment carries a
// new timestamp, the old one plus the old segment's duration, with the
// same event code and no end bit before it. Such a segment continues the
// press and is not a new digit.
//
// The digit is emitted on the first packet of an event, not at its end:
// barge-in stops a prompt as soon as the key goes down, and a digit whose
// end packets are all lost still counts. The marker bit is not required:
// some gateways never set it, and one bridge that demanded it broke PIN
// entry for their customers.
type EventDetector struct {
	seen    bool
	lastTS  uint32
	lastEvt uint8
	lastDur uint16 // longest duration seen in the current event (segment)
	ended   bool
}

// segmentSlack is how far short of 0xFFFF the last duration seen of a
// segment may be (its last updates lost) for the next timestamp to still
// be read as a continuation: one second.
const segmentSlack = SampleRate

// Feed takes one telephone-event packet's timestamp and payload and
// returns the digit when this packet starts a new event.
func (d *EventDetector) Feed(ts uint32, payload []byte) (Digit, bool) {
	ev, err := ParseTelephoneEvent(payload)
	if err != nil {
		return Digit{}, false
	}
	key, ok := EventKey(ev.Event)
	if !ok {
		return Digit{}, false // tones and line events (RFC 4734) are not keys
	}
	if d.seen && ts == d.lastTS && ev.Event == d.lastEvt {
		d.ended = d.ended || ev.End
		d.lastDur = max(d.lastDur, ev.Duration)
		return Digit{}, false
	}
	// The next segment of a long press (RFC 4733 §2.5.1.3): same event, not
	// ended, starting where a full-length segment ends. A new press of the
	// same key whose end packets were lost starts well before that.
	if d.seen && !d.ended && ev.Event == d.lastEvt {
		if gap := ts - d.lastTS; gap <= 0xFFFF && gap >= uint32(d.lastDur) && d.lastDur >= 0xFFFF-segmentSlack {
			d.lastTS, d.lastDur, d.ended = ts, ev.Duration, ev.End
			return Digit{}, false
		}
	}
	// A stale retransmission of the previous event's end, arriving after a
	// newer event began, has an older timestamp: ignore it (serial number
	// arithmetic, RFC 1982, for timestamp wrap).
	if d.seen && int32(ts-d.lastTS) < 0 {
		return Digit{}, false
	}
	d.seen, d.lastTS, d.lastEvt, d.lastDur, d.ended = true, ts, ev.Event, ev.Duration, ev.End
	return Digit{
		Key:      key,
		Source:   DigitRFC4733,
		Duration: time.Duration(ev.Duration) * time.Second / SampleRate,
	}, true
}
