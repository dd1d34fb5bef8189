package recordings

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"ivrd/media"
)

// slowStore is a FileStore whose WriteAt blocks until released, or fails.
type slowStore struct {
	*FileStore
	release chan struct{} // nil: writes fail
}

type slowBlob struct {
	Blob
	s *slowStore
}

func (s *slowStore) Create(name string) (Blob, error) {
	b, err := s.FileStore.Create(name)
	if err != nil {
		return nil, err
	}
	return slowBlob{b, s}, nil
}

func (b slowBlob) WriteAt(p []byte, off int64) (int, error) {
	if b.s.release == nil {
		return 0, syscall.ENOSPC
	}
	<-b.s.release
	return b.Blob.WriteAt(p, off)
}

// TestDiskTrouble: a disk that stops (writes block) or is full (writes
// fail) loses recording frames, counted in the metadata, and never slows
// the call: the session keeps sending every 20 ms, the caller's audio
// keeps arriving, and Close returns at once while the disk is stuck.
func TestDiskTrouble(t *testing.T) {
	for _, tc := range []struct {
		name  string
		block bool
	}{{"blocked", true}, {"full", false}} {
		t.Run(tc.name, func(t *testing.T) {
			checkGoroutines(t)
			fsStore, err := NewFileStore(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			st := &slowStore{FileStore: fsStore}
			if tc.block {
				st.release = make(chan struct{})
			}
			lib := openLib(t, Config{Store: st, Buffer: 50, noSpill: true})
			c := newCall(t, lib, media.ALaw)
			var seq uint16
			var ts uint32
			before := c.s.Stats().PacketsOut
			start := time.Now()
			c.callerTone(0.1, 100, &seq, &ts, nil, -1, 0) // 2 s
			elapsed := time.Since(start)
			sent := c.s.Stats().PacketsOut - before
			wantSent := uint64(elapsed / media.FrameDuration)
			t.Logf("%v: the session sent %d packets (pace: %d), received %d", elapsed.Round(time.Millisecond), sent, wantSent, c.s.Stats().PacketsIn)
			if sent < wantSent*8/10 {
				t.Errorf("the session sent %d packets in %v: it was held up", sent, elapsed)
			}
			if got := c.s.Stats().PacketsIn; got < 95 {
				t.Errorf("the session received %d of 100 packets", got)
			}
			closing := time.Now()
			c.rec.Close(closing)
			if d := time.Since(closing); d > 20*time.Millisecond {
				t.Errorf("Close took %v: it waited for the disk", d)
			}
			if tc.block {
				close(st.release)
			}
			c.rec.Wait()
			m, err := lib.Get(c.rec.ID())
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("dropped %d frames, error %q", m.DroppedFrames, m.Error)
			if m.DroppedFrames == 0 || !m.Complete {
				t.Errorf("meta: dropped %d, complete %v", m.DroppedFrames, m.Complete)
			}
			if !tc.block && m.Error == "" {
				t.Error("a failed write is not reported in the metadata")
			}
			if tc.block {
				left, _ := readRecording(t, lib, c.rec.ID())
				if got, want := float64(len(left))/media.SampleRate, m.DurationS; got < want-0.04 || got > want+0.04 {
					t.Errorf("after the stall the recording lasts %.3f s, the call %.3f s", got, want)
				}
			}
		})
	}
}

// TestCrashChild is the process killed by TestCrashRepaired.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv("RECORDINGS_CRASH_DIR")
	if dir == "" {
		t.Skip("run by TestCrashRepaired")
	}
	lib, err := Open(Config{Dir: dir, SyncEvery: time.Second, Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	answered := time.Now()
	rec := lib.Start("crash-call", media.ULaw, answered)
	rec.SetMeta(func(m *Meta) { m.Caller.Number = "+15550100" })
	rec.Mark(SegmentQueue, "billing")
	var once sync.Once
	pace(answered, 1<<30, func(i int) {
		now := time.Now()
		rec.FromCaller(media.AudioPacket{SSRC: 1, Sequence: uint16(i), Timestamp: uint32(i * media.FrameSamples), Payload: toneFrame(media.ULaw, 440, i)}, now)
		rec.ToCaller(media.AudioPacket{SSRC: 2, Sequence: uint16(i), Timestamp: uint32(i * media.FrameSamples), Payload: toneFrame(media.ULaw, 1000, i)}, now)
		// Ready to be killed once a header update covers a second of audio
		// and more has been written since (the next update is most of a
		// second away).
		raw, err := os.ReadFile(filepath.Join(dir, rec.ID()+".wav"))
		if err == nil && len(raw) >= wavHeaderSize {
			hdr, data := dataSize(raw), int64(len(raw)-wavHeaderSize)
			if hdr >= media.SampleRate*bytesPerFrame && data > hdr {
				once.Do(func() { os.Stdout.WriteString("READY\n") })
			}
		}
	})
}

// dataSize is the data size a WAV's header gives.
func dataSize(raw []byte) int64 {
	return int64(raw[40]) | int64(raw[41])<<8 | int64(raw[42])<<16 | int64(raw[43])<<24
}

// TestCrashRepaired: a server killed mid-recording leaves a WAV whose
// header is behind its data; the next start repairs it (header from the
// file's size), marks it repaired and lists it, and it plays.
func TestCrashRepaired(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), "RECORDINGS_CRASH_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if sc.Text() == "READY" {
				ready <- true
				return
			}
		}
		ready <- false
	}()
	select {
	case ok := <-ready:
		if !ok {
			t.Fatal("the child ended without recording")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the child never got ready")
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()

	wavs, _ := filepath.Glob(filepath.Join(dir, "*.wav"))
	if len(wavs) != 1 {
		t.Fatalf("%d WAVs after the crash", len(wavs))
	}
	raw, err := os.ReadFile(wavs[0])
	if err != nil {
		t.Fatal(err)
	}
	hdr := dataSize(raw)
	t.Logf("after the kill: %d bytes of data, the header says %d", len(raw)-wavHeaderSize, hdr)
	if hdr >= int64(len(raw)-wavHeaderSize) {
		t.Fatal("the header is not behind the data: nothing to repair")
	}

	checkGoroutines(t)
	lib := openLib(t, Config{Dir: dir})
	page := lib.List(Query{})
	if page.Total != 1 {
		t.Fatalf("listed %d recordings, want the repaired one", page.Total)
	}
	m := page.Recordings[0]
	if !m.Repaired || !m.Complete || m.CallID != "crash-call" || m.Caller.Number != "+15550100" || m.Skill != "billing" {
		t.Errorf("repaired meta: %+v", m)
	}
	left, right := readRecording(t, lib, m.ID)
	dur := float64(len(left)) / media.SampleRate
	t.Logf("repaired: %.3f s, meta %.3f s", dur, m.DurationS)
	if dur < 1.2 || math.Abs(dur-m.DurationS) > 0.001 {
		t.Errorf("repaired recording lasts %.3f s, meta %.3f s", dur, m.DurationS)
	}
	if len(runs(left, 440)) == 0 || len(runs(right, 1000)) == 0 {
		t.Error("the repaired recording lost its audio")
	}
	raw, _ = os.ReadFile(wavs[0])
	if hdr := dataSize(raw); hdr != int64(len(raw)-wavHeaderSize)&^3 {
		t.Errorf("repaired header says %d bytes of data, the file has %d", hdr, len(raw)-wavHeaderSize)
	}
}

// putRecording stores a finished recording directly, as an earlier run
// would have left it.
func putRecording(t *testing.T, st Store, m Meta) {
	t.Helper()
	m.Complete = true
	if m.ID == "" {
		m.ID = newID()
	}
	h := wavHeader(frameBytes * 50)
	if err := st.Put(m.ID+".wav", append(h[:], make([]byte, frameBytes*50)...)); err != nil {
		t.Fatal(err)
	}
	data, err := marshalMeta(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Put(m.ID+".json", data); err != nil {
		t.Fatal(err)
	}
}

// TestMetadataWrites: a recording's metadata is written when it opens, at
// an update only if it changed since, and at the end.
func TestMetadataWrites(t *testing.T) {
	checkGoroutines(t)
	fsStore, err := NewFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st := &countingStore{FileStore: fsStore}
	lib := openLib(t, Config{Store: st, SyncEvery: time.Millisecond})
	rec := lib.Start("meta-writes", media.ULaw, time.Now())
	time.Sleep(2*tick + 100*time.Millisecond) // every pass updates
	if n := st.puts.Load(); n != 1 {
		t.Errorf("unchanged: metadata written %d times, want once", n)
	}
	rec.Mark(SegmentQueue, "billing")
	time.Sleep(tick + 100*time.Millisecond)
	if n := st.puts.Load(); n != 2 {
		t.Errorf("after a change: metadata written %d times, want 2", n)
	}
	rec.Close(time.Now())
	rec.Wait()
	if n := st.puts.Load(); n != 3 {
		t.Errorf("at the end: metadata written %d times, want 3", n)
	}
}

// TestRetention: Sweep deletes complete recordings older than the
// retention, never one being written, nothing with 0 days; a deletion cut
// off between the WAV and its metadata is cleaned at the next start.
func TestRetention(t *testing.T) {
	checkGoroutines(t)
	dir := t.TempDir()
	st, err := NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	old := Meta{CallID: "old", Answered: now.Add(-100 * 24 * time.Hour), Ended: now.Add(-100*24*time.Hour + time.Minute)}
	recent := Meta{CallID: "recent", Answered: now.Add(-10 * 24 * time.Hour), Ended: now.Add(-10 * 24 * time.Hour)}
	putRecording(t, st, old)
	putRecording(t, st, recent)
	orphan := newID()
	if err := st.Put(orphan+".json", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	lib := openLib(t, Config{Store: st})
	if _, err := st.Stat(orphan + ".json"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("metadata without audio kept: %v", err)
	}
	rec := lib.Start("active", media.ULaw, time.Now())
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, err := st.Stat(rec.ID() + ".wav"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the active recording's WAV was never created")
		}
	}

	if n, _ := lib.Sweep(now.Add(365*24*time.Hour), 0); n != 0 {
		t.Errorf("0 days deleted %d", n)
	}
	n, err := lib.Sweep(now, 90)
	if err != nil || n != 1 {
		t.Errorf("Sweep(90 days) = %d, %v; want the old one", n, err)
	}
	// A year later everything is old, but the active recording stays.
	n, err = lib.Sweep(now.Add(365*24*time.Hour), 90)
	if err != nil || n != 1 {
		t.Errorf("Sweep a year on = %d, %v; want the recent one only", n, err)
	}
	if _, err := lib.Get(rec.ID()); err != nil {
		t.Errorf("the active recording: %v", err)
	}
	if _, err := st.Stat(rec.ID() + ".wav"); err != nil {
		t.Errorf("the active recording's WAV: %v", err)
	}
	rec.Close(time.Now())
	rec.Wait()
	if n, _ := lib.Sweep(time.Now().Add(365*24*time.Hour), 90); n != 1 {
		t.Errorf("after Close, Sweep deleted %d, want 1", n)
	}
	infos, _ := st.List()
	if len(infos) != 0 {
		t.Errorf("left behind: %v", infos)
	}
}

// TestIDs: ids are 32 random hex digits; anything else is refused before
// the store is touched, and the store refuses names that are not plain.
func TestIDs(t *testing.T) {
	lib := openLib(t, Config{})
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		id := newID()
		if !ValidID(id) || seen[id] {
			t.Fatalf("id %q", id)
		}
		seen[id] = true
	}
	for _, id := range []string{"", "../x", "..", "%2e%2e", "%2e%2e%2f" + newID()[:23], "0123456789ABCDEF0123456789abcdef",
		newID() + "0", newID()[:31], "../../../../etc/passwd", newID()[:28] + ".wav", "0123456789abcdef0123456789abcde/"} {
		if _, err := lib.Get(id); !errors.Is(err, ErrInvalidID) {
			t.Errorf("Get(%q) = %v", id, err)
		}
		if _, _, err := lib.Open(id); !errors.Is(err, ErrInvalidID) {
			t.Errorf("Open(%q) = %v", id, err)
		}
	}
	if _, err := lib.Get(newID()); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown id: %v", err)
	}
	st, _ := NewFileStore(t.TempDir())
	for _, name := range []string{"../x", "a/b", ".hidden", "", "a\\b", "%2e%2e"} {
		if _, err := st.Open(name); !errors.Is(err, ErrBadName) {
			t.Errorf("store Open(%q) = %v", name, err)
		}
	}
}

// TestListAndUpdate: filters, newest first, pages; a disposition that
// comes after the call is written and survives a restart; a call that
// ended longer than UpdateWindow ago is no longer found by its id.
func TestListAndUpdate(t *testing.T) {
	checkGoroutines(t)
	dir := t.TempDir()
	st, _ := NewFileStore(dir)
	base := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	for i := 0; i < 10; i++ {
		m := Meta{
			CallID: "c" + string(rune('0'+i)), Answered: base.Add(time.Duration(i) * time.Hour), Ended: base.Add(time.Duration(i)*time.Hour + time.Minute),
			Caller: Caller{Number: "+1555010" + string(rune('0'+i))}, Agent: []string{"agent1", "agent2"}[i%2],
			Skill: []string{"billing", "support"}[i%2], DurationS: float64(i * 10), Choices: []Choice{},
		}
		putRecording(t, st, m)
	}
	ended := time.Now().Add(-time.Minute)
	putRecording(t, st, Meta{CallID: "recent", Answered: ended.Add(-time.Minute), Ended: ended, Agent: "agent3", DurationS: 60, Choices: []Choice{}})
	lib := openLib(t, Config{Store: st})
	p := lib.List(Query{Agent: "agent1", Limit: 2})
	if p.Total != 5 || len(p.Recordings) != 2 || p.NextOffset != 2 || p.Recordings[0].CallID != "c8" || p.Recordings[1].CallID != "c6" {
		t.Errorf("agent1 page 1: total %d next %d %v", p.Total, p.NextOffset, ids(p))
	}
	p = lib.List(Query{Agent: "agent1", Limit: 2, Offset: 4})
	if len(p.Recordings) != 1 || p.NextOffset != 0 || p.Recordings[0].CallID != "c0" {
		t.Errorf("agent1 last page: %v next %d", ids(p), p.NextOffset)
	}
	for _, c := range []struct {
		q    Query
		want []string
	}{
		{Query{Caller: "0107"}, []string{"c7"}},
		{Query{Skill: "support", MinDuration: 50 * time.Second}, []string{"c9", "c7", "c5"}},
		{Query{From: base.Add(2 * time.Hour), To: base.Add(4 * time.Hour)}, []string{"c3", "c2"}},
	} {
		if got := ids(lib.List(c.q)); !slices.Equal(got, c.want) {
			t.Errorf("List(%+v) = %v, want %v", c.q, got, c.want)
		}
	}
	if err := lib.UpdateMeta("recent", func(m *Meta) { m.Disposition, m.Notes = "resolved", "refund sent" }); err != nil {
		t.Fatal(err)
	}
	if got := ids(lib.List(Query{Disposition: "resolved"})); !slices.Equal(got, []string{"recent"}) {
		t.Errorf("resolved: %v", got)
	}
	for _, call := range []string{"nope", "c3"} { // unknown; ended months ago
		if err := lib.UpdateMeta(call, func(*Meta) {}); !errors.Is(err, ErrNotFound) {
			t.Errorf("UpdateMeta(%s) = %v", call, err)
		}
	}
	lib2 := openLib(t, Config{Store: st})
	p = lib2.List(Query{Disposition: "resolved"})
	if got := ids(p); !slices.Equal(got, []string{"recent"}) || p.Recordings[0].Notes != "refund sent" {
		t.Errorf("after a restart, resolved: %v", got)
	}
	if err := lib2.UpdateMeta("recent", func(m *Meta) { m.Disposition = "callback" }); err != nil {
		t.Errorf("after a restart, UpdateMeta(recent) = %v", err)
	}
}

// TestUpdateWindow: a call recorded here can be updated by its call id
// while it is recorded and after, its metadata read back from the store;
// once its recording ended more than UpdateWindow ago, it cannot.
func TestUpdateWindow(t *testing.T) {
	checkGoroutines(t)
	lib := openLib(t, Config{UpdateWindow: 300 * time.Millisecond})
	start := time.Now()
	rec := lib.Start("window-1", media.ULaw, start)
	if err := lib.UpdateMeta("window-1", func(m *Meta) { m.Agent = "agent1" }); err != nil {
		t.Fatalf("while recording: %v", err)
	}
	rec.Close(start.Add(100 * time.Millisecond))
	rec.Wait()
	if err := lib.WrapUp("window-1", "agent2", "sale", "two seats", time.Now()); err != nil {
		t.Fatalf("after the call: %v", err)
	}
	m, err := lib.Get(rec.ID())
	if err != nil {
		t.Fatal(err)
	}
	if m.Agent != "agent1" || m.Disposition != "sale" || m.Notes != "two seats" || !m.Complete {
		t.Errorf("meta: %+v", m)
	}
	if got := lib.List(Query{Agent: "agent1", Disposition: "sale"}); got.Total != 1 || got.Recordings[0].ID != rec.ID() {
		t.Errorf("List(agent1, sale) = %+v", got)
	}
	time.Sleep(400 * time.Millisecond)
	next := lib.Start("window-2", media.ULaw, time.Now()) // its end forgets window-1
	next.Close(time.Now().Add(20 * time.Millisecond))
	next.Wait()
	if err := lib.UpdateMeta("window-1", func(*Meta) {}); !errors.Is(err, ErrNotFound) {
		t.Errorf("UpdateMeta past the window = %v, want ErrNotFound", err)
	}
	if err := lib.UpdateMeta("window-2", func(*Meta) {}); err != nil {
		t.Errorf("UpdateMeta(window-2) = %v", err)
	}
}

// TestIndexFootprint: the index keeps a finished recording's search
// fields, not its metadata: 2,000 recordings with a call's usual
// metadata (choices, markers, segments, notes) cost the library under
// 400 bytes each (~250 measured, most of it the map). Keeping every Meta
// in memory cost ~1,940 bytes each: what a load run left behind in ivrd's
// heap after its calls ended, and what grew with every call until
// retention deleted it.
func TestIndexFootprint(t *testing.T) {
	checkGoroutines(t)
	dir := t.TempDir()
	st, err := NewFileStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	const n = 2000
	base := time.Now().Add(-48 * time.Hour)
	for i := range n {
		at := base.Add(time.Duration(i) * time.Second)
		m := Meta{
			CallID: fmt.Sprintf("%08x-4a1c-49b2-a0c5-7d2f8e1b3c9a@10.0.0.1", i), Law: "PCMU",
			Caller:  Caller{Number: fmt.Sprintf("+1555%07d", i), Name: "Caller Name", CustomerID: fmt.Sprint(i), Tier: "gold"},
			Dialed:  "support",
			Choices: []Choice{{Node: "main", Input: "1", At: at}, {Node: "billing", Input: "2", At: at}},
			Skill:   "billing", Agent: fmt.Sprintf("agent%d", i%20), Answered: at, Queued: at, Connected: at, Ended: at.Add(time.Minute),
			DurationS: 60, WaitS: 10, TalkS: 40, Disposition: "resolved", Notes: "customer asked about an invoice",
		}
		for _, k := range []string{SegmentIVR, SegmentQueue, SegmentAgent, SegmentHold, SegmentHold + "_end"} {
			m.mark(k, "", at)
		}
		m.finish(at.Add(time.Minute), time.Minute)
		putRecording(t, st, m)
	}
	before := inUse()
	lib, err := Open(Config{Store: st, Logger: discard})
	if err != nil {
		t.Fatal(err)
	}
	perRec := float64(inUse()-before) / n
	if p := lib.List(Query{Agent: "agent7", Limit: 1}); p.Total != n/20 || p.Recordings[0].Notes == "" {
		t.Errorf("List(agent7): total %d, %+v", p.Total, p.Recordings)
	}
	if err := lib.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Logf("index: %.0f bytes a recording", perRec)
	if perRec > 400 {
		t.Errorf("the index holds %.0f bytes a recording", perRec)
	}
}

func ids(p Page) []string {
	var out []string
	for _, m := range p.Recordings {
		out = append(out, m.CallID)
	}
	return out
}

// TestSegments: markers become spans; hold lies over the agent segment.
func TestSegments(t *testing.T) {
	mk := func(kind string, at float64) Marker { return Marker{Kind: kind, OffsetS: at} }
	got := segments([]Marker{mk("ivr", 0), mk("queue", 10), mk("agent", 40), mk("hold", 50), mk("hold_end", 80), mk("queue", 90), mk("agent", 95)}, 120)
	want := []Segment{{Kind: "ivr", EndS: 10}, {Kind: "queue", StartS: 10, EndS: 40}, {Kind: "agent", StartS: 40, EndS: 90},
		{Kind: "hold", StartS: 50, EndS: 80}, {Kind: "queue", StartS: 90, EndS: 95}, {Kind: "agent", StartS: 95, EndS: 120}}
	if !slices.Equal(got, want) {
		t.Errorf("segments:\n got %+v\nwant %+v", got, want)
	}
}

// TestCallMetadata: marks and the call's facts end up in the metadata
// beside the WAV.
func TestCallMetadata(t *testing.T) {
	checkGoroutines(t)
	lib := openLib(t, Config{})
	start := time.Now()
	rec := lib.Start("meta-call", media.ULaw, start)
	rec.Mark(SegmentQueue, "billing")
	rec.Mark(SegmentAgent, "agent1")
	rec.Mark(SegmentHold, "")
	rec.Mark(SegmentHold+"_end", "")
	rec.Close(start.Add(300 * time.Millisecond))
	rec.Wait()
	m, err := lib.Get(rec.ID())
	if err != nil {
		t.Fatal(err)
	}
	if m.Skill != "billing" || m.Agent != "agent1" || m.Queued.IsZero() || m.Connected.IsZero() || len(m.Markers) != 5 || len(m.Segments) != 4 || m.Law != "PCMU" {
		t.Errorf("meta: %+v", m)
	}
	if err := lib.UpdateMeta("meta-call", func(m *Meta) { m.Disposition = "sale" }); err != nil {
		t.Fatal(err)
	}
	var nilRec *Recorder // recording disabled: nothing happens
	nilRec.Mark("queue", "")
	nilRec.FromCaller(media.AudioPacket{}, time.Now())
	nilRec.Close(time.Now())
	nilRec.Wait()
	if r := openLib(t, Config{Disabled: true}).Start("x", media.ULaw, time.Now()); r != nil {
		t.Error("a disabled library started a recorder")
	}
}

// BenchmarkRecorderWrite is the media side of recording: one packet each
// way placed into the window (the writer takes blocks out meanwhile).
func BenchmarkRecorderWrite(b *testing.B) {
	lib, err := Open(Config{Dir: b.TempDir(), Logger: discard})
	if err != nil {
		b.Fatal(err)
	}
	rec := lib.Start("bench", media.ULaw, time.Now())
	p := media.AudioPacket{SSRC: 1, Payload: toneFrame(media.ULaw, 440, 0)}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		now := time.Now()
		p.Sequence++
		p.Timestamp += media.FrameSamples
		rec.FromCaller(p, now)
		rec.ToCaller(p, now)
	}
	b.StopTimer()
	rec.Close(time.Now())
	rec.Wait()
	_ = lib.Close(b.Context())
}

// TestTapDoesNotAllocate: the recorder's tap methods allocate nothing.
func TestTapDoesNotAllocate(t *testing.T) {
	lib := openLib(t, Config{})
	rec := lib.Start("allocs", media.ULaw, time.Now())
	defer func() { rec.Close(time.Now()); rec.Wait() }()
	p := media.AudioPacket{SSRC: 1, Payload: toneFrame(media.ULaw, 440, 0)}
	if n := testing.AllocsPerRun(500, func() {
		p.Timestamp += media.FrameSamples
		rec.FromCaller(p, time.Now())
		rec.ToCaller(p, time.Now())
	}); n != 0 {
		t.Errorf("%v allocations per packet", n)
	}
}
