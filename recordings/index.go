package recordings

import (
	"encoding/hex"
	"strings"
	"time"
	"unique"
)

// recID is a recording's id as bytes: the index's key (16 bytes, no
// pointer) where the id string would cost 32 bytes more and a pointer.
type recID [16]byte

// parseID converts an id of the library's form (ValidID) to a recID.
func parseID(id string) (recID, bool) {
	var r recID
	if !ValidID(id) {
		return r, false
	}
	_, err := hex.Decode(r[:], []byte(id))
	return r, err == nil
}

func (r recID) String() string { return hex.EncodeToString(r[:]) }

// indexed is what the index keeps of a finished recording: the fields
// List filters and sorts on, and no more (about 100 bytes a recording,
// where its Meta takes 2 KB and more). The rest of its metadata is read
// from <id>.json when a page of results or the recording itself is asked
// for. Agent, skill and disposition repeat from recording to recording:
// they are interned.
type indexed struct {
	answered    int64   // UnixNano
	ended       int64   // UnixNano; the answer time when unknown
	durationS   float64 // the WAV's length
	caller      string  // the caller's number
	agent       unique.Handle[string]
	skill       unique.Handle[string]
	disposition unique.Handle[string]
}

// index makes a finished recording's index entry from its metadata.
func index(m *Meta) indexed {
	ended := m.Ended
	if ended.IsZero() {
		ended = m.Answered
	}
	return indexed{
		answered:    m.Answered.UnixNano(),
		ended:       ended.UnixNano(),
		durationS:   m.DurationS,
		caller:      strings.Clone(m.Caller.Number), // not part of a longer string (a SIP header) kept alive
		agent:       unique.Make(m.Agent),
		skill:       unique.Make(m.Skill),
		disposition: unique.Make(m.Disposition),
	}
}

// filter is a Query ready to match index entries: its strings interned,
// its times in UnixNano.
type filter struct {
	q                          Query
	from, to                   int64
	agent, skill, disposition  unique.Handle[string]
	byAgent, bySkill, byDispos bool
}

func newFilter(q Query) filter {
	f := filter{q: q, agent: unique.Make(q.Agent), skill: unique.Make(q.Skill), disposition: unique.Make(q.Disposition),
		byAgent: q.Agent != "", bySkill: q.Skill != "", byDispos: q.Disposition != ""}
	if !q.From.IsZero() {
		f.from = q.From.UnixNano()
	}
	if !q.To.IsZero() {
		f.to = q.To.UnixNano()
	}
	return f
}

// matches reports whether a finished recording matches; finished
// recordings are complete, so MinDuration applies to every one.
func (f *filter) matches(x *indexed) bool {
	switch {
	case !f.q.From.IsZero() && x.answered < f.from,
		!f.q.To.IsZero() && x.answered >= f.to,
		f.byAgent && x.agent != f.agent,
		f.q.Caller != "" && !strings.Contains(x.caller, f.q.Caller),
		f.bySkill && x.skill != f.skill,
		f.byDispos && x.disposition != f.disposition,
		f.q.MinDuration > 0 && x.durationS < f.q.MinDuration.Seconds():
		return false
	}
	return true
}

// recentCall is a call whose recording ended lately, in the order they
// ended: UpdateMeta finds a call's recording by its call id only for
// calls that ended less than Config.UpdateWindow ago.
type recentCall struct {
	callID string
	id     recID
	ended  time.Time
}
