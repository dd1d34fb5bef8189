package recordings

import (
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"ivrd/media"
)

// countingStore is a FileStore that counts the audio writes made to it
// (not headers) and the metadata written.
type countingStore struct {
	*FileStore
	writes, bytes, puts atomic.Int64
}

func (s *countingStore) Put(name string, data []byte) error {
	s.puts.Add(1)
	return s.FileStore.Put(name, data)
}

type countingBlob struct {
	Blob
	s *countingStore
}

func (s *countingStore) Create(name string) (Blob, error) {
	b, err := s.FileStore.Create(name)
	if err != nil {
		return nil, err
	}
	return countingBlob{b, s}, nil
}

func (b countingBlob) WriteAt(p []byte, off int64) (int, error) {
	if off > 0 { // headers are written at 0
		b.s.writes.Add(1)
		b.s.bytes.Add(int64(len(p)))
	}
	return b.Blob.WriteAt(p, off)
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// inUse is the memory the Go runtime holds for live objects and
// goroutine stacks, after a collection.
func inUse() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapInuse + ms.StackInuse)
}

// BenchmarkRecorderCalls records 1,000 calls at once in real time, each
// fed a packet every 20 ms both ways, for 3 s, to a real directory. It
// reports the memory each recording in progress holds (heap and stacks,
// measured while they run), and over the last 2 s (files created, writing
// steadily) the CPU time of recording per packet (the taps and the
// writers: all of the process) and the audio writes made: how many per
// second per recording, and their size.
//
//	go test -run '^$' -bench RecorderCalls -benchtime 1x ./recordings/
func BenchmarkRecorderCalls(b *testing.B) {
	const (
		calls  = 1000
		warmup = 50  // frames: 1 s
		frames = 150 // 3 s
	)
	for range b.N {
		fsStore, err := NewFileStore(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		st := &countingStore{FileStore: fsStore}
		lib, err := Open(Config{Store: st, Logger: discard})
		if err != nil {
			b.Fatal(err)
		}
		payload := toneFrame(media.ULaw, 440, 0)
		base := inUse()
		start := time.Now()
		recs := make([]*Recorder, calls)
		for i := range recs {
			recs[i] = lib.Start("bench", media.ULaw, start)
		}
		var cpu0 time.Duration
		var writes0, bytes0 int64
		var from time.Time
		pace(start, frames, func(f int) {
			now := time.Now()
			if f == warmup {
				cpu0, from = cpuTime(b), now
				writes0, bytes0 = st.writes.Load(), st.bytes.Load()
			}
			p := media.AudioPacket{SSRC: 1, Sequence: uint16(f), Timestamp: uint32(f * media.FrameSamples), Payload: payload}
			for _, r := range recs {
				r.FromCaller(p, now)
				r.ToCaller(p, now)
			}
		})
		cpu := cpuTime(b) - cpu0
		elapsed := time.Since(from)
		writes, bytes := st.writes.Load()-writes0, st.bytes.Load()-bytes0
		held := inUse() - base
		end := time.Now()
		for _, r := range recs {
			r.Close(end)
		}
		for _, r := range recs {
			r.Wait()
		}
		var dropped uint64
		for _, r := range recs {
			m, err := lib.Get(r.ID())
			if err != nil {
				b.Fatal(err)
			}
			dropped += m.DroppedFrames
		}
		if err := lib.Close(b.Context()); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(held)/calls, "B/recording")
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(2*calls*(frames-warmup)), "cpu-ns/packet")
		b.ReportMetric(float64(writes)/calls/elapsed.Seconds(), "writes/s/recording")
		b.ReportMetric(float64(dropped)/calls, "dropped-frames/recording")
		if writes > 0 {
			b.ReportMetric(float64(bytes)/float64(writes), "B/write")
		}
	}
}
