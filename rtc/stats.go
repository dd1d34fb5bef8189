package rtc

import "sync/atomic"

// EndReason is why an agent's audio path ended.
type EndReason int

const (
	EndClosed      EndReason = iota // ivrd closed it: logout, shutdown, a new path
	EndAgentClosed                  // the browser closed it (a DTLS alert)
	EndSilent                       // nothing from the browser for the ICE timeouts
	EndDTLSFailed                   // the handshake failed, or the certificate was not the answer's
	endReasons
)

// EndReasons lists every EndReason, for metrics.
var EndReasons = [endReasons]EndReason{EndClosed, EndAgentClosed, EndSilent, EndDTLSFailed}

func (r EndReason) String() string {
	switch r {
	case EndClosed:
		return "closed"
	case EndAgentClosed:
		return "agent_closed"
	case EndSilent:
		return "silent"
	case EndDTLSFailed:
		return "dtls_failed"
	}
	return "unknown"
}

// Stats counts an Engine's agent paths since it started.
type Stats struct {
	Open      int                // paths open now
	Connected uint64             // handshakes completed
	Moved     uint64             // times a path followed the agent's SRTP to a new address
	Ended     [endReasons]uint64 // by EndReason
}

// counters are the Engine's running counts.
type counters struct {
	connected, moved atomic.Uint64
	ended            [endReasons]atomic.Uint64
}

// Stats returns the Engine's counts.
func (e *Engine) Stats() Stats {
	e.mu.Lock()
	st := Stats{Open: len(e.peers)}
	e.mu.Unlock()
	st.Connected = e.count.connected.Load()
	st.Moved = e.count.moved.Load()
	for i := range st.Ended {
		st.Ended[i] = e.count.ended[i].Load()
	}
	return st
}
