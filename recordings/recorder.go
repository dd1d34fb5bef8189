package recordings

import (
	"encoding/binary"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"ivrd/ivr"
	"ivrd/media"
)

// The writer's timing. Packets wait in the rings for at most a tick; the
// window holds the last stretch of the recording while late packets may
// still land in it, and is written out holdback behind the clock.
const (
	tick          = 100 * time.Millisecond
	holdback      = 300 * media.SampleRate / 1000 // samples
	windowSamples = 2 * media.SampleRate          // samples per channel
	flushSamples  = media.SampleRate / 2          // written per call to the store
)

// Recorder records one call from answer to hangup. The media session
// feeds it as a media.Tap; the call's goroutine tells it about the call
// (Mark, SetMeta, SetCall) and ends it (Close). Every method is safe on a
// nil *Recorder (recording disabled): it does nothing.
type Recorder struct {
	lib   *Library
	e     *entry
	id    string
	law   media.Law
	start time.Time
	log   *slog.Logger
	legs  [2]*ring // left: from the caller; right: to the caller

	closed    atomic.Bool
	closeOnce sync.Once
	stop      chan time.Time
	done      chan struct{}
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
		r.closed.Store(true)
		r.stop <- ended
	})
}

// Wait returns when the recording is written and indexed, after Close.
func (r *Recorder) Wait() {
	if r == nil {
		return
	}
	<-r.done
}

// writer is the state of a recorder's goroutine.
type writer struct {
	r       *Recorder
	blob    Blob
	placers [2]placer
	win     []int16 // windowSamples stereo frames, circular by position
	out     []byte
	pcm     [media.FrameSamples]int16

	flushed int64 // samples written (per channel); the window starts here
	end     int64 // at Close: nothing at or after this position; -1 before
	synced  time.Time

	late, writeDropped uint64
	reported           uint64 // drops already logged
	err                error  // the first write error
}

func (r *Recorder) run() {
	defer close(r.done)
	st := r.lib.store
	w := &writer{r: r, win: make([]int16, windowSamples*channels), out: make([]byte, flushSamples*bytesPerFrame), end: -1}
	blob, err := st.Create(r.id + ".wav")
	if err != nil {
		w.err = fmt.Errorf("create: %w", err)
		r.log.Error("recording not written", "error", err)
	} else {
		w.blob = blob
		w.writeHeader()
		if err := r.e.save(st, r.id); err != nil {
			r.log.Warn("recording metadata not written", "error", err)
		}
	}
	w.synced = time.Now()
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case now := <-t.C:
			w.step(now)
		case ended := <-r.stop:
			w.finish(ended)
			return
		}
	}
}

// samplesAt is the sample position of d after the recording's start.
func samplesAt(d time.Duration) int64 {
	return int64(d) * media.SampleRate / int64(time.Second)
}

func (w *writer) step(now time.Time) {
	w.drain()
	if target := samplesAt(now.Sub(w.r.start)) - holdback; target > w.flushed {
		w.flushTo(target)
	}
	if now.Sub(w.synced) >= w.r.lib.cfg.SyncEvery {
		w.synced = now
		w.writeHeader()
		if err := w.r.e.save(w.r.lib.store, w.r.id); err != nil {
			w.noteErr(fmt.Errorf("metadata: %w", err))
		}
		if d := w.dropped(); d > w.reported {
			w.r.log.Warn("recording frames dropped: the disk is not keeping up", "dropped_frames", d, "new", d-w.reported)
			w.reported = d
		}
	}
}

// dropped is every frame lost so far.
func (w *writer) dropped() uint64 {
	return w.r.legs[left].dropped.Load() + w.r.legs[right].dropped.Load() + w.writeDropped
}

// drain places everything waiting in the rings, oldest first across both
// directions (so a backlog after a stall is placed in time order).
func (w *writer) drain() {
	for {
		a, b := w.r.legs[left].peek(), w.r.legs[right].peek()
		switch {
		case a == nil && b == nil:
			return
		case b == nil || a != nil && a.at <= b.at:
			w.place(left, a)
			w.r.legs[left].pop()
		default:
			w.place(right, b)
			w.r.legs[right].pop()
		}
	}
}

func (w *writer) place(ch int, s *slot) {
	pos := w.placers[ch].place(s.ssrc, s.ts, samplesAt(time.Duration(s.at)))
	n := int64(s.n)
	if pos+n <= w.flushed {
		w.late++
		return
	}
	media.DecodeFrame(w.r.law, w.pcm[:s.n], s.pcm[:s.n])
	for i := int64(0); i < n; i++ {
		p := pos + i
		if p < w.flushed {
			continue
		}
		if w.end >= 0 && p >= w.end {
			break
		}
		if p >= w.flushed+windowSamples {
			w.flushTo(p - windowSamples + 1)
		}
		w.win[(p%windowSamples)*channels+int64(ch)] = w.pcm[i]
	}
}

// flushTo writes the window up to position target (exclusive) and clears
// what it wrote.
func (w *writer) flushTo(target int64) {
	le := binary.LittleEndian
	for w.flushed < target {
		n := min(target-w.flushed, flushSamples)
		buf := w.out[:n*bytesPerFrame]
		for i := int64(0); i < n; i++ {
			k := ((w.flushed + i) % windowSamples) * channels
			le.PutUint16(buf[i*bytesPerFrame:], uint16(w.win[k]))
			le.PutUint16(buf[i*bytesPerFrame+2:], uint16(w.win[k+1]))
			w.win[k], w.win[k+1] = 0, 0
		}
		lost := true
		if w.blob != nil {
			if _, err := w.blob.WriteAt(buf, wavHeaderSize+w.flushed*bytesPerFrame); err != nil {
				w.noteErr(fmt.Errorf("write: %w", err))
			} else {
				lost = false
			}
		}
		if lost {
			w.writeDropped += uint64((n + media.FrameSamples - 1) / media.FrameSamples)
		}
		w.flushed += n
	}
}

func (w *writer) writeHeader() {
	if w.blob == nil {
		return
	}
	h := wavHeader(w.flushed * bytesPerFrame)
	if _, err := w.blob.WriteAt(h[:], 0); err != nil {
		w.noteErr(fmt.Errorf("header: %w", err))
	}
}

func (w *writer) noteErr(err error) {
	if w.err == nil {
		w.err = err
		w.r.log.Error("recording write failed: frames are lost until the disk recovers", "error", err)
	}
}

// finish writes the rest up to the hangup, the final header and metadata,
// and hands the recording to the index.
func (w *writer) finish(ended time.Time) {
	r := w.r
	w.end = max(samplesAt(ended.Sub(r.start)), w.flushed)
	w.drain()
	w.flushTo(w.end)
	// Packets that came in while the tap was closing are not part of the
	// recording; what is left in the rings is dropped unread.
	w.writeHeader()
	if w.blob != nil {
		if err := w.blob.Sync(); err != nil {
			w.noteErr(fmt.Errorf("sync: %w", err))
		}
		if err := w.blob.Close(); err != nil {
			w.noteErr(fmt.Errorf("close: %w", err))
		}
	}
	dropped, late := w.dropped(), w.late
	dur := time.Duration(w.end) * time.Second / media.SampleRate
	r.e.update(func(m *Meta) {
		m.finish(ended, dur)
		m.DroppedFrames, m.LateFrames = dropped, late
		m.Complete = true
		if w.err != nil {
			m.Error = w.err.Error()
		}
	})
	if dropped > 0 {
		r.log.Warn("recording lost frames", "dropped_frames", dropped)
	}
	var err error
	if w.blob != nil {
		err = r.e.save(r.lib.store, r.id)
		if err != nil {
			r.log.Error("recording metadata not written", "error", err)
		}
	}
	r.lib.finished(r, w.blob != nil && err == nil)
	r.log.Info("recording written", "duration", dur, "dropped_frames", dropped, "late_frames", late,
		"reanchors", w.placers[left].reanchors+w.placers[right].reanchors, "error", errString(w.err))
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
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
