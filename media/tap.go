package media

import "time"

// Tap receives a copy of a call's audio in both directions as it passes,
// for recording. Its methods run on the media path: they must not block,
// must not keep the payload (it is valid only during the call) and should
// not allocate. FromCaller is called from the receive path only (one packet at a time);
// ToCaller calls are serialised (the pacer and a relay's writer take
// turns under the session's lock), so each method has one producer at a
// time.
type Tap interface {
	// FromCaller gets each valid audio packet from the caller (not
	// telephone-events, not duplicates; late packets too) with its arrival
	// time.
	FromCaller(p AudioPacket, at time.Time)
	// ToCaller gets each packet sent to the caller — prompt frames,
	// silence, relayed audio — as sent: the session's stream SSRC,
	// sequence number, timestamp and marker bit, the payload in the
	// session's law, and the time it was sent.
	ToCaller(p AudioPacket, at time.Time)
}

// tapBox holds a Tap for an atomic pointer.
type tapBox struct{ t Tap }

// SetTap makes t receive the call's audio both ways from now on; nil stops
// it. A tap being replaced may still be running when SetTap returns.
func (s *Session) SetTap(t Tap) {
	if t == nil {
		s.tap.Store(nil)
		return
	}
	s.tap.Store(&tapBox{t: t})
}
