//go:build linux && (amd64 || arm64)

package media

import (
	"encoding/binary"
	"net"
	"syscall"
	"time"
)

// StampOOB is room enough for the control message of one receive
// timestamp (a cmsghdr and a timespec).
const StampOOB = 64

// EnableRxStamps asks the kernel to stamp every datagram conn receives with
// the time it arrived (SO_TIMESTAMPNS); RxStamp reads the stamp from a
// ReadMsgUDP's control data. The stamp is taken as the packet reaches the
// socket, so the time from it to the moment a relayed copy leaves is the
// delay the server added, scheduling included.
func EnableRxStamps(conn *net.UDPConn) error {
	raw, err := conn.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) { serr = enableRxStampsFD(int(fd)) }); err != nil {
		return err
	}
	return serr
}

// enableRxStampsFD is EnableRxStamps on a socket's descriptor.
func enableRxStampsFD(fd int) error {
	return syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
}

// RxStamp returns the SO_TIMESTAMPNS receive time in oob, a ReadMsgUDP's
// control data, without allocating; ok is false when there is none.
func RxStamp(oob []byte) (t time.Time, ok bool) {
	// struct cmsghdr { size_t len; int level; int type; } then the data,
	// each message aligned to the word size (64-bit Linux).
	const hdr = 16
	le := binary.NativeEndian
	for len(oob) >= hdr {
		n := int(le.Uint64(oob[0:8]))
		if n < hdr || n > len(oob) {
			return time.Time{}, false
		}
		level, typ := int32(le.Uint32(oob[8:12])), int32(le.Uint32(oob[12:16]))
		if level == syscall.SOL_SOCKET && typ == syscall.SCM_TIMESTAMPNS && n >= hdr+16 {
			sec, nsec := int64(le.Uint64(oob[hdr:hdr+8])), int64(le.Uint64(oob[hdr+8:hdr+16]))
			return time.Unix(sec, nsec), true
		}
		oob = oob[min(len(oob), (n+7)&^7):]
	}
	return time.Time{}, false
}
