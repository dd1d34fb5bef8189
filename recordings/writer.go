package recordings

import (
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"ivrd/media"
)

// The writers' timing. A writer goes over its recordings every tick. A
// recording's window holds its latest stretch while late packets may
// still land in it; the writer takes what is older than holdback out of
// it in whole blocks and writes them, so each write to the store carries
// at least a block of audio (the last one excepted). Just before a pass
// the window must reach from the oldest sample not yet taken (holdback, a
// block not yet whole and a tick behind the clock) to a packet's end (a
// frame, and a frame early) ahead of it: minWindow. A window of w samples
// lets the writer be held up for w-minWindow before the taps spill blocks
// out of it, and maxSpill blocks longer before they drop frames.
//
// The holdback is 200 ms: a packet later than that would have been
// discarded by a phone's jitter buffer too (Asterisk's largest by
// default), so the caller did not hear it in its place either.
const (
	tick         = 50 * time.Millisecond
	holdback     = 200 * media.SampleRate / 1000 // samples
	blockSamples = media.SampleRate / 5          // 200 ms per channel
	minWindow    = holdback + blockSamples + int64(tick)*media.SampleRate/int64(time.Second) + 2*media.FrameSamples
	// outSamples is the most a writer takes in one write: the buffer it
	// holds for them, whole blocks.
	outSamples = media.SampleRate // 1 s
	// openBudget is the time a pass spends opening new recordings (each a
	// create and a metadata fsync) before it leaves the rest to the next,
	// so that a burst of calls starting at once does not hold up the
	// recordings being written.
	openBudget = 100 * time.Millisecond
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
// its recordings: it takes what is older than the holdback out of their
// windows and writes it, updates headers and metadata every SyncEvery,
// finishes those that were closed and opens new ones. It holds the one
// PCM buffer its writes need, so a recording costs its window of G.711
// bytes, and no goroutine.
type writer struct {
	lib  *Library
	wake chan struct{} // a pass now: a recording was started or closed

	mu    sync.Mutex
	added []*Recorder // given by Start, not yet opened

	recs []*Recorder // being written; run's alone
	out  []byte      // 16-bit stereo PCM: one write's buffer
}

func newWriter(l *Library) *writer {
	return &writer{lib: l, wake: make(chan struct{}, 1), out: make([]byte, outSamples*bytesPerFrame)}
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
			w.mu.Lock()
			idle := len(w.added) == 0
			w.mu.Unlock()
			if idle {
				return
			}
		}
	}
}

// pass writes the recordings being written, finishes the closed ones, and
// then opens those given since the last, for at most openBudget.
func (w *writer) pass() {
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

	w.mu.Lock()
	added := w.added
	w.added = nil
	w.mu.Unlock()
	deadline := time.Now().Add(openBudget)
	for i, r := range added {
		if i > 0 && time.Now().After(deadline) {
			w.mu.Lock()
			w.added = append(added[i:], w.added...)
			w.mu.Unlock()
			w.poke()
			return
		}
		w.open(r)
		w.recs = append(w.recs, r)
	}
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

// step writes the whole blocks older than the holdback and, every
// SyncEvery, the header and metadata.
func (w *writer) step(r *Recorder, now time.Time) {
	w.flushTo(r, (samplesAt(now.Sub(r.start))-holdback)/blockSamples*blockSamples)
	if now.Sub(r.synced) >= w.lib.cfg.SyncEvery {
		r.synced = now
		w.writeHeader(r)
		if err := r.e.save(w.lib.store, r.id); err != nil {
			r.noteErr(fmt.Errorf("metadata: %w", err))
		}
		if d, _ := r.lost(); d > r.reported {
			r.log.Warn("recording frames dropped: the disk is not keeping up", "dropped_frames", d, "new", d-r.reported)
			r.reported = d
		}
	}
}

// lost is every frame dropped so far (the writer too far behind, or a
// write failed) and every frame that came too late; the writer's.
func (r *Recorder) lost() (dropped, late uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.over + r.writeDropped, r.late
}

// flushTo takes the window up to position target (exclusive) and writes
// it as 16-bit PCM, in one write when it fits the writer's buffer. Under
// the recorder's lock it decodes a part into the buffer, fills that part
// of the window with silence and moves the window on; the write is made
// after the lock is released, so a tap never waits for the disk. Packets
// for what was taken count as late from then on.
func (w *writer) flushTo(r *Recorder, target int64) {
	for {
		r.mu.Lock()
		spill := r.spill
		r.spill = r.spillBuf[:0]
		r.spillBuf = spill[:0]
		from := r.flushed // the taps move it on too when they spill
		n := min(target-from, outSamples)
		buf := w.out[:max(n, 0)*bytesPerFrame]
		if n > 0 {
			r.take(buf, from)
			r.flushed = from + n
		}
		r.mu.Unlock()
		for i, sb := range spill {
			w.writeSpilled(r, sb)
			spill[i] = nil
			spillPool.Put(sb)
		}
		if n <= 0 {
			return
		}
		w.write(r, buf, from, n)
	}
}

// write writes n samples of 16-bit stereo PCM in buf at position from.
func (w *writer) write(r *Recorder, buf []byte, from, n int64) {
	if r.blob != nil {
		if _, err := r.blob.WriteAt(buf, wavHeaderSize+from*bytesPerFrame); err != nil {
			r.noteErr(fmt.Errorf("write: %w", err))
		} else {
			return
		}
	}
	r.mu.Lock()
	r.writeDropped += uint64((n + media.FrameSamples - 1) / media.FrameSamples)
	r.mu.Unlock()
}

// writeSpilled decodes and writes a block the taps spilled.
func (w *writer) writeSpilled(r *Recorder, sb *spilled) {
	le := binary.LittleEndian
	pcm := &linear[r.law]
	buf := w.out[:blockSamples*bytesPerFrame]
	for j := range sb.win[left] {
		le.PutUint32(buf[j*bytesPerFrame:], uint32(uint16(pcm[sb.win[left][j]]))|uint32(uint16(pcm[sb.win[right][j]]))<<16)
	}
	w.write(r, buf, sb.pos, blockSamples)
}

// take decodes the window from position from into buf (16-bit stereo
// PCM, as many samples as it holds, at most the window) and fills what it
// took with silence. r.mu is held.
func (r *Recorder) take(buf []byte, from int64) {
	le := binary.LittleEndian
	pcm, silence := &linear[r.law], r.law.Silence()
	size := int64(len(r.win[left]))
	i := from % size
	for len(buf) > 0 {
		k := min(int64(len(buf)/bytesPerFrame), size-i)
		a, b := r.win[left][i:i+k], r.win[right][i:i+k]
		b = b[:len(a)]
		out := buf[:len(a)*bytesPerFrame]
		for j := range a {
			le.PutUint32(out[j*bytesPerFrame:], uint32(uint16(pcm[a[j]]))|uint32(uint16(pcm[b[j]]))<<16)
		}
		fill(a, silence)
		fill(b, silence)
		buf = buf[len(out):]
		i = 0
	}
}

// fill sets every byte of b to v.
func fill(b []byte, v byte) {
	if len(b) == 0 {
		return
	}
	b[0] = v
	for n := 1; n < len(b); n *= 2 {
		copy(b[n:], b[:n])
	}
}

// taken is where the window starts: what lies before it has been taken
// by the writer or spilled by a tap, which may move it at any time.
func (r *Recorder) taken() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.flushed
}

func (w *writer) writeHeader(r *Recorder) {
	if r.blob == nil {
		return
	}
	h := wavHeader(r.taken() * bytesPerFrame)
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
// recordings that end do not hold up the writer's others. The tap is
// closed: packets that come in while it closes are not part of the
// recording, and none is placed once flushTo has taken the lock.
func (w *writer) finish(r *Recorder) {
	r.end = max(samplesAt(r.ended.Sub(r.start)), r.taken())
	w.flushTo(r, r.end)
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
	dropped, late := r.lost()
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
	r.mu.Lock()
	reanchors := r.placers[left].reanchors + r.placers[right].reanchors
	spills := r.spills
	r.mu.Unlock()
	r.log.Info("recording written", "duration", dur, "dropped_frames", dropped, "late_frames", late,
		"spilled_blocks", spills, "reanchors", reanchors, "error", errString(r.err))
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
