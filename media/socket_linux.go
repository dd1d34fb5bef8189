//go:build linux

package media

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// On Linux a session's RTP socket is a plain non-blocking descriptor read
// by the process's receive pollers instead of a goroutine per call.
//
// A goroutine blocked in a read per call costs, for every packet, a wake-up
// through the runtime's poller, a switch to that goroutine, the read, and a
// second read that finds nothing and parks it again — and a goroutine stack
// per call. Here the sockets are spread over one poller per CPU, each an
// epoll set of its own (level-triggered) served by one goroutine: Go's
// runtime watches the epoll set's descriptor, so the goroutine sleeps until
// some socket of its set has a packet, then reads one packet from every
// ready socket and handles it on the spot, and asks again. One wake-up
// serves every packet that arrived meanwhile, and a packet costs one
// recvmsg. The sockets stay one per call, as SIP peers expect (symmetric
// RTP: the stream leaves from the port the SDP named).
//
// Sending goes straight to the descriptor: a frame the socket's buffer
// cannot take is refused (EAGAIN) rather than waited for, as a paced
// stream must never stall on one call.

// socket is a session's UDP socket.
type socket struct {
	fd     int
	family int // unix.AF_INET, or unix.AF_INET6 (dual-stack when bound to no address)

	// The receive side. The poller holds mu while it reads and handles a
	// packet; close takes it to know none is being handled.
	mu      sync.Mutex
	s       *Session
	shard   *rxShard
	token   uint64 // the socket's key in its shard (epoll data)
	stopped bool

	// The send side, used by whoever holds the session's out lock: the
	// destination of the last packet in the kernel's form, rebuilt when
	// the session's remote address changes (a new *net.UDPAddr).
	to  *net.UDPAddr
	sa4 unix.SockaddrInet4
	sa6 unix.SockaddrInet6
}

// openSocket binds a socket on ip at a free port of pool.
func openSocket(pool *PortPool, ip net.IP) (*socket, int, error) {
	var so *socket
	port, err := pool.take(func(port int) error {
		var err error
		so, err = bindUDP(ip, port)
		return err
	})
	if err != nil {
		return nil, 0, err
	}
	return so, port, nil
}

// bindUDP makes a non-blocking UDP socket bound to ip:port. Bound to no
// address (nil or unspecified) it is dual-stack where the host has IPv6,
// as net.ListenUDP("udp", …) would be.
func bindUDP(ip net.IP, port int) (*socket, error) {
	wildcard := ip == nil || ip.IsUnspecified()
	family := unix.AF_INET6
	if ip4 := ip.To4(); ip4 != nil && !wildcard {
		family = unix.AF_INET
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil && wildcard && family == unix.AF_INET6 {
		family = unix.AF_INET // a host without IPv6
		fd, err = unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	}
	if err != nil {
		return nil, fmt.Errorf("RTP socket: %w", err)
	}
	var sa unix.Sockaddr
	if family == unix.AF_INET {
		sa4 := &unix.SockaddrInet4{Port: port}
		if !wildcard {
			copy(sa4.Addr[:], ip.To4())
		}
		sa = sa4
	} else {
		if wildcard {
			err = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0)
		}
		sa6 := &unix.SockaddrInet6{Port: port}
		if !wildcard {
			copy(sa6.Addr[:], ip.To16())
		}
		sa = sa6
	}
	if err == nil {
		err = unix.Bind(fd, sa)
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("RTP socket %s: %w", net.JoinHostPort(ip.String(), fmt.Sprint(port)), err)
	}
	return &socket{fd: fd, family: family}, nil
}

func (so *socket) enableStamps() error { return enableRxStampsFD(so.fd) }

// writeTo sends one datagram to to; the caller holds the session's out
// lock.
func (so *socket) writeTo(b []byte, to *net.UDPAddr) error {
	if to != so.to {
		if err := so.setDest(to); err != nil {
			return err
		}
	}
	if so.family == unix.AF_INET {
		return unix.Sendto(so.fd, b, 0, &so.sa4)
	}
	return unix.Sendto(so.fd, b, 0, &so.sa6)
}

func (so *socket) setDest(to *net.UDPAddr) error {
	if so.family == unix.AF_INET {
		ip4 := to.IP.To4()
		if ip4 == nil {
			return fmt.Errorf("send to %s from an IPv4 socket", to)
		}
		so.sa4 = unix.SockaddrInet4{Port: to.Port}
		copy(so.sa4.Addr[:], ip4)
	} else {
		ip16 := to.IP.To16() // an IPv4 address becomes IPv4-mapped
		if ip16 == nil {
			return fmt.Errorf("send to %s: not an IP address", to)
		}
		so.sa6 = unix.SockaddrInet6{Port: to.Port}
		copy(so.sa6.Addr[:], ip16)
		if to.Zone != "" {
			if ifi, err := net.InterfaceByName(to.Zone); err == nil {
				so.sa6.ZoneId = uint32(ifi.Index)
			}
		}
	}
	so.to = to
	return nil
}

// startReceive hands the socket to a poller, which from now on passes
// every datagram to s's receiver. A socket closed already stays closed.
func (so *socket) startReceive(s *Session) error {
	so.mu.Lock()
	defer so.mu.Unlock()
	if so.stopped {
		return nil
	}
	so.s = s
	pollers := rxPollers()
	return pollers.shards[pollers.next.Add(1)%uint32(len(pollers.shards))].add(so)
}

// close stops the receiving — no packet is handled once it returns — and
// closes the descriptor. It is called once.
func (so *socket) close() error {
	so.mu.Lock() // waits for a packet being handled
	so.stopped = true
	sh := so.shard
	so.mu.Unlock()
	if sh != nil {
		sh.remove(so) // before the descriptor closes: its number may be reused at once
	}
	return unix.Close(so.fd)
}

// rxPollers are the receive pollers of every session in the process, one
// shard per GOMAXPROCS, made on first use.
var rxPollers = sync.OnceValue(func() *rxPoller {
	p := &rxPoller{shards: make([]*rxShard, max(1, runtime.GOMAXPROCS(0)))}
	for i := range p.shards {
		p.shards[i] = &rxShard{sockets: make(map[uint64]*socket)}
	}
	return p
})

type rxPoller struct {
	shards []*rxShard
	next   atomic.Uint32 // round robin over the shards
}

// rxShard is one epoll set and the goroutine that serves it. Like a pacer
// shard it runs only while it has sockets: the first one makes the set
// and starts the goroutine; when the last one leaves, the set is closed
// and the goroutine ends.
type rxShard struct {
	mu      sync.Mutex
	set     *epollSet // nil while the shard has no socket
	sockets map[uint64]*socket
	next    uint64
}

// epollSet is an epoll descriptor that Go's runtime poller watches: it
// reads as ready while one of its sockets has a packet.
type epollSet struct {
	fd   int
	file *os.File
}

func newEpollSet() (*epollSet, error) {
	fd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll set: %w", err)
	}
	// Non-blocking, os.NewFile hands it to the runtime's poller.
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("epoll set: %w", err)
	}
	return &epollSet{fd: fd, file: os.NewFile(uintptr(fd), "rtp-epoll")}, nil
}

func (sh *rxShard) add(so *socket) error {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	started := false
	if sh.set == nil {
		set, err := newEpollSet()
		if err != nil {
			return err
		}
		sh.set, started = set, true
	}
	sh.next++
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	setToken(&ev, sh.next)
	if err := unix.EpollCtl(sh.set.fd, unix.EPOLL_CTL_ADD, so.fd, &ev); err != nil {
		if started {
			sh.set.file.Close()
			sh.set = nil
		}
		return fmt.Errorf("RTP socket to the poller: %w", err)
	}
	so.shard, so.token = sh, sh.next
	sh.sockets[so.token] = so
	if started {
		go sh.run(sh.set)
	}
	return nil
}

func (sh *rxShard) remove(so *socket) {
	sh.mu.Lock()
	var idle *epollSet
	if sh.sockets[so.token] == so {
		delete(sh.sockets, so.token)
		_ = unix.EpollCtl(sh.set.fd, unix.EPOLL_CTL_DEL, so.fd, nil)
		if len(sh.sockets) == 0 {
			idle, sh.set = sh.set, nil
		}
	}
	sh.mu.Unlock()
	if idle != nil {
		// Outside the lock: Close waits for a poll in progress, which
		// takes the lock to find its sockets.
		idle.file.Close()
	}
}

// lookup finds the socket an event is for; nil once it has left.
func (sh *rxShard) lookup(token uint64) *socket {
	sh.mu.Lock()
	so := sh.sockets[token]
	sh.mu.Unlock()
	return so
}

// run serves one epoll set until it is closed.
func (sh *rxShard) run(set *epollSet) {
	rc, err := set.file.SyscallConn()
	if err != nil {
		return
	}
	rd := new(rawReader)
	poll := func(uintptr) bool { return sh.poll(set.fd, rd) }
	for {
		// Read calls poll until it reports true, waiting for the set to
		// read as ready whenever it reports false.
		if err := rc.Read(poll); err != nil {
			return // closed: the shard has no socket left
		}
		// Under load packets keep coming and the set is never found
		// empty, so this goroutine need not park: it could hold its P
		// until the runtime preempts it (10 ms) while the pacer's timer
		// waits. Yielding after every batch lets it run. A precaution:
		// at 1,500 IVR callers frames were as often late with it as
		// without, within the noise (5-11%).
		runtime.Gosched()
	}
}

// poll reads one packet from every socket of the set that has one; false
// when none had.
func (sh *rxShard) poll(epfd int, rd *rawReader) bool {
	n, err := unix.EpollWait(epfd, rd.events[:], 0)
	if n <= 0 {
		return err == unix.EINTR
	}
	for i := range rd.events[:n] {
		if so := sh.lookup(token(&rd.events[i])); so != nil {
			so.receive(rd)
		}
	}
	return true
}

// receive reads one datagram and hands it to the session's receiver.
func (so *socket) receive(rd *rawReader) {
	so.mu.Lock()
	defer so.mu.Unlock()
	if so.stopped {
		return
	}
	n, oobn, err := rd.recvmsg(so.fd)
	if err != nil {
		return // EAGAIN: another reader took it; errors from ICMP are not ours to act on
	}
	from := rd.source()
	if from == nil {
		return
	}
	rx, _ := RxStamp(rd.oob[:oobn])
	so.s.rx.packet(rd.buf[:n], from, time.Now(), rx)
}

// rawReader is a poller goroutine's buffers for recvmsg: nothing is
// allocated per packet.
type rawReader struct {
	events [128]unix.EpollEvent
	buf    [1500]byte
	oob    [StampOOB]byte
	name   unix.RawSockaddrAny
	iov    unix.Iovec
	msg    unix.Msghdr
	from   net.UDPAddr // the last packet's source, rebuilt in place
	ip     [16]byte
}

var errShortControl = errors.New("recvmsg: no room for the control data")

func (rd *rawReader) recvmsg(fd int) (n, oobn int, err error) {
	rd.iov.Base = &rd.buf[0]
	rd.iov.SetLen(len(rd.buf))
	rd.msg = unix.Msghdr{
		Name:    (*byte)(unsafe.Pointer(&rd.name)),
		Namelen: uint32(unsafe.Sizeof(rd.name)),
		Iov:     &rd.iov,
		Control: &rd.oob[0],
	}
	rd.msg.SetIovlen(1)
	rd.msg.SetControllen(len(rd.oob))
	r, _, errno := unix.Syscall(unix.SYS_RECVMSG, uintptr(fd), uintptr(unsafe.Pointer(&rd.msg)), unix.MSG_DONTWAIT)
	if errno != 0 {
		return 0, 0, errno
	}
	if rd.msg.Flags&unix.MSG_CTRUNC != 0 {
		return int(r), 0, errShortControl
	}
	return int(r), int(rd.msg.Controllen), nil
}

// source is the last datagram's sender (an IPv4-mapped address as IPv4);
// nil for an address family that is not IP.
func (rd *rawReader) source() *net.UDPAddr {
	switch rd.name.Addr.Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&rd.name))
		rd.from.IP = append(rd.ip[:0], sa.Addr[:]...)
		rd.from.Port = netPort(sa.Port)
	case unix.AF_INET6:
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(&rd.name))
		if ip := net.IP(sa.Addr[:]); ip.To4() != nil {
			rd.from.IP = append(rd.ip[:0], sa.Addr[12:16]...)
		} else {
			rd.from.IP = append(rd.ip[:0], sa.Addr[:]...)
		}
		rd.from.Port = netPort(sa.Port)
	default:
		return nil
	}
	rd.from.Zone = ""
	return &rd.from
}

// netPort reads a port kept in network byte order.
func netPort(p uint16) int {
	b := (*[2]byte)(unsafe.Pointer(&p))
	return int(b[0])<<8 | int(b[1])
}

// The epoll data of a socket's event is its token, in the 64 bits
// unix.EpollEvent gives to Fd and Pad.
func setToken(ev *unix.EpollEvent, t uint64) { ev.Fd, ev.Pad = int32(uint32(t)), int32(uint32(t>>32)) }
func token(ev *unix.EpollEvent) uint64       { return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32 }
