package sip

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"ivrd/media"
)

var errNoDigit = errors.New("no DTMF digit in INFO body")

// parseDTMFInfo reads a digit from a SIP INFO body. Some phones send DTMF
// this way instead of RFC 4733: application/dtmf-relay ("Signal=5\r\n
// Duration=160", the Cisco format most devices copy) or application/dtmf
// (just the key).
func parseDTMFInfo(contentType string, body []byte) (media.Digit, error) {
	ct, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(contentType)), ";")
	ct = strings.TrimSpace(ct)
	d := media.Digit{Source: media.DigitSIPInfo}
	switch ct {
	case "application/dtmf-relay":
		for _, line := range strings.Split(string(body), "\n") {
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				continue
			}
			v = strings.TrimSpace(v)
			switch strings.ToLower(strings.TrimSpace(k)) {
			case "signal":
				key, ok := infoKey(v)
				if !ok {
					return d, errNoDigit
				}
				d.Key = key
			case "duration":
				if ms, err := strconv.Atoi(v); err == nil && ms > 0 && ms < 60000 {
					d.Duration = time.Duration(ms) * time.Millisecond
				}
			}
		}
	case "application/dtmf":
		key, ok := infoKey(strings.TrimSpace(string(body)))
		if !ok {
			return d, errNoDigit
		}
		d.Key = key
	default:
		return d, errUnsupportedInfo
	}
	if d.Key == 0 {
		return d, errNoDigit
	}
	return d, nil
}

var errUnsupportedInfo = errors.New("unsupported INFO content type")

// infoKey maps "5", "*", "#", "A", or the event numbers 10/11 (some phones
// send the RFC 4733 event code) to a key.
func infoKey(v string) (byte, bool) {
	switch v {
	case "10":
		return '*', true
	case "11":
		return '#', true
	}
	if len(v) != 1 {
		return 0, false
	}
	c := v[0]
	switch {
	case c >= '0' && c <= '9', c == '*', c == '#':
		return c, true
	case c >= 'A' && c <= 'D':
		return c, true
	case c >= 'a' && c <= 'd':
		return c - 'a' + 'A', true
	}
	return 0, false
}
