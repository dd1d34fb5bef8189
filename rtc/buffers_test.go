package rtc

import (
	"errors"
	"io"
	"testing"
	"time"

	"github.com/pion/transport/v5/packetio"
)

// TestStreamBuffers: RTCP is taken and dropped (a reader waits for Close
// and gets EOF); RTP is kept for the reader, in order, up to
// agentRTPBuffer, beyond which packets are refused rather than queued.
func TestStreamBuffers(t *testing.T) {
	rtcp := newStreamBuffer(packetio.RTCPBufferPacket, 1)
	for range 1000 {
		if n, err := rtcp.Write(make([]byte, 100)); n != 100 || err != nil {
			t.Fatalf("RTCP write: %d, %v", n, err)
		}
	}
	read := make(chan error, 1)
	go func() {
		_, err := rtcp.Read(make([]byte, 1500))
		read <- err
	}()
	select {
	case err := <-read:
		t.Fatalf("an RTCP read returned before Close (%v): reports were kept", err)
	case <-time.After(50 * time.Millisecond):
	}
	if err := rtcp.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-read; !errors.Is(err, io.EOF) {
		t.Fatalf("RTCP read after Close: %v", err)
	}

	rtp := newStreamBuffer(packetio.RTPBufferPacket, 2)
	defer rtp.Close()
	pkt := make([]byte, 172) // a 20 ms G.711 packet
	kept := 0
	for i := range 1000 {
		pkt[0] = byte(i)
		if _, err := rtp.Write(pkt); err != nil {
			if !errors.Is(err, packetio.ErrFull) {
				t.Fatalf("RTP write %d: %v", i, err)
			}
			break
		}
		kept++
	}
	if kept*len(pkt) > agentRTPBuffer || kept*len(pkt) < agentRTPBuffer/2 {
		t.Errorf("kept %d packets (%d bytes), want about %d bytes", kept, kept*len(pkt), agentRTPBuffer)
	}
	buf := make([]byte, 1500)
	for i := range 3 {
		n, err := rtp.Read(buf)
		if err != nil || n != len(pkt) || buf[0] != byte(i) {
			t.Fatalf("RTP read %d: %d bytes, first %d, %v", i, n, buf[0], err)
		}
	}
}
