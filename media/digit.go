package media

import "time"

// DigitSource says how a DTMF digit reached us.
type DigitSource uint8

// The ways a caller's key press can arrive.
const (
	DigitRFC4733 DigitSource = iota + 1 // RTP telephone-event (RFC 4733)
	DigitInband                         // audio tones, found by the Goertzel detector
	DigitSIPInfo                        // SIP INFO, application/dtmf-relay or application/dtmf
)

func (s DigitSource) String() string {
	switch s {
	case DigitRFC4733:
		return "rfc4733"
	case DigitInband:
		return "inband"
	case DigitSIPInfo:
		return "sip_info"
	}
	return "unknown"
}

// Digit is one key press: one of 0-9, *, #, A-D.
type Digit struct {
	Key      byte
	Source   DigitSource
	Duration time.Duration // how long the key was held, when known
}
