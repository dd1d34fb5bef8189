//go:build linux

package media

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// BatchReader reads a socket's datagrams up to a batch at a time with one
// recvmmsg: on a port many peers send to (the agents' shared WebRTC port,
// a load generator's RTP socket), one system call (and one wake-up) takes
// what came in meanwhile instead of one each. Nothing is allocated per
// packet. One goroutine reads with it.
type BatchReader struct {
	rc    syscall.RawConn
	msgs  []unix.Mmsghdr
	iovs  []unix.Iovec
	bufs  [][1500]byte
	oobs  [][StampOOB]byte
	names []unix.RawSockaddrAny

	recv  func(fd uintptr) bool // made once: a closure per read would allocate
	n     int
	errno syscall.Errno
}

func NewBatchReader(conn *net.UDPConn, size int) (*BatchReader, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	r := &BatchReader{
		rc:    rc,
		msgs:  make([]unix.Mmsghdr, size),
		iovs:  make([]unix.Iovec, size),
		bufs:  make([][1500]byte, size),
		oobs:  make([][StampOOB]byte, size),
		names: make([]unix.RawSockaddrAny, size),
	}
	r.recv = func(fd uintptr) bool {
		r1, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.msgs[0])), uintptr(len(r.msgs)), unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EAGAIN || e == unix.EINTR {
			return false // wait until the socket reads as ready
		}
		r.n, r.errno = int(r1), e
		return true
	}
	return r, nil
}

// Read waits for at least one datagram and returns how many it read.
func (r *BatchReader) Read() (int, error) {
	for i := range r.msgs {
		r.iovs[i].Base = &r.bufs[i][0]
		r.iovs[i].SetLen(len(r.bufs[i]))
		h := &r.msgs[i].Hdr
		*h = unix.Msghdr{
			Name:    (*byte)(unsafe.Pointer(&r.names[i])),
			Namelen: uint32(unsafe.Sizeof(r.names[i])),
			Iov:     &r.iovs[i],
			Control: &r.oobs[i][0],
		}
		h.SetIovlen(1)
		h.SetControllen(len(r.oobs[i]))
		r.msgs[i].Len = 0
	}
	if err := r.rc.Read(r.recv); err != nil {
		return 0, err // closed
	}
	if r.errno != 0 {
		return 0, r.errno // an ICMP error queued on the socket, say
	}
	return r.n, nil
}

// Packet is datagram i of the last Read: its bytes, its sender (IPv4
// unmapped) and the kernel's receive stamp (zero without one).
func (r *BatchReader) Packet(i int) ([]byte, netip.AddrPort, time.Time) {
	m := &r.msgs[i]
	var from netip.AddrPort
	switch r.names[i].Addr.Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&r.names[i]))
		from = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), ntohs(sa.Port))
	case unix.AF_INET6:
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(&r.names[i]))
		from = netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), ntohs(sa.Port))
	}
	var rx time.Time
	if m.Hdr.Flags&unix.MSG_CTRUNC == 0 {
		rx, _ = RxStamp(r.oobs[i][:m.Hdr.Controllen])
	}
	return r.bufs[i][:m.Len], from, rx
}

// ntohs reads a port kept in network byte order.
func ntohs(p uint16) uint16 {
	b := (*[2]byte)(unsafe.Pointer(&p))
	return uint16(b[0])<<8 | uint16(b[1])
}

// BatchWriter sends datagrams from one socket up to a batch at a time with
// one sendmmsg: a sender with many packets due at once (a load
// generator's callers on one socket) pays one system call for them
// instead of one each. Nothing is allocated per packet. One goroutine
// writes with it.
type BatchWriter struct {
	rc    syscall.RawConn
	v6    bool // the socket is AF_INET6: IPv4 destinations go IPv4-mapped
	msgs  []unix.Mmsghdr
	iovs  []unix.Iovec
	bufs  [][1500]byte
	name4 []unix.RawSockaddrInet4
	name6 []unix.RawSockaddrInet6
	n     int // datagrams queued

	off   int // the first queued datagram not yet sent
	send  func(fd uintptr) bool
	errno syscall.Errno
}

// NewBatchWriter writes to conn up to size datagrams a system call.
func NewBatchWriter(conn *net.UDPConn, size int) (*BatchWriter, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	var family int
	if cerr := rc.Control(func(fd uintptr) {
		family, err = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
	}); cerr != nil {
		return nil, cerr
	}
	if err != nil {
		return nil, fmt.Errorf("socket family: %w", err)
	}
	w := &BatchWriter{
		rc:    rc,
		v6:    family == unix.AF_INET6,
		msgs:  make([]unix.Mmsghdr, size),
		iovs:  make([]unix.Iovec, size),
		bufs:  make([][1500]byte, size),
		name4: make([]unix.RawSockaddrInet4, size),
		name6: make([]unix.RawSockaddrInet6, size),
	}
	// Each message keeps its buffer and address slot; Queue sets only
	// the length and the destination.
	for i := range w.msgs {
		w.iovs[i].Base = &w.bufs[i][0]
		h := &w.msgs[i].Hdr
		h.Iov = &w.iovs[i]
		h.SetIovlen(1)
		if w.v6 {
			h.Name, h.Namelen = (*byte)(unsafe.Pointer(&w.name6[i])), unix.SizeofSockaddrInet6
		} else {
			h.Name, h.Namelen = (*byte)(unsafe.Pointer(&w.name4[i])), unix.SizeofSockaddrInet4
		}
	}
	w.send = func(fd uintptr) bool {
		for w.off < w.n {
			r1, _, e := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&w.msgs[w.off])), uintptr(w.n-w.off), unix.MSG_DONTWAIT, 0, 0)
			switch {
			case e == unix.EAGAIN:
				return false // wait until the socket can take more
			case e == unix.EINTR:
				continue
			case e != 0:
				// The first datagram of the rest failed (an ICMP error
				// queued, say): leave it out and go on with the others.
				w.errno = e
				w.off++
				continue
			}
			w.off += int(r1)
		}
		return true
	}
	return w, nil
}

// Buffer is room for the next datagram; Queue takes it.
func (w *BatchWriter) Buffer() []byte { return w.bufs[w.n][:] }

// Queue takes the first n bytes of Buffer as a datagram to to; a full
// batch is sent at once.
func (w *BatchWriter) Queue(n int, to netip.AddrPort) error {
	ip, port := to.Addr(), htons(to.Port())
	switch {
	case w.v6:
		w.name6[w.n] = unix.RawSockaddrInet6{Family: unix.AF_INET6, Port: port, Addr: ip.As16()} // IPv4 goes mapped
	case ip.Is4():
		w.name4[w.n] = unix.RawSockaddrInet4{Family: unix.AF_INET, Port: port, Addr: ip.As4()}
	default:
		return fmt.Errorf("send to %v from an IPv4 socket", to)
	}
	w.iovs[w.n].SetLen(n)
	w.n++
	if w.n == len(w.msgs) {
		return w.Flush()
	}
	return nil
}

// Flush sends what is queued, waiting while the socket's buffer is full.
// A datagram the system refused is left out; the error says why.
func (w *BatchWriter) Flush() error {
	if w.n == 0 {
		return nil
	}
	w.off, w.errno = 0, 0
	err := w.rc.Write(w.send)
	w.n = 0
	if err != nil {
		return err // closed
	}
	if w.errno != 0 {
		return w.errno
	}
	return nil
}

// htons puts a port in network byte order.
func htons(p uint16) uint16 { return ntohs(p) }
