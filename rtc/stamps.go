package rtc

import (
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"ivrd/media"
)

// stampedConn is the ICE mux's socket, read with the kernel's receive
// stamps (media.EnableRxStamps). For every SSRC a Peer watches it keeps the
// sequence number and stamp of the last SRTP packet that came in; the Peer
// that reads the decrypted packet looks its stamp up, so the agent→caller
// relay latency counts the time the packet spent in pion (ICE, DTLS, SRTP,
// buffers) as well as ours. The SSRC and sequence number of SRTP are sent
// in the clear (RFC 3711 §3.1), so no decryption is needed here.
type stampedConn struct {
	*net.UDPConn
	oob   [media.StampOOB]byte // the mux's one reader goroutine owns it
	base  time.Time
	watch sync.Map // uint32 SSRC → *lastStamp
}

// lastStamp packs the sequence number (top 16 bits) and the stamp in
// microseconds after base (the other 48: nine years).
type lastStamp struct{ v atomic.Uint64 }

func newStampedConn(c *net.UDPConn) *stampedConn {
	if err := media.EnableRxStamps(c); err != nil {
		return nil
	}
	return &stampedConn{UDPConn: c, base: time.Now()}
}

// ReadFromAddrPort is what pion's mux reads with (ice.AddrPortReaderWriter).
func (c *stampedConn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	n, oobn, _, ap, err := c.ReadMsgUDPAddrPort(b, c.oob[:])
	if err != nil || n < 12 || b[0]>>6 != 2 || (b[1] >= 192 && b[1] <= 223) {
		return n, ap, err // not RTP: STUN, DTLS, RTCP (RFC 5761 §4)
	}
	ssrc := uint32(b[8])<<24 | uint32(b[9])<<16 | uint32(b[10])<<8 | uint32(b[11])
	if v, ok := c.watch.Load(ssrc); ok {
		if rx, ok := media.RxStamp(c.oob[:oobn]); ok {
			seq := uint64(b[2])<<8 | uint64(b[3])
			us := uint64(rx.Sub(c.base)/time.Microsecond) & (1<<48 - 1)
			v.(*lastStamp).v.Store(seq<<48 | us)
		}
	}
	return n, ap, nil
}

// WriteToAddrPort completes ice.AddrPortReaderWriter.
func (c *stampedConn) WriteToAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	return c.WriteToUDPAddrPort(b, addr)
}

// watchSSRC starts keeping stamps for ssrc; the returned func stops it.
func (c *stampedConn) watchSSRC(ssrc uint32) (*lastStamp, func()) {
	st := &lastStamp{}
	c.watch.Store(ssrc, st)
	return st, func() { c.watch.CompareAndDelete(ssrc, st) }
}

// received is the stamp of packet seq if it was the last one seen, else
// zero (a packet read after a newer one came in is not counted).
func (c *stampedConn) received(st *lastStamp, seq uint16) time.Time {
	v := st.v.Load()
	if v == 0 || uint16(v>>48) != seq {
		return time.Time{}
	}
	return c.base.Add(time.Duration(v&(1<<48-1)) * time.Microsecond)
}
