package rtc

import (
	"io"
	"sync"

	"github.com/pion/transport/v5/packetio"
)

// agentRTPBuffer bounds the agent's audio pion holds for our reader: 64 KB
// is ~7 s of G.711 packets. pion's own default (1 MB, two minutes of
// audio) would only deliver audio long stale to a reader that fell that
// far behind.
const agentRTPBuffer = 64 << 10

// newStreamBuffer is pion's SettingEngine.BufferFactory: where the SRTP
// and SRTCP sessions put each decrypted packet until it is read. RTP goes
// to a bounded packet buffer that the agent's reader drains. RTCP (the
// browser's reports) is dropped as it arrives: nothing of ours uses it,
// and without this pion would keep every report until read, so each
// PeerConnection needed two goroutines reading and discarding them.
func newStreamBuffer(kind packetio.BufferPacketType, _ uint32) io.ReadWriteCloser {
	if kind == packetio.RTCPBufferPacket {
		return &discard{closed: make(chan struct{})}
	}
	b := packetio.NewBuffer()
	b.SetLimitSize(agentRTPBuffer)
	return &packetBuffer{b}
}

// packetBuffer is a packetio.Buffer as the stream's io.ReadWriteCloser,
// attributes passed through where pion has them.
type packetBuffer struct{ *packetio.Buffer }

func (b *packetBuffer) Read(p []byte) (int, error) {
	n, _, err := b.Buffer.Read(p, nil)
	return n, err
}

func (b *packetBuffer) Write(p []byte) (int, error) { return b.Buffer.Write(p, nil) }

func (b *packetBuffer) ReadWithAttributes(p []byte, a packetio.Attributes) (int, packetio.Attributes, error) {
	return b.Buffer.Read(p, a)
}

func (b *packetBuffer) WriteWithAttributes(p []byte, a packetio.Attributes) (int, error) {
	return b.Buffer.Write(p, a)
}

// discard takes packets and keeps none; a read waits for Close.
type discard struct {
	once   sync.Once
	closed chan struct{}
}

func (d *discard) Write(p []byte) (int, error) { return len(p), nil }

func (d *discard) Read([]byte) (int, error) {
	<-d.closed
	return 0, io.EOF
}

func (d *discard) Close() error {
	d.once.Do(func() { close(d.closed) })
	return nil
}
