package recordings

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

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
// 250 ms blocks (the last one excepted), in order, with nothing written
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

// TestRecordingFootprint: a recording in progress costs its rings and its
// window — under 64 KiB with the default buffer — and no goroutine: the
// library's writers, started by Open, write every recording.
func TestRecordingFootprint(t *testing.T) {
	checkGoroutines(t)
	lib := openLib(t, Config{})
	const n = 200
	goroutines, mem := runtime.NumGoroutine(), inUse()
	start := time.Now()
	recs := make([]*Recorder, n)
	for i := range recs {
		recs[i] = lib.Start("footprint", media.ULaw, start)
	}
	pace(start, 40, func(i int) { feed(recs, i) }) // 0.8 s: opened and writing
	perRec := float64(inUse()-mem) / n
	more := runtime.NumGoroutine() - goroutines
	for _, r := range recs {
		r.Close(time.Now())
	}
	for _, r := range recs {
		r.Wait()
	}
	t.Logf("%d recordings: %.0f bytes each, %d goroutines more", n, perRec, more)
	if more > 0 {
		t.Errorf("%d recordings started %d goroutines", n, more)
	}
	if perRec > 64<<10 {
		t.Errorf("a recording holds %.0f bytes", perRec)
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
