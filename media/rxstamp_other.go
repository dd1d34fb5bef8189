//go:build !(linux && (amd64 || arm64))

package media

import (
	"net"
	"time"
)

// StampOOB is room for a receive timestamp's control data.
const StampOOB = 64

// EnableRxStamps does nothing here: kernel receive timestamps are read on
// Linux only, and relay latency is not measured without them.
func EnableRxStamps(*net.UDPConn) error { return nil }

// enableRxStampsFD does nothing here either.
func enableRxStampsFD(int) error { return nil }

// RxStamp finds no stamp off Linux.
func RxStamp([]byte) (time.Time, bool) { return time.Time{}, false }
