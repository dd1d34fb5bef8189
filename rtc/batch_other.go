//go:build !linux

package rtc

import (
	"net"
	"net/netip"
	"time"

	"ivrd/media"
)

// batchReader reads one datagram at a time off Linux (recvmmsg is
// Linux's).
type batchReader struct {
	conn *net.UDPConn
	buf  [1500]byte
	oob  [media.StampOOB]byte
	n    int
	oobn int
	from netip.AddrPort
}

func newBatchReader(conn *net.UDPConn, _ int) (*batchReader, error) {
	return &batchReader{conn: conn}, nil
}

func (r *batchReader) read() (int, error) {
	n, oobn, _, from, err := r.conn.ReadMsgUDPAddrPort(r.buf[:], r.oob[:])
	if err != nil {
		return 0, err
	}
	r.n, r.oobn, r.from = n, oobn, netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	return 1, nil
}

func (r *batchReader) packet(int) ([]byte, netip.AddrPort, time.Time) {
	rx, _ := media.RxStamp(r.oob[:r.oobn])
	return r.buf[:r.n], r.from, rx
}
