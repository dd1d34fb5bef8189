package agents

import (
	"log/slog"

	"ivrd/media"
	"ivrd/rtc"
)

// RTCPeers makes the agents' audio paths on a pion engine.
func RTCPeers(e *rtc.Engine) PeerFactory {
	return func(agentID string, log *slog.Logger) (Peer, error) {
		p, err := e.NewPeer(agentID, log)
		if err != nil {
			return nil, err
		}
		return rtcPeer{p}, nil
	}
}

// rtcPeer adapts *rtc.Peer to Peer (Bridge returns the interface).
type rtcPeer struct{ *rtc.Peer }

func (p rtcPeer) Bridge(sess *media.Session) (Bridge, error) {
	b, err := p.Peer.Bridge(sess)
	if err != nil {
		return nil, err
	}
	return b, nil
}
