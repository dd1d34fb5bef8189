//go:build !linux

package testcaller

// udpDrops: only Linux tells a socket's drops (/proc/net/udp).
func udpDrops(map[int]bool) (int, bool) { return 0, false }
