package recordings

import (
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"ivrd/ivr"
	"ivrd/media"
)

// Recorder records one call from answer to hangup. The media session
// feeds it as a media.Tap; the call's goroutine tells it about the call
// (Mark, SetMeta, SetCall) and ends it (Close). One of the library's
// writers (writer.go) writes it. Every method is safe on a nil *Recorder
// (recording disabled): it does nothing.
type Recorder struct {
	lib   *Library
	w     *writer // the writer goroutine that writes it
	e     *entry
	id    string
	law   media.Law
	start time.Time
	log   *slog.Logger
	legs  [2]*ring // left: from the caller; right: to the caller

	closeOnce sync.Once
	ended     time.Time   // set by Close before closed
	closed    atomic.Bool // the tap is quiet; the writer finishes at ended
	done      chan struct{}

	// The rest belongs to the writer goroutine, and to seal once the
	// writer hands the finished recording over.
	blob    Blob
	placers [2]placer
	win     []byte // windowSamples stereo samples in the call's law, circular by position
	flushed int64  // samples written (per channel); the window starts here
	end     int64  // at finish: nothing at or after this position; -1 before
	synced  time.Time

	late, writeDropped uint64
	reported           uint64 // drops already logged
	err                error  // the first write error
}

// The channels of a recording.
const (
	left  = 0 // what the caller said
	right = 1 // what the caller heard
)

// ID is the recording's id.
func (r *Recorder) ID() string {
	if r == nil {
		return ""
	}
	return r.id
}

// FromCaller implements media.Tap: the caller's audio, placed by its RTP
// timestamps anchored to its arrival. It never blocks or allocates.
func (r *Recorder) FromCaller(p media.AudioPacket, at time.Time) {
	if r == nil || r.closed.Load() {
		return
	}
	r.legs[left].push(int64(at.Sub(r.start)), p.SSRC, p.Timestamp, p.Payload)
}

// ToCaller implements media.Tap: what the caller hears, placed by the
// session's stream timestamps anchored to the send time. It never blocks
// or allocates.
func (r *Recorder) ToCaller(p media.AudioPacket, at time.Time) {
	if r == nil || r.closed.Load() {
		return
	}
	r.legs[right].push(int64(at.Sub(r.start)), p.SSRC, p.Timestamp, p.Payload)
}

// Mark notes that the call entered a segment now — SegmentIVR,
// SegmentQueue (detail: the skill), SegmentAgent (detail: the agent),
// SegmentHold — or left one (the kind followed by "_end"). Its signature
// is ivr.Call's Segment hook.
func (r *Recorder) Mark(kind, detail string) {
	if r == nil {
		return
	}
	now := time.Now()
	r.e.update(func(m *Meta) { m.mark(kind, detail, now) })
}

// SetMeta changes the recording's metadata (facts about the call as they
// become known). f runs under a lock: it must be quick. Changes are
// written with the next header update and at Close.
func (r *Recorder) SetMeta(f func(*Meta)) {
	if r == nil {
		return
	}
	r.e.update(f)
}

// SetCall copies what the IVR learned (SetCall) into the metadata.
func (r *Recorder) SetCall(c *ivr.Call) {
	r.SetMeta(func(m *Meta) { SetCall(m, c) })
}

// Close ends the recording at ended (the hangup): the tap goes quiet at
// once, and the writer finishes in the background — the last samples,
// the header, the metadata — so a slow disk never holds up the call's
// end. Wait waits for that. Calling Close again does nothing.
func (r *Recorder) Close(ended time.Time) {
	if r == nil {
		return
	}
	r.closeOnce.Do(func() {
		r.ended = ended
		r.closed.Store(true)
		r.w.poke()
	})
}

// Wait returns when the recording is written and indexed, after Close.
func (r *Recorder) Wait() {
	if r == nil {
		return
	}
	<-r.done
}

// entry is one recording in the index, with its metadata.
type entry struct {
	mu      sync.Mutex // guards meta and version
	meta    Meta
	version uint64 // bumped by every change; a new recording's starts at 1, not yet written

	saveMu sync.Mutex // serialises writes of the metadata
	saved  uint64     // the version last written (0: as found in the store)

	active atomic.Bool // being written: never deleted
}

func (e *entry) update(f func(*Meta)) {
	e.mu.Lock()
	f(&e.meta)
	e.version++
	e.mu.Unlock()
}

func (e *entry) snapshot() Meta {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.meta.clone()
}

// save writes the metadata if it changed since the last write.
func (e *entry) save(st Store, id string) error {
	e.saveMu.Lock()
	defer e.saveMu.Unlock()
	e.mu.Lock()
	v := e.version
	if v == e.saved {
		e.mu.Unlock()
		return nil
	}
	data, err := marshalMeta(e.meta)
	e.mu.Unlock()
	if err != nil {
		return err
	}
	if err := st.Put(id+".json", data); err != nil {
		return err
	}
	e.saved = v
	return nil
}
