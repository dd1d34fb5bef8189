package recordings

import (
	"crypto/rand"
	"errors"
	"slices"
	"time"

	"ivrd/ivr"
)

// Meta is what is known about one recording; it is stored as JSON beside
// the WAV (<id>.json) and indexed for search.
type Meta struct {
	ID     string `json:"id"`      // the recording's id: 32 hex digits, also its file name
	CallID string `json:"call_id"` // the call's id (SIP Call-ID)
	Law    string `json:"law"`     // the caller's codec: PCMU or PCMA

	Caller  Caller   `json:"caller"`
	Dialed  string   `json:"dialed,omitempty"`
	Choices []Choice `json:"ivr_choices"`
	Skill   string   `json:"skill,omitempty"`
	Agent   string   `json:"agent,omitempty"`

	Answered  time.Time `json:"answered"`            // the recording's first sample
	Queued    time.Time `json:"queued,omitzero"`     // first entered a queue
	Connected time.Time `json:"connected,omitzero"`  // first connected to an agent
	Ended     time.Time `json:"ended,omitzero"`      // hangup: the recording's end
	DurationS float64   `json:"duration_s"`          // the WAV's length
	WaitS     float64   `json:"wait_s,omitempty"`    // queued to connected
	TalkS     float64   `json:"talk_s,omitempty"`    // connected to ended
	WrapUpAt  time.Time `json:"wrap_up_at,omitzero"` // when the agent's wrap-up ended

	Disposition string `json:"disposition,omitempty"` // from wrap-up
	Notes       string `json:"notes,omitempty"`       // from wrap-up

	// Markers are the moments the call changed segment, in order; Segments
	// are the spans they make, for a player to show or skip (hold music).
	Markers  []Marker  `json:"markers"`
	Segments []Segment `json:"segments,omitempty"`

	// DroppedFrames counts 20 ms frames of the recording lost to a full
	// buffer or a failed write (silence in their place); LateFrames,
	// packets that came after their place was written. Neither touches the
	// call's own audio.
	DroppedFrames uint64 `json:"dropped_frames"`
	LateFrames    uint64 `json:"late_frames,omitempty"`

	Complete bool   `json:"complete"`           // the recording was closed (or repaired); false while writing
	Repaired bool   `json:"repaired,omitempty"` // cut off by a crash and repaired at the next start
	Error    string `json:"error,omitempty"`    // what went wrong while writing, if anything
}

// Caller is who called.
type Caller struct {
	Number     string `json:"number"`
	Name       string `json:"name,omitempty"`
	CustomerID string `json:"customer_id,omitempty"`
	Tier       string `json:"tier,omitempty"`
}

// Choice is one input the caller gave in the IVR.
type Choice struct {
	Node  string    `json:"node"`
	Input string    `json:"input"`
	At    time.Time `json:"at,omitzero"`
}

// Marker is a moment the call entered a segment: ivr, queue, agent, hold,
// or left one (hold_end, …).
type Marker struct {
	Kind    string    `json:"kind"`
	Detail  string    `json:"detail,omitempty"` // the agent for "agent", the skill for "queue"
	At      time.Time `json:"at"`
	OffsetS float64   `json:"offset_s"` // seconds into the recording
}

// Segment is a span of the recording: ivr, queue and agent follow each
// other; hold lies over the agent segment it interrupts.
type Segment struct {
	Kind   string  `json:"kind"`
	Detail string  `json:"detail,omitempty"`
	StartS float64 `json:"start_s"`
	EndS   float64 `json:"end_s"`
}

// Segment kinds passed to Recorder.Mark; a kind followed by "_end" closes
// its segment.
const (
	SegmentIVR   = "ivr"
	SegmentQueue = "queue"
	SegmentAgent = "agent"
	SegmentHold  = "hold"
)

// clone copies m so that the copy shares no slice with it.
func (m Meta) clone() Meta {
	m.Choices = slices.Clone(m.Choices)
	m.Markers = slices.Clone(m.Markers)
	m.Segments = slices.Clone(m.Segments)
	return m
}

// SetCall copies what the IVR learned about a call into m: the caller's
// identity, the choices made, the skill and when the call was queued.
func SetCall(m *Meta, c *ivr.Call) {
	if c == nil {
		return
	}
	m.Caller.Number = c.Number
	if c.Caller.Number != "" {
		m.Caller.Number = c.Caller.Number
	}
	m.Caller.Name = c.Caller.Name
	if m.Caller.Name == "" {
		m.Caller.Name = c.DisplayName
	}
	m.Caller.CustomerID = c.Caller.CustomerID
	m.Caller.Tier = c.Caller.Tier
	m.Dialed = c.Dialed
	m.Choices = m.Choices[:0]
	for _, ch := range c.Choices {
		m.Choices = append(m.Choices, Choice{Node: ch.Node, Input: ch.Input, At: ch.At})
	}
	if c.Skill != "" {
		m.Skill = c.Skill
	}
	if !c.Queued.IsZero() && m.Queued.IsZero() {
		m.Queued = c.Queued
	}
}

// mark records a marker and what it tells about the call.
func (m *Meta) mark(kind, detail string, at time.Time) {
	m.Markers = append(m.Markers, Marker{Kind: kind, Detail: detail, At: at, OffsetS: max(0, at.Sub(m.Answered).Seconds())})
	switch kind {
	case SegmentQueue:
		if m.Queued.IsZero() {
			m.Queued = at
		}
		if detail != "" {
			m.Skill = detail
		}
	case SegmentAgent:
		if m.Connected.IsZero() {
			m.Connected = at
		}
		if detail != "" {
			m.Agent = detail
		}
	}
}

// finish fills in what the end of the recording decides: its end and
// length, wait and talk time, the segments.
func (m *Meta) finish(ended time.Time, duration time.Duration) {
	m.Ended = ended
	m.DurationS = duration.Seconds()
	if !m.Queued.IsZero() && !m.Connected.IsZero() {
		m.WaitS = max(0, m.Connected.Sub(m.Queued).Seconds())
	}
	if !m.Connected.IsZero() {
		m.TalkS = max(0, ended.Sub(m.Connected).Seconds())
	}
	m.Segments = segments(m.Markers, m.DurationS)
}

// segments turns markers into spans: ivr, queue and agent end where the
// next of them starts; any kind ends at its "_end" marker; everything
// still open ends with the recording.
func segments(markers []Marker, end float64) []Segment {
	var out []Segment
	open := map[string]int{} // kind → index in out
	closeSeg := func(kind string, at float64) {
		if i, ok := open[kind]; ok {
			out[i].EndS = max(out[i].StartS, min(at, end))
			delete(open, kind)
		}
	}
	sequential := func(k string) bool { return k == SegmentIVR || k == SegmentQueue || k == SegmentAgent }
	for _, mk := range markers {
		at := min(mk.OffsetS, end)
		if base, ok := cutSuffix(mk.Kind, "_end"); ok {
			closeSeg(base, at)
			continue
		}
		if sequential(mk.Kind) {
			for _, k := range []string{SegmentIVR, SegmentQueue, SegmentAgent} {
				closeSeg(k, at)
			}
		} else {
			closeSeg(mk.Kind, at)
		}
		open[mk.Kind] = len(out)
		out = append(out, Segment{Kind: mk.Kind, Detail: mk.Detail, StartS: at, EndS: end})
	}
	for k := range open {
		closeSeg(k, end)
	}
	return out
}

func cutSuffix(s, suffix string) (string, bool) {
	if len(s) > len(suffix) && s[len(s)-len(suffix):] == suffix {
		return s[:len(s)-len(suffix)], true
	}
	return s, false
}

// Errors the library's callers branch on.
var (
	ErrInvalidID = errors.New("recordings: invalid recording id")
	ErrNotFound  = errors.New("recordings: no such recording")
)

// newRecID is a fresh recording id: 16 random bytes (in hex, the id).
func newRecID() recID {
	var b recID
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return b
}

// newID is a fresh recording id in its text form.
func newID() string { return newRecID().String() }

// ValidID reports whether id has the form of a recording id (32 lowercase
// hex digits). Only such ids ever reach the store.
func ValidID(id string) bool {
	if len(id) != 32 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
