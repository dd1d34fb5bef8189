package media

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Benchmarks of the per-packet paths (each should report 0 allocs/op)
// and, for scale, of loading a prompt. Run with
//
//	go test -run '^$' -bench . -benchmem ./media/

func benchPCM() []int16 {
	x := sine(440, SampleRate, FrameSamples, 0.3)
	pcm := make([]int16, len(x))
	for i, v := range x {
		pcm[i] = int16(v * 32767)
	}
	return pcm
}

func benchmarkEncode(b *testing.B, l Law) {
	pcm := benchPCM()
	dst := make([]byte, FrameSamples)
	b.SetBytes(FrameSamples)
	b.ReportAllocs()
	for b.Loop() {
		EncodeFrame(l, dst, pcm)
	}
}

func BenchmarkEncodeFrameULaw(b *testing.B) { benchmarkEncode(b, ULaw) }
func BenchmarkEncodeFrameALaw(b *testing.B) { benchmarkEncode(b, ALaw) }

func BenchmarkDecodeFrame(b *testing.B) {
	for _, l := range []Law{ULaw, ALaw} {
		b.Run(l.String(), func(b *testing.B) {
			payload := make([]byte, FrameSamples)
			EncodeFrame(l, payload, benchPCM())
			dst := make([]int16, FrameSamples)
			b.SetBytes(FrameSamples)
			b.ReportAllocs()
			for b.Loop() {
				DecodeFrame(l, dst, payload)
			}
		})
	}
}

func BenchmarkTranscode(b *testing.B) {
	for _, c := range []struct{ from, to Law }{{ULaw, ALaw}, {ALaw, ULaw}} {
		b.Run(c.from.String()+"-"+c.to.String(), func(b *testing.B) {
			src := make([]byte, FrameSamples)
			EncodeFrame(c.from, src, benchPCM())
			dst := make([]byte, FrameSamples)
			b.SetBytes(FrameSamples)
			b.ReportAllocs()
			for b.Loop() {
				Transcode(c.from, c.to, dst, src)
			}
		})
	}
}

// BenchmarkEventDetectorFeed: one telephone-event packet, cycling through
// presses of start, updates and end retransmissions.
func BenchmarkEventDetectorFeed(b *testing.B) {
	var packets []pkt
	ts := uint32(1000)
	for _, k := range []byte("0123456789*#") {
		packets = append(packets, press(ts, k, 100*time.Millisecond)...)
		ts += 2000
	}
	payloads := make([][]byte, len(packets))
	for i, p := range packets {
		payloads[i] = p.payload()
	}
	var d EventDetector
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		d.Feed(packets[i].ts, payloads[i])
		i++
		if i == len(packets) {
			i = 0
			d = EventDetector{}
		}
	}
}

// BenchmarkToneDetectorFeed: one 20 ms frame.
func BenchmarkToneDetectorFeed(b *testing.B) {
	frames := map[string][]int16{
		"tone":    GenerateDTMF('5', 20*time.Millisecond, 0.2),
		"silence": make([]int16, FrameSamples),
		"440Hz":   benchPCM(),
	}
	for _, name := range []string{"tone", "silence", "440Hz"} {
		frame := frames[name]
		b.Run(name, func(b *testing.B) {
			d := NewToneDetector()
			b.ReportAllocs()
			for b.Loop() {
				d.Feed(frame)
			}
		})
	}
}

func BenchmarkParseRTP(b *testing.B) {
	st := &stream{ssrc: 1, seq: 2, ts: 3}
	pkt := st.audio(ULaw, benchPCM())[0]
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := parseRTP(pkt); !ok {
			b.Fatal("rejected")
		}
	}
}

// BenchmarkReceivePacket: receiver.packet on one packet from the latched
// caller: audio through the in-band detector, audio with telephone-event
// negotiated (no detector), and a telephone-event packet.
func BenchmarkReceivePacket(b *testing.B) {
	from := &net.UDPAddr{IP: loopback, Port: 40000}
	st := &stream{ssrc: 1, seq: 2, ts: 3}
	audio := st.audio(ULaw, benchPCM())[0]
	event := st.press('1', 100*time.Millisecond, true)[2]
	for _, c := range []struct {
		name string
		cfg  SessionConfig
		pkt  []byte
	}{
		{"inband", SessionConfig{Law: ULaw}, audio},
		{"dtmf-negotiated", SessionConfig{Law: ULaw, DTMFType: testEventPT}, audio},
		{"event", SessionConfig{Law: ULaw, DTMFType: testEventPT}, event},
	} {
		b.Run(c.name, func(b *testing.B) {
			r, _ := newReceiver(b, c.cfg)
			now := time.Unix(1000, 0)
			pkt := append([]byte(nil), c.pkt...)
			seq := binary.BigEndian.Uint16(pkt[2:4])
			r.packet(pkt, from, now, time.Time{}) // latch
			b.SetBytes(int64(len(pkt)))
			b.ReportAllocs()
			for b.Loop() {
				// Each packet the next in sequence, as a caller sends them
				// (the same one again would take the duplicate path).
				seq++
				binary.BigEndian.PutUint16(pkt[2:4], seq)
				now = now.Add(FrameDuration)
				r.packet(pkt, from, now, time.Time{})
			}
		})
	}
}

// BenchmarkSessionReceiveUDP: a packet through a real socket and the
// session's receive path (read, parse, latch check, count).
func BenchmarkSessionReceiveUDP(b *testing.B) {
	pool := newTestPool(b, 1)
	s, err := NewSession(SessionConfig{Ports: pool, LocalIP: loopback, Logger: discard, Law: ULaw, DTMFType: testEventPT})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	s.Start()
	// A bare socket as the caller: it never reads, so it allocates nothing.
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: loopback})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	to := sessionAddr(s)
	st := &stream{ssrc: 1, seq: 2, ts: 3}
	pkt := st.audio(ULaw, benchPCM())[0]
	wait := func(n uint64) {
		for s.Stats().PacketsIn < n {
			runtime.Gosched()
		}
	}
	if _, err := conn.WriteToUDP(pkt, to); err != nil {
		b.Fatal(err)
	}
	wait(1)
	sent := uint64(1)
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := conn.WriteToUDP(pkt, to); err != nil {
			b.Fatal(err)
		}
		sent++
		if sent%32 == 0 {
			wait(sent) // do not overrun the socket buffer
		}
	}
	wait(sent)
}

func BenchmarkPlaybackNext(b *testing.B) {
	prompts := []*Prompt{tonePrompt("a", 440, 50), tonePrompt("b", 1000, 25)}
	pb := &playback{prompts: prompts}
	b.ReportAllocs()
	for b.Loop() {
		if pb.next(ULaw) == nil {
			pb.p, pb.f = 0, 0
		}
	}
}

// BenchmarkDecodeWAV: loading a 5 s prompt at start, for scale (not a
// per-packet path).
func BenchmarkDecodeWAV(b *testing.B) {
	data, err := os.ReadFile("testdata/music_hold.wav")
	if err != nil {
		b.Fatal(err)
	}
	wav44 := makeWAV(wavSpec{format: 1, channels: 2, rate: 44100, bits: 16, data: pcm16(sine(1000, 44100, 2*44100, 0.3))})
	for _, c := range []struct {
		name string
		data []byte
	}{{"8kHz-mono-6s", data}, {"44.1kHz-stereo-1s", wav44}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := DecodeWAV(c.data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRelayWrite: one relayed packet toward the caller (stamp, build,
// send on the session's socket to a caller that never reads).
func BenchmarkRelayWrite(b *testing.B) {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: loopback})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	pool := newTestPool(b, 1)
	s, err := NewSession(SessionConfig{Ports: pool, LocalIP: loopback, Logger: discard, Law: ULaw, Remote: conn.LocalAddr().(*net.UDPAddr)})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	r := s.StartRelay()
	pkt := AudioPacket{SSRC: 5, Payload: make([]byte, FrameSamples)}
	b.SetBytes(FrameSamples)
	b.ReportAllocs()
	for b.Loop() {
		pkt.Timestamp += FrameSamples
		if err := r.Write(pkt); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSessionsPaced: the cost of pacing many calls at once. n started
// sessions send silence every 20 ms to a UDP sink that never reads (the
// kernel drops what overflows it). One op is one 20 ms frame period, so
// allocs/op is what the whole process allocated per n frames sent;
// cpu-ns/pkt is the process's CPU time (user + system, getrusage) per
// packet sent, syscalls included; pkt/s/call should read 50.
func BenchmarkSessionsPaced(b *testing.B) {
	for _, n := range []int{500, 2000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			sink, err := net.ListenUDP("udp", &net.UDPAddr{IP: loopback})
			if err != nil {
				b.Fatal(err)
			}
			defer sink.Close()
			sessions := startSessions(b, benchPool(b), n, SessionConfig{Law: ULaw, Remote: sink.LocalAddr().(*net.UDPAddr)}, nil)
			sent := func() uint64 { return countPackets(sessions, func(st SessionStats) uint64 { return st.PacketsOut }) }
			time.Sleep(200 * time.Millisecond) // every session has started sending
			cpuPerPacket(b, n, sent)
		})
	}
}

// benchPool is a pool for many sessions: it skips busy ports and stays
// below the ephemeral range.
func benchPool(b *testing.B) *PortPool {
	pool, err := NewPortPool(10000, 32000)
	if err != nil {
		b.Fatal(err)
	}
	return pool
}

// cpuPerPacket runs b's loop, an op a 20 ms period, and reports the
// process's CPU time per packet that count counts over the loop, and the
// packets a second a call.
func cpuPerPacket(b *testing.B, calls int, count func() uint64) {
	c0, cpu0, t0 := count(), cpuTime(b), time.Now()
	b.ReportAllocs()
	for b.Loop() {
		time.Sleep(FrameDuration)
	}
	packets, cpu, wall := float64(count()-c0), cpuTime(b)-cpu0, time.Since(t0)
	b.ReportMetric(float64(cpu.Nanoseconds())/packets, "cpu-ns/pkt")
	b.ReportMetric(packets/wall.Seconds()/float64(calls), "pkt/s/call")
}

// BenchmarkPacerFrame: the pacer's work for one frame of one call among
// 500 — the frame chosen, stamped and sent to a sink that never reads,
// the call served from its slot of the wheel — without the sleeping
// between. One op serves one slot of 25 calls (500 over 20 slots) and is
// reported per frame.
func BenchmarkPacerFrame(b *testing.B) {
	sink, err := net.ListenUDP("udp", &net.UDPAddr{IP: loopback})
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	pool := benchPool(b)
	sh := &shard{epoch: time.Now()}
	for i := range 500 {
		s, err := NewSession(SessionConfig{Ports: pool, LocalIP: loopback, Logger: discard, Law: ULaw, Remote: sink.LocalAddr().(*net.UDPAddr)})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		epoch := sh.epoch.Add(time.Duration(i) * FrameDuration / 500)
		s.pace = pace{epoch: epoch, n: 1, deadline: epoch.Add(FrameDuration)}
		sh.incoming = append(sh.incoming, s)
	}
	sh.admit()
	b.ReportAllocs()
	tick := slots // the first deadlines are a turn of the wheel away
	var frames int
	for b.Loop() {
		i := tick % slots
		frames += len(sh.wheel[i])
		sh.serve(i, sh.epoch.Add(time.Duration(tick)*slot))
		tick++
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(frames), "ns/frame")
}

// cpuTime is the CPU time the process has used, user and system.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkSessionsReceive: n started sessions each receive 50 packets a
// second, as n callers would send them, from another process (the test
// binary run again as TestRTPSenderProcess), so that the figure — this
// process's CPU time (getrusage, user + system) per packet received — is
// the receive path alone: wake-ups, recvmsg, parsing, counting. The
// sessions send nothing back (SetSending(false)); their pacer bookkeeping
// is in the figure too, 50 frames a second each. One op is a 20 ms period.
//
//	go test -run '^$' -bench SessionsReceive -benchtime 3s ./media/
func BenchmarkSessionsReceive(b *testing.B) {
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range []int{500, 2000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			sessions := startSessions(b, benchPool(b), n, SessionConfig{Law: ULaw, DTMFType: testEventPT},
				func(s *Session) { s.SetSending(false) })
			var ports strings.Builder
			for _, s := range sessions {
				fmt.Fprintln(&ports, s.LocalPort())
			}
			sender := exec.Command(exe, "-test.run=^TestRTPSenderProcess$")
			sender.Env = append(os.Environ(), "IVRD_RTP_SENDER=1")
			sender.Stdin = strings.NewReader(ports.String())
			sender.Stderr = os.Stderr
			if err := sender.Start(); err != nil {
				b.Fatal(err)
			}
			defer func() { _ = sender.Process.Kill(); _ = sender.Wait() }()
			received := func() uint64 { return countPackets(sessions, func(st SessionStats) uint64 { return st.PacketsIn }) }
			deadline := time.Now().Add(10 * time.Second)
			for received() < uint64(2*n) { // every session hears the sender
				if time.Now().After(deadline) {
					b.Fatalf("the sender's packets do not arrive: %d", received())
				}
				time.Sleep(10 * time.Millisecond)
			}
			cpuPerPacket(b, n, received)
		})
	}
}

// TestRTPSenderProcess is BenchmarkSessionsReceive's sender, not a test:
// run with IVRD_RTP_SENDER set and the ports to send to on its standard
// input, one a line, it sends each port a 20 ms µ-law packet every 20 ms
// (each on its own phase) from one socket until it is killed.
func TestRTPSenderProcess(t *testing.T) {
	if os.Getenv("IVRD_RTP_SENDER") == "" {
		t.Skip("BenchmarkSessionsReceive's sender")
	}
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		t.Fatal(err)
	}
	var dests []*net.UDPAddr
	for _, f := range strings.Fields(string(in)) {
		port, err := strconv.Atoi(f)
		if err != nil {
			t.Fatal(err)
		}
		dests = append(dests, &net.UDPAddr{IP: loopback, Port: port})
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: loopback})
	if err != nil {
		t.Fatal(err)
	}
	pkt := make([]byte, 12+FrameSamples)
	pkt[0], pkt[1] = 0x80, 0
	const slots = 20 // 1 ms each: destination i is due in slot i%slots
	start := time.Now()
	for tick := 0; ; tick++ {
		time.Sleep(time.Until(start.Add(time.Duration(tick) * time.Millisecond)))
		frame := tick / slots
		binary.BigEndian.PutUint16(pkt[2:4], uint16(frame))
		binary.BigEndian.PutUint32(pkt[4:8], uint32(frame*FrameSamples))
		for i := tick % slots; i < len(dests); i += slots {
			binary.BigEndian.PutUint32(pkt[8:12], uint32(i+1))
			_, _ = conn.WriteToUDP(pkt, dests[i])
		}
	}
}
