package sip

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"

	"ivrd/media"
)

// Direction is an SDP media direction attribute (RFC 3264 §5.1).
type Direction string

// The four SDP directions.
const (
	SendRecv Direction = "sendrecv"
	SendOnly Direction = "sendonly"
	RecvOnly Direction = "recvonly"
	Inactive Direction = "inactive"
)

// answer returns the direction we answer with (RFC 3264 §6.1): the mirror
// of what the offerer said about itself.
func (d Direction) answer() Direction {
	switch d {
	case SendOnly:
		return RecvOnly
	case RecvOnly:
		return SendOnly
	case Inactive:
		return Inactive
	}
	return SendRecv
}

// weSend reports whether, having answered the offer d, we may send media.
func (d Direction) weSend() bool { return d == SendRecv || d == RecvOnly }

// Errors from offer parsing that decide the SIP response.
var (
	// ErrNoCommonCodec means the offer has no PCMU or PCMA: 488.
	ErrNoCommonCodec = errors.New("offer has neither PCMU nor PCMA")
	// ErrBadSDP means the body is not usable SDP: 400.
	ErrBadSDP = errors.New("malformed SDP")
)

// Offer is what we need from a caller's SDP offer.
type Offer struct {
	Law       media.Law   // the first G.711 law in the offer's order
	Laws      []media.Law // every G.711 law offered, in order
	DTMFType  uint8       // telephone-event payload type; 0 when not offered
	DTMFFmtp  string      // the offer's fmtp for telephone-event, echoed back
	Addr      *net.UDPAddr
	Direction Direction
	SessionID uint64 // o= session id, to notice a new session
	IPv6      bool
}

// ParseOffer reads an SDP offer and picks the first of PCMU/PCMA in the
// offer's order for the first usable audio stream. Only the static payload
// types 0 and 8 are taken for G.711 (RFC 3551 §6); nobody sends G.711 on a
// dynamic type in practice.
func ParseOffer(body []byte) (Offer, error) {
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(body); err != nil {
		return Offer{}, fmt.Errorf("%w: %v", ErrBadSDP, err)
	}
	var off Offer
	off.SessionID = sd.Origin.SessionID
	sessionDir := directionOf(sd.Attributes, SendRecv)

	audioSeen := false
	for _, md := range sd.MediaDescriptions {
		if md.MediaName.Media != "audio" || md.MediaName.Port.Value == 0 {
			continue
		}
		audioSeen = true
		// Only plain RTP: RTP/SAVP and friends need keys we do not do.
		if !hasProto(md.MediaName.Protos, "RTP", "AVP") {
			continue
		}
		laws := offeredLaws(md.MediaName.Formats)
		if len(laws) == 0 {
			continue
		}
		off.Law, off.Laws = laws[0], laws
		off.DTMFType, off.DTMFFmtp = telephoneEvent(md)
		ci := md.ConnectionInformation
		if ci == nil {
			ci = sd.ConnectionInformation
		}
		if ci == nil || ci.Address == nil {
			return Offer{}, fmt.Errorf("%w: audio stream without a connection address", ErrBadSDP)
		}
		host := ci.Address.Address
		if i := strings.IndexByte(host, '/'); i >= 0 { // multicast TTL; not for us but harmless
			host = host[:i]
		}
		ip := net.ParseIP(host)
		if ip == nil {
			return Offer{}, fmt.Errorf("%w: connection address %q is not an IP address", ErrBadSDP, host)
		}
		port := md.MediaName.Port.Value
		if port <= 0 || port > 65535 {
			return Offer{}, fmt.Errorf("%w: port %d out of range", ErrBadSDP, port)
		}
		off.Addr = &net.UDPAddr{IP: ip, Port: port}
		off.IPv6 = ci.AddressType == "IP6"
		off.Direction = directionOf(md.Attributes, sessionDir)
		// RFC 2543 hold: c=0.0.0.0 means "do not send to me".
		if ip.IsUnspecified() && off.Direction == SendRecv {
			off.Direction = SendOnly
		}
		return off, nil
	}
	if !audioSeen {
		return Offer{}, fmt.Errorf("%w: no audio stream", ErrNoCommonCodec)
	}
	return Offer{}, ErrNoCommonCodec
}

func hasProto(protos []string, want ...string) bool {
	if len(protos) != len(want) {
		return false
	}
	for i := range protos {
		if !strings.EqualFold(protos[i], want[i]) {
			return false
		}
	}
	return true
}

func offeredLaws(formats []string) []media.Law {
	var laws []media.Law
	for _, f := range formats {
		switch f {
		case "0":
			laws = append(laws, media.ULaw)
		case "8":
			laws = append(laws, media.ALaw)
		}
	}
	return laws
}

// Has reports whether the offer includes law.
func (o Offer) Has(law media.Law) bool {
	for _, l := range o.Laws {
		if l == law {
			return true
		}
	}
	return false
}

// telephoneEvent finds the RFC 4733 payload type at 8 kHz in the stream.
func telephoneEvent(md *sdp.MediaDescription) (uint8, string) {
	var pt uint8
	for _, a := range md.Attributes {
		if a.Key != "rtpmap" {
			continue
		}
		num, enc, ok := strings.Cut(a.Value, " ")
		if !ok || !strings.EqualFold(enc, "telephone-event/8000") {
			continue
		}
		n, err := strconv.Atoi(num)
		if err != nil || n < 96 || n > 127 || !containsFormat(md.MediaName.Formats, num) {
			continue
		}
		pt = uint8(n)
		break
	}
	if pt == 0 {
		return 0, ""
	}
	prefix := strconv.Itoa(int(pt)) + " "
	for _, a := range md.Attributes {
		if a.Key == "fmtp" && strings.HasPrefix(a.Value, prefix) {
			return pt, strings.TrimSpace(a.Value[len(prefix):])
		}
	}
	return pt, ""
}

func containsFormat(formats []string, f string) bool {
	for _, x := range formats {
		if x == f {
			return true
		}
	}
	return false
}

func directionOf(attrs []sdp.Attribute, def Direction) Direction {
	for _, a := range attrs {
		switch Direction(a.Key) {
		case SendRecv, SendOnly, RecvOnly, Inactive:
			return Direction(a.Key)
		}
	}
	return def
}

// Answer describes our side of the session for an SDP answer (or offer).
type Answer struct {
	IP        net.IP
	Port      int
	Law       media.Law
	DTMFType  uint8
	DTMFFmtp  string
	Direction Direction
	SessionID uint64
	Version   uint64
}

// Marshal writes the SDP. One audio codec, plus telephone-event when the
// offer had it, ptime 20 (STACK.md: answer with exactly what we will send).
func (a Answer) Marshal() []byte {
	ipVer := "IP4"
	if a.IP.To4() == nil {
		ipVer = "IP6"
	}
	var b strings.Builder
	b.Grow(256)
	fmt.Fprintf(&b, "v=0\r\no=ivrd %d %d IN %s %s\r\ns=ivrd\r\nc=IN %s %s\r\nt=0 0\r\n",
		a.SessionID, a.Version, ipVer, a.IP, ipVer, a.IP)
	pt := a.Law.PayloadType()
	fmt.Fprintf(&b, "m=audio %d RTP/AVP %d", a.Port, pt)
	if a.DTMFType != 0 {
		fmt.Fprintf(&b, " %d", a.DTMFType)
	}
	fmt.Fprintf(&b, "\r\na=rtpmap:%d %s/8000\r\n", pt, a.Law)
	if a.DTMFType != 0 {
		fmt.Fprintf(&b, "a=rtpmap:%d telephone-event/8000\r\n", a.DTMFType)
		fmtp := a.DTMFFmtp
		if fmtp == "" {
			fmtp = "0-16"
		}
		fmt.Fprintf(&b, "a=fmtp:%d %s\r\n", a.DTMFType, fmtp)
	}
	dir := a.Direction
	if dir == "" {
		dir = SendRecv
	}
	fmt.Fprintf(&b, "a=ptime:20\r\na=%s\r\n", dir)
	return []byte(b.String())
}
