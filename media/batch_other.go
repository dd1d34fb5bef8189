//go:build !linux

package media

import (
	"net"
	"net/netip"
	"time"
)

// BatchReader reads one datagram at a time off Linux (recvmmsg is
// Linux's).
type BatchReader struct {
	conn *net.UDPConn
	buf  [1500]byte
	oob  [StampOOB]byte
	n    int
	oobn int
	from netip.AddrPort
}

func NewBatchReader(conn *net.UDPConn, _ int) (*BatchReader, error) {
	return &BatchReader{conn: conn}, nil
}

func (r *BatchReader) Read() (int, error) {
	n, oobn, _, from, err := r.conn.ReadMsgUDPAddrPort(r.buf[:], r.oob[:])
	if err != nil {
		return 0, err
	}
	r.n, r.oobn, r.from = n, oobn, netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	return 1, nil
}

func (r *BatchReader) Packet(int) ([]byte, netip.AddrPort, time.Time) {
	rx, _ := RxStamp(r.oob[:r.oobn])
	return r.buf[:r.n], r.from, rx
}

// BatchWriter sends one datagram at a time off Linux (sendmmsg is
// Linux's).
type BatchWriter struct {
	conn *net.UDPConn
	buf  [1500]byte
}

func NewBatchWriter(conn *net.UDPConn, _ int) (*BatchWriter, error) {
	return &BatchWriter{conn: conn}, nil
}

func (w *BatchWriter) Buffer() []byte { return w.buf[:] }

func (w *BatchWriter) Queue(n int, to netip.AddrPort) error {
	_, err := w.conn.WriteToUDPAddrPort(w.buf[:n], to)
	return err
}

func (w *BatchWriter) Flush() error { return nil }
