package recordings

import (
	"bytes"
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
	key   recID // id, as the index's key
	law   media.Law
	start time.Time
	log   *slog.Logger

	closeOnce sync.Once
	ended     time.Time   // set by Close before closed
	closed    atomic.Bool // the tap is quiet; the writer finishes at ended
	done      chan struct{}

	// The window: the recording's latest stretch, which the taps fill and
	// the writer empties. mu is held for a packet's placement or a block's
	// decoding, never for the disk.
	mu       sync.Mutex
	placers  [2]placer
	win      [2][]byte  // per channel (left, right): the call's law, circular by position
	flushed  int64      // the window starts here; before it, taken by the writer or spilled (changed under mu, by the writer and by a tap that spills)
	late     uint64     // frames whose place was already taken
	over     uint64     // frames beyond the window and the spill: the writer was held up too long
	spill    []*spilled // blocks the taps moved out of the window for the writer (it was held up)
	spills   uint64     // blocks spilled so far
	maxSpill int        // the most blocks the spill may hold (maxSpill; 0 in tests of the window's end)
	spillBuf []*spilled // the spill's other slice, swapped by the writer

	// The rest belongs to the writer goroutine, and to seal once the
	// writer hands the finished recording over.
	blob         Blob
	end          int64 // at finish: the recording's length in samples
	synced       time.Time
	writeDropped uint64 // frames whose write failed
	reported     uint64 // drops already logged
	err          error  // the first write error
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
// timestamps anchored to its arrival. It never waits for the disk and
// never allocates.
func (r *Recorder) FromCaller(p media.AudioPacket, at time.Time) {
	if r == nil || r.closed.Load() {
		return
	}
	r.place(left, p, at)
}

// ToCaller implements media.Tap: what the caller hears, placed by the
// session's stream timestamps anchored to the send time. It never waits
// for the disk and never allocates.
func (r *Recorder) ToCaller(p media.AudioPacket, at time.Time) {
	if r == nil || r.closed.Load() {
		return
	}
	r.place(right, p, at)
}

// place copies a packet's bytes into channel ch of the window, in pieces
// of at most 20 ms, each at the position its placer gives. The lock is
// contended only by the call's other direction and, for the few
// microseconds a block takes to decode, by the writer.
func (r *Recorder) place(ch int, p media.AudioPacket, at time.Time) {
	arrival := samplesAt(at.Sub(r.start))
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed.Load() { // the writer may be finishing: the window is its own
		return
	}
	ts, payload := p.Timestamp, p.Payload
	for len(payload) > 0 {
		n := min(len(payload), media.FrameSamples)
		r.put(ch, r.placers[ch].place(p.SSRC, ts, arrival), payload[:n])
		payload = payload[n:]
		ts += uint32(n)
	}
}

// makeWindow gives the recorder a window of frames 20 ms frames per
// channel, silent.
func (r *Recorder) makeWindow(frames int) {
	size := frames * media.FrameSamples
	win := bytes.Repeat([]byte{r.law.Silence()}, 2*size)
	r.win[left], r.win[right] = win[:size:size], win[size:]
}

// put copies b, whose first sample goes at position pos, into channel ch
// of the window. What the writer already took is late; what lies beyond
// the window (the writer is behind) is dropped: the window never grows.
// Either costs the frame, counted once.
func (r *Recorder) put(ch int, pos int64, b []byte) {
	to := pos + int64(len(b))
	if to <= r.flushed {
		r.late++
		return
	}
	w := r.win[ch]
	for to > r.flushed+int64(len(w)) && len(r.spill) < r.maxSpill {
		r.spillBlock()
	}
	if limit := r.flushed + int64(len(w)); to > limit {
		r.over++
		if pos >= limit {
			return
		}
		b = b[:limit-pos]
	}
	if pos < r.flushed {
		b = b[r.flushed-pos:]
		pos = r.flushed
	}
	n := copy(w[pos%int64(len(w)):], b)
	copy(w, b[n:])
}

// maxSpill bounds the blocks a recording may hold outside its window
// while its writer is held up: 20 blocks, 4 s more, 64 KB at most.
const maxSpill = 20

// spilled is a block of a recording's window, both channels in the call's
// law, moved out to make room while the writer was held up.
type spilled struct {
	pos int64 // its first sample's position
	win [2][blockSamples]byte
}

var spillPool = sync.Pool{New: func() any { return new(spilled) }}

// spilledBlocks counts the blocks every recording of the process spilled.
var spilledBlocks atomic.Uint64

// SpilledBlocks returns how many blocks recordings have spilled out of
// their windows since the process started: each is 200 ms of a recording
// whose writer was held up past its window (ivrd_recording_spilled_blocks_total).
func SpilledBlocks() uint64 { return spilledBlocks.Load() }

// spillBlock moves the window's oldest block out to the spill, where the
// writer finds it at its next pass, and moves the window on by a block.
// r.mu is held. It runs only when the writer has fallen behind (the
// machine is starved or the disk stalls): a recording then takes memory
// from the pool instead of dropping frames, for up to maxSpill blocks.
func (r *Recorder) spillBlock() {
	sb := spillPool.Get().(*spilled)
	sb.pos = r.flushed
	size := int64(len(r.win[left]))
	silence := r.law.Silence()
	for ch := range r.win {
		i := r.flushed % size
		n := copy(sb.win[ch][:], r.win[ch][i:])
		copy(sb.win[ch][n:], r.win[ch])
		fill(r.win[ch][i:min(size, i+blockSamples)], silence)
		if i+blockSamples > size {
			fill(r.win[ch][:i+blockSamples-size], silence)
		}
	}
	r.spill = append(r.spill, sb)
	r.spills++
	spilledBlocks.Add(1)
	r.flushed += blockSamples
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
