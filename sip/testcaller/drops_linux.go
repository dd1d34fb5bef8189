package testcaller

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// udpDrops adds up the drops counted on the UDP sockets bound to the
// given local ports, from /proc/net/udp and udp6 (the last column: packets
// the kernel dropped, most for a full receive buffer).
func udpDrops(ports map[int]bool) (int, bool) {
	total, read := 0, false
	for _, path := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		read = true
		sc := bufio.NewScanner(f)
		sc.Scan() // the header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 13 {
				continue
			}
			_, hexPort, ok := strings.Cut(fields[1], ":")
			if !ok {
				continue
			}
			port, err := strconv.ParseUint(hexPort, 16, 16)
			if err != nil || !ports[int(port)] {
				continue
			}
			if n, err := strconv.Atoi(fields[len(fields)-1]); err == nil {
				total += n
			}
		}
		f.Close()
	}
	return total, read
}
