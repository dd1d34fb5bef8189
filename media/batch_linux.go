//go:build linux

package media

import (
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
