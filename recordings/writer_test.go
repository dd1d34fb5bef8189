package recordings

import (
	"context"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"ivrd/media"
)

// logStore is a FileStore that logs the audio writes made to it: offset
// and size of each (headers, at offset 0, left out).
type logStore struct {
	*FileStore
	mu     sync.Mutex
	writes []write
}

type write struct{ off, n int64 }

type logBlob struct {
	Blob
	s *logStore
}

func (s *logStore) Create(name string) (Blob, error) {
	b, err := s.FileStore.Create(name)
	if err != nil {
		return nil, err
	}
	return logBlob{b, s}, nil
}

func (b logBlob) WriteAt(p []byte, off int64) (int, error) {
	if off > 0 {
		b.s.mu.Lock()
		b.s.writes = append(b.s.writes, write{off, int64(len(p))})
		b.s.mu.Unlock()
	}
	return b.Blob.WriteAt(p, off)
}

// feed sends frame i of a tone both ways into recs.
func feed(recs []*Recorder, i int) {
	now := time.Now()
	ts := uint32(i * media.FrameSamples)
	for _, r := range recs {
		r.FromCaller(media.AudioPacket{SSRC: 1, Sequence: uint16(i), Timestamp: ts, Payload: toneFrame(media.ULaw, 440, i)}, now)
		r.ToCaller(media.AudioPacket{SSRC: 2, Sequence: uint16(i), Timestamp: ts, Payload: toneFrame(media.ULaw, 1000, i)}, now)
	}
}

// TestWritesInBlocks: a recording reaches the store in writes of whole
// 200 ms blocks (the last one excepted), in order, with nothing written
// twice, adding up to the recording's length.
func TestWritesInBlocks(t *testing.T) {
	checkGoroutines(t)
	fsStore, err := NewFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st := &logStore{FileStore: fsStore}
	lib := openLib(t, Config{Store: st})
	start := time.Now()
	rec := lib.Start("blocks", media.ULaw, start)
	pace(start, 90, func(i int) { feed([]*Recorder{rec}, i) }) // 1.8 s
	rec.Close(time.Now())
	rec.Wait()
	m, err := lib.Get(rec.ID())
	if err != nil {
		t.Fatal(err)
	}
	const block = blockSamples * bytesPerFrame
	st.mu.Lock()
	writes := st.writes
	st.mu.Unlock()
	t.Logf("%.3f s in %d writes: %v", m.DurationS, len(writes), writes)
	if len(writes) < 3 {
		t.Errorf("%d writes: want blocks written while the call runs, then the rest", len(writes))
	}
	next := int64(wavHeaderSize)
	for i, w := range writes {
		if w.off != next {
			t.Errorf("write %d at %d, want %d (in order, once)", i, w.off, next)
		}
		if i < len(writes)-1 && (w.n == 0 || w.n%block != 0) {
			t.Errorf("write %d: %d bytes, not whole blocks of %d", i, w.n, block)
		}
		next = w.off + w.n
	}
	if got, want := next-wavHeaderSize, int64(m.DurationS*media.SampleRate+0.5)*bytesPerFrame; got != want {
		t.Errorf("writes add up to %d bytes, the recording is %d", got, want)
	}
	left, right := readRecording(t, lib, rec.ID())
	if len(runs(left, 440)) != 1 || len(runs(right, 1000)) != 1 {
		t.Errorf("tones: left %v, right %v", runs(left, 440), runs(right, 1000))
	}
}

// TestRecordingFootprint: a recording in progress costs its window (9 KB
// with the default buffer) and little else — 4 KiB more at most — and no
// goroutine: the library's writers, started by Open, write every
// recording. Blocks spilled because the machine held a writer up (a busy
// test run) are memory taken only while it lasts, allowed for on top.
func TestRecordingFootprint(t *testing.T) {
	checkGoroutines(t)
	lib := openLib(t, Config{})
	const n = 200
	goroutines, mem, spilledBefore := runtime.NumGoroutine(), inUse(), SpilledBlocks()
	start := time.Now()
	recs := make([]*Recorder, n)
	for i := range recs {
		recs[i] = lib.Start("footprint", media.ULaw, start)
	}
	pace(start, 40, func(i int) { feed(recs, i) }) // 0.8 s: opened and writing
	perRec := float64(inUse()-mem) / n
	nspilled := SpilledBlocks() - spilledBefore
	more := runtime.NumGoroutine() - goroutines
	for _, r := range recs {
		r.Close(time.Now())
	}
	for _, r := range recs {
		r.Wait()
	}
	window := MinBuffer * media.FrameSamples * 2
	limit := float64(window+4<<10) + float64(nspilled)*float64(unsafe.Sizeof(spilled{}))/n
	t.Logf("%d recordings: %.0f bytes each (limit %.0f: window %d, %d blocks spilled), %d goroutines more",
		n, perRec, limit, window, nspilled, more)
	if more > 0 {
		t.Errorf("%d recordings started %d goroutines", n, more)
	}
	if perRec > limit {
		t.Errorf("a recording holds %.0f bytes, more than %.0f", perRec, limit)
	}
}

// TestStartAfterClose: a closed library records nothing, and its writers
// are gone.
func TestStartAfterClose(t *testing.T) {
	checkGoroutines(t)
	lib, err := Open(Config{Dir: t.TempDir(), Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	if err := lib.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := lib.Start("late", media.ULaw, time.Now()); r != nil {
		t.Error("a closed library started a recorder")
	}
}

// memBlob is a Blob in memory.
type memBlob struct{ data []byte }

func (b *memBlob) WriteAt(p []byte, off int64) (int, error) {
	if end := int(off) + len(p); end > len(b.data) {
		b.data = append(b.data, make([]byte, end-len(b.data))...)
	}
	return copy(b.data[off:], p), nil
}

func (b *memBlob) Sync() error  { return nil }
func (b *memBlob) Close() error { return nil }

// TestWindowLimits: with no writer taking anything, the taps fill the
// window and drop what lies beyond it, counted once per frame; nothing
// placed before is harmed, and once the writer has moved the window on,
// packets land again where they belong — and a packet for what the writer
// already took counts as late.
func TestWindowLimits(t *testing.T) {
	const frames = MinBuffer
	start := time.Now()
	r := &Recorder{law: media.ULaw, start: start, log: discard, blob: &memBlob{}}
	r.makeWindow(frames)
	// Frames from the window's end on carry other tones, so that audio
	// which should have been dropped is told from audio it overwrote.
	tones := func(k int) (float64, float64) {
		if k < frames {
			return 440, 1000
		}
		return 700, 1500
	}
	feed := func(k int, arrival time.Duration) {
		at := start.Add(arrival)
		ts := uint32(k * media.FrameSamples)
		fl, fr := tones(k)
		r.FromCaller(media.AudioPacket{SSRC: 1, Timestamp: ts, Payload: toneFrame(media.ULaw, fl, k)}, at)
		r.ToCaller(media.AudioPacket{SSRC: 2, Timestamp: ts, Payload: toneFrame(media.ULaw, fr, k)}, at)
	}
	for k := range frames + 10 { // 10 frames a way beyond the window
		feed(k, time.Duration(k)*media.FrameDuration)
	}
	if d, l := r.lost(); d != 20 || l != 0 {
		t.Errorf("beyond the window: dropped %d, late %d; want 20, 0", d, l)
	}
	w := newWriter(nil)
	w.flushTo(r, frames/2*media.FrameSamples) // the writer takes half the window
	// The window's new last frame fits again; a frame the writer took,
	// arriving 100 ms late, is late.
	back, taken := frames/2+frames-1, frames/2-1
	feed(back, time.Duration(back)*media.FrameDuration)
	r.FromCaller(media.AudioPacket{SSRC: 1, Timestamp: uint32(taken * media.FrameSamples), Payload: toneFrame(media.ULaw, 440, taken)},
		start.Add(time.Duration(taken)*media.FrameDuration+100*time.Millisecond))
	w.flushTo(r, int64(back+1)*media.FrameSamples)
	if d, l := r.lost(); d != 20 || l != 1 {
		t.Errorf("after the writer moved on: dropped %d, late %d; want 20, 1", d, l)
	}
	if n := r.placers[left].reanchors + r.placers[right].reanchors; n != 0 {
		t.Errorf("%d re-anchors", n)
	}
	data := r.blob.(*memBlob).data
	h := wavHeader(int64(len(data) - wavHeaderSize))
	copy(data, h[:])
	left, right, err := DecodeStereo(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != (back+1)*media.FrameSamples {
		t.Fatalf("%d samples written, want %d", len(left), (back+1)*media.FrameSamples)
	}
	for k := range back + 1 {
		f := media.FrameSamples
		fl, fr := tones(k)
		want := k < frames || k == back
		l, r := power(left[k*f:(k+1)*f], fl) > 0.02, power(right[k*f:(k+1)*f], fr) > 0.02
		if l != want || r != want {
			t.Errorf("frame %d: left %.0f Hz %v, right %.0f Hz %v; want %v", k, fl, l, fr, r, want)
		}
		if k < frames && (power(left[k*f:(k+1)*f], 700) > 0.02 || power(right[k*f:(k+1)*f], 1500) > 0.02) {
			t.Errorf("frame %d: overwritten by a frame beyond the window", k)
		}
	}
}

// dataBlockStore is a FileStore whose audio writes (not headers) block
// until release is closed; entered counts those begun.
type dataBlockStore struct {
	*FileStore
	release chan struct{}
	entered atomic.Int64
}

type dataBlockBlob struct {
	Blob
	s *dataBlockStore
}

func (s *dataBlockStore) Create(name string) (Blob, error) {
	b, err := s.FileStore.Create(name)
	if err != nil {
		return nil, err
	}
	return dataBlockBlob{b, s}, nil
}

func (b dataBlockBlob) WriteAt(p []byte, off int64) (int, error) {
	if off > 0 {
		b.s.entered.Add(1)
		<-b.s.release
	}
	return b.Blob.WriteAt(p, off)
}

// TestTapNeverWaitsForDisk: while the writer is stuck in a write of a
// recording's audio, the taps into that recording return at once (the
// writer does not hold the recording's lock for the disk); frames beyond
// the window are dropped and counted, and once the disk recovers the
// recording is whole: as long as the call, nothing late.
func TestTapNeverWaitsForDisk(t *testing.T) {
	checkGoroutines(t)
	fsStore, err := NewFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st := &dataBlockStore{FileStore: fsStore, release: make(chan struct{})}
	lib := openLib(t, Config{Store: st, noSpill: true})
	released := time.AfterFunc(5*time.Second, func() { close(st.release) }) // if the taps are stuck
	start := time.Now()
	rec := lib.Start("stuck", media.ULaw, start)
	var worst time.Duration
	var blockedAt int
	pace(start, 90, func(i int) { // 1.8 s
		t0 := time.Now()
		feed([]*Recorder{rec}, i)
		worst = max(worst, time.Since(t0))
		if blockedAt == 0 && st.entered.Load() > 0 {
			blockedAt = i
		}
	})
	if released.Stop() {
		close(st.release)
	}
	ended := time.Now()
	rec.Close(ended)
	rec.Wait()
	m, err := lib.Get(rec.ID())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the writer blocked at frame %d; the slowest tap took %v; dropped %d, late %d", blockedAt, worst, m.DroppedFrames, m.LateFrames)
	if blockedAt == 0 || blockedAt > 40 {
		t.Fatalf("the writer blocked at frame %d: the test needs it stuck from the first block on", blockedAt)
	}
	if worst > 50*time.Millisecond {
		t.Errorf("a tap took %v while the writer was stuck in a write", worst)
	}
	if m.DroppedFrames == 0 || m.LateFrames != 0 || !m.Complete {
		t.Errorf("meta: dropped %d, late %d, complete %v", m.DroppedFrames, m.LateFrames, m.Complete)
	}
	left, _ := readRecording(t, lib, rec.ID())
	if got, want := float64(len(left))/media.SampleRate, ended.Sub(start).Seconds(); got < want-0.04 || got > want+0.04 {
		t.Errorf("the recording lasts %.3f s, the call %.3f s", got, want)
	}
}

// slowPutStore is a FileStore whose metadata writes take 20 ms each, like
// an fsync on a busy disk.
type slowPutStore struct{ *FileStore }

func (s slowPutStore) Put(name string, data []byte) error {
	time.Sleep(20 * time.Millisecond)
	return s.FileStore.Put(name, data)
}

// TestStartBurst: many calls starting at once — each new recording's
// metadata takes 20 ms to write, over a second of them per writer — do
// not hold up a recording already being written: it drops nothing, and
// every new one is opened and written.
func TestStartBurst(t *testing.T) {
	checkGoroutines(t)
	fsStore, err := NewFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	lib := openLib(t, Config{Store: slowPutStore{fsStore}})
	start := time.Now()
	rec := lib.Start("running", media.ULaw, start)
	var burst []*Recorder
	pace(start, 150, func(i int) { // 3 s
		if i == 30 {
			for range 60 * len(lib.pool) {
				burst = append(burst, lib.Start("burst", media.ULaw, time.Now()))
			}
		}
		feed([]*Recorder{rec}, i)
	})
	rec.Close(time.Now())
	for _, r := range burst {
		r.Close(time.Now())
	}
	rec.Wait()
	m, err := lib.Get(rec.ID())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("while %d recordings started: dropped %d, late %d", len(burst), m.DroppedFrames, m.LateFrames)
	if m.DroppedFrames != 0 || m.LateFrames != 0 {
		t.Errorf("the running recording lost frames: dropped %d, late %d", m.DroppedFrames, m.LateFrames)
	}
	for _, r := range burst {
		r.Wait()
		if m, err := lib.Get(r.ID()); err != nil || !m.Complete || m.Error != "" {
			t.Fatalf("a recording of the burst: %v, %+v", err, m)
		}
	}
}

// TestStallTolerance: the default window leaves a writer a pass and a
// bit more (70 ms) to be late before the taps spill, and the spill more
// than 4 s before frames drop.
func TestStallTolerance(t *testing.T) {
	perSample := time.Second / media.SampleRate
	spill := time.Duration(MinBuffer*media.FrameSamples-minWindow) * perSample
	drop := spill + time.Duration(maxSpill*blockSamples)*perSample
	t.Logf("a writer may be held up %v before spilling, %v before dropping", spill, drop)
	if spill < tick {
		t.Errorf("a writer may be held up only %v before spilling: less than a pass (%v)", spill, tick)
	}
	if drop < 4*time.Second {
		t.Errorf("a writer may be held up only %v before frames drop", drop)
	}
}

// TestSpill: when the writer is held up past the window, the taps move
// the window's oldest blocks out to the spill instead of dropping frames,
// up to maxSpill blocks; the writer then writes every spilled block in
// its place, and only what lies beyond window and spill is dropped.
func TestSpill(t *testing.T) {
	const frames = MinBuffer
	capacity := frames + maxSpill*blockSamples/media.FrameSamples
	start := time.Now()
	r := &Recorder{law: media.ULaw, start: start, log: discard, blob: &memBlob{}, maxSpill: maxSpill}
	r.makeWindow(frames)
	for k := range capacity + 10 { // nobody writes: 10 frames each way beyond window and spill
		at := start.Add(time.Duration(k) * media.FrameDuration)
		ts := uint32(k * media.FrameSamples)
		r.FromCaller(media.AudioPacket{SSRC: 1, Timestamp: ts, Payload: toneFrame(media.ULaw, 440, k)}, at)
		r.ToCaller(media.AudioPacket{SSRC: 2, Timestamp: ts, Payload: toneFrame(media.ULaw, 1000, k)}, at)
	}
	if d, l := r.lost(); d != 20 || l != 0 {
		t.Errorf("beyond window and spill: dropped %d, late %d; want 20, 0", d, l)
	}
	if len(r.spill) != maxSpill || r.spills != maxSpill {
		t.Errorf("%d blocks in the spill (%d spilled), want %d", len(r.spill), r.spills, maxSpill)
	}
	w := newWriter(nil)
	w.flushTo(r, int64(capacity)*media.FrameSamples)
	if len(r.spill) != 0 {
		t.Errorf("%d blocks left in the spill after the writer's pass", len(r.spill))
	}
	data := r.blob.(*memBlob).data
	h := wavHeader(int64(len(data) - wavHeaderSize))
	copy(data, h[:])
	left, right, err := DecodeStereo(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != capacity*media.FrameSamples {
		t.Fatalf("%d samples written, want %d", len(left), capacity*media.FrameSamples)
	}
	f := media.FrameSamples
	for k := range capacity {
		if power(left[k*f:(k+1)*f], 440) < 0.02 || power(right[k*f:(k+1)*f], 1000) < 0.02 {
			t.Fatalf("frame %d of %d (spilled or in the window) is not in the recording", k, capacity)
		}
	}
}
