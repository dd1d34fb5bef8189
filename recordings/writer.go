package recordings

import (
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"ivrd/media"
)

// The writers' timing. A writer goes over its recordings every tick;
// packets wait in the rings until then. A recording's window holds its
// last stretch while late packets may still land in it, and is written
// out holdback behind the clock in whole blocks, so each write to the
// store carries at least a block of audio (the last one excepted). The
// window covers the holdback, a block not yet whole and a tick, with
// 160 ms to spare for a writer running late; beyond that the oldest
// audio is written early (late packets then count as late_frames).
const (
	tick          = 250 * time.Millisecond
	holdback      = 300 * media.SampleRate / 1000 // samples
	blockSamples  = media.SampleRate / 4          // 250 ms per channel
	windowSamples = media.SampleRate              // 1 s per channel
)

// linear decodes G.711, one table per law (indexed by media.Law): windows
// hold the call's bytes and are decoded only as they are written out.
var linear = func() (t [2][256]int16) {
	var all [256]byte
	for i := range all {
		all[i] = byte(i)
	}
	media.DecodeFrame(media.ULaw, t[media.ULaw][:], all[:])
	media.DecodeFrame(media.ALaw, t[media.ALaw][:], all[:])
	return t
}()

// writer is one of the library's writer goroutines (one per CPU). Start
// gives each recording to one of them; every tick the writer goes over
// its recordings: it opens new ones, drains their rings into their
// windows, writes what is older than the holdback, updates headers and
// metadata every SyncEvery, and finishes those that were closed. It holds
// the one PCM buffer its writes need, so a recording costs its rings and
// a window of G.711 bytes, and no goroutine.
type writer struct {
	lib  *Library
	wake chan struct{} // a pass now: a recording was started or closed

	mu    sync.Mutex
	added []*Recorder // given by Start, not yet opened

	recs []*Recorder // being written; run's alone
	out  []byte      // a window of 16-bit stereo PCM: one write's buffer
}

func newWriter(l *Library) *writer {
	return &writer{lib: l, wake: make(chan struct{}, 1), out: make([]byte, windowSamples*bytesPerFrame)}
}

// give adds a recording; the next pass opens it.
func (w *writer) give(r *Recorder) {
	w.mu.Lock()
	w.added = append(w.added, r)
	w.mu.Unlock()
	w.poke()
}

// poke asks for a pass now, without waiting.
func (w *writer) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// run makes a pass every tick and when poked, until quit is closed and it
// has no recordings left (the library no longer gives it any then).
func (w *writer) run(quit <-chan struct{}) {
	defer w.lib.writers.Done()
	t := time.NewTicker(tick)
	defer t.Stop()
	stopping := false
	for {
		select {
		case <-t.C:
		case <-w.wake:
		case <-quit:
			stopping, quit = true, nil
		}
		w.pass()
		if stopping && len(w.recs) == 0 {
			return
		}
	}
}

// pass opens the recordings given since the last, finishes the closed
// ones and writes the others.
func (w *writer) pass() {
	w.mu.Lock()
	added := w.added
	w.added = nil
	w.mu.Unlock()
	for _, r := range added {
		w.open(r)
		w.recs = append(w.recs, r)
	}
	kept := w.recs[:0]
	for _, r := range w.recs {
		if r.closed.Load() {
			w.finish(r)
			continue
		}
		w.step(r, time.Now())
		kept = append(kept, r)
	}
	clear(w.recs[len(kept):])
	w.recs = kept
}

// open creates the recording's WAV and writes its header and metadata.
func (w *writer) open(r *Recorder) {
	st := w.lib.store
	blob, err := st.Create(r.id + ".wav")
	if err != nil {
		r.err = fmt.Errorf("create: %w", err)
		r.log.Error("recording not written", "error", err)
	} else {
		r.blob = blob
		w.writeHeader(r)
		if err := r.e.save(st, r.id); err != nil {
			r.log.Warn("recording metadata not written", "error", err)
		}
	}
	r.synced = time.Now()
}

// samplesAt is the sample position of d after the recording's start.
func samplesAt(d time.Duration) int64 {
	return int64(d) * media.SampleRate / int64(time.Second)
}

// step places what waits in the rings, writes the whole blocks older than
// the holdback and, every SyncEvery, the header and metadata.
func (w *writer) step(r *Recorder, now time.Time) {
	w.drain(r)
	w.flushTo(r, (samplesAt(now.Sub(r.start))-holdback)/blockSamples*blockSamples)
	if now.Sub(r.synced) >= w.lib.cfg.SyncEvery {
		r.synced = now
		w.writeHeader(r)
		if err := r.e.save(w.lib.store, r.id); err != nil {
			r.noteErr(fmt.Errorf("metadata: %w", err))
		}
		if d := r.dropped(); d > r.reported {
			r.log.Warn("recording frames dropped: the disk is not keeping up", "dropped_frames", d, "new", d-r.reported)
			r.reported = d
		}
	}
}

// dropped is every frame lost so far.
func (r *Recorder) dropped() uint64 {
	return r.legs[left].dropped.Load() + r.legs[right].dropped.Load() + r.writeDropped
}

// drain places everything waiting in the rings, oldest first across both
// directions (so a backlog after a stall is placed in time order).
func (w *writer) drain(r *Recorder) {
	for {
		a, b := r.legs[left].peek(), r.legs[right].peek()
		switch {
		case a == nil && b == nil:
			return
		case b == nil || a != nil && a.at <= b.at:
			w.place(r, left, a)
			r.legs[left].pop()
		default:
			w.place(r, right, b)
			r.legs[right].pop()
		}
	}
}

// place copies a slot's bytes into the window at their position; a slot
// whose place was already written counts as late.
func (w *writer) place(r *Recorder, ch int, s *slot) {
	pos := r.placers[ch].place(s.ssrc, s.ts, samplesAt(time.Duration(s.at)))
	to := pos + int64(s.n)
	if to <= r.flushed {
		r.late++
		return
	}
	if r.end >= 0 {
		to = min(to, r.end)
	}
	if over := to - (r.flushed + windowSamples); over > 0 {
		// Ahead of the window (the writer ran late): make room, a whole
		// number of blocks.
		w.flushTo(r, r.flushed+(over+blockSamples-1)/blockSamples*blockSamples)
	}
	for p := max(pos, r.flushed); p < to; p++ {
		r.win[(p%windowSamples)*channels+int64(ch)] = s.pcm[p-pos]
	}
}

// flushTo writes the window up to position target (exclusive) as 16-bit
// PCM, in one write when it fits the buffer, and fills what it wrote with
// silence. Beyond the window it writes silence.
func (w *writer) flushTo(r *Recorder, target int64) {
	le := binary.LittleEndian
	pcm, silence := &linear[r.law], r.law.Silence()
	for r.flushed < target {
		n := min(target-r.flushed, windowSamples)
		buf := w.out[:n*bytesPerFrame]
		for i := int64(0); i < n; i++ {
			k := ((r.flushed + i) % windowSamples) * channels
			le.PutUint16(buf[i*bytesPerFrame:], uint16(pcm[r.win[k]]))
			le.PutUint16(buf[i*bytesPerFrame+2:], uint16(pcm[r.win[k+1]]))
			r.win[k], r.win[k+1] = silence, silence
		}
		lost := true
		if r.blob != nil {
			if _, err := r.blob.WriteAt(buf, wavHeaderSize+r.flushed*bytesPerFrame); err != nil {
				r.noteErr(fmt.Errorf("write: %w", err))
			} else {
				lost = false
			}
		}
		if lost {
			r.writeDropped += uint64((n + media.FrameSamples - 1) / media.FrameSamples)
		}
		r.flushed += n
	}
}

func (w *writer) writeHeader(r *Recorder) {
	if r.blob == nil {
		return
	}
	h := wavHeader(r.flushed * bytesPerFrame)
	if _, err := r.blob.WriteAt(h[:], 0); err != nil {
		r.noteErr(fmt.Errorf("header: %w", err))
	}
}

func (r *Recorder) noteErr(err error) {
	if r.err == nil {
		r.err = err
		r.log.Error("recording write failed: frames are lost until the disk recovers", "error", err)
	}
}

// finish writes the rest up to the hangup and the final header, and
// leaves the rest to seal, on a goroutine of its own: the fsyncs of
// recordings that end do not hold up the writer's others.
func (w *writer) finish(r *Recorder) {
	r.end = max(samplesAt(r.ended.Sub(r.start)), r.flushed)
	w.drain(r)
	w.flushTo(r, r.end)
	// Packets that came in while the tap was closing are not part of the
	// recording; what is left in the rings is dropped unread.
	w.writeHeader(r)
	w.lib.sealing.Add(1)
	go func() {
		defer w.lib.sealing.Done()
		r.seal()
	}()
}

// seal makes a finished recording durable — the WAV synced and closed,
// the final metadata written — and hands it to the index.
func (r *Recorder) seal() {
	defer close(r.done)
	if r.blob != nil {
		if err := r.blob.Sync(); err != nil {
			r.noteErr(fmt.Errorf("sync: %w", err))
		}
		if err := r.blob.Close(); err != nil {
			r.noteErr(fmt.Errorf("close: %w", err))
		}
	}
	ended := r.ended
	dropped, late := r.dropped(), r.late
	dur := time.Duration(r.end) * time.Second / media.SampleRate
	r.e.update(func(m *Meta) {
		m.finish(ended, dur)
		m.DroppedFrames, m.LateFrames = dropped, late
		m.Complete = true
		if r.err != nil {
			m.Error = r.err.Error()
		}
	})
	if dropped > 0 {
		r.log.Warn("recording lost frames", "dropped_frames", dropped)
	}
	var err error
	if r.blob != nil {
		err = r.e.save(r.lib.store, r.id)
		if err != nil {
			r.log.Error("recording metadata not written", "error", err)
		}
	}
	r.lib.finished(r, r.blob != nil && err == nil)
	r.log.Info("recording written", "duration", dur, "dropped_frames", dropped, "late_frames", late,
		"reanchors", r.placers[left].reanchors+r.placers[right].reanchors, "error", errString(r.err))
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
