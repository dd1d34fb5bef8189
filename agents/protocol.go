package agents

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Message types of the agent protocol (docs/agent-protocol.md).
const (
	// Server → client.
	MsgHello         = "hello"
	MsgState         = "state"
	MsgOffer         = "offer"
	MsgCallOffered   = "call_offered"
	MsgCallConnected = "call_connected"
	MsgCallEnded     = "call_ended"
	MsgWrapUp        = "wrapup"
	MsgError         = "error"

	// Client → server (MsgState too).
	MsgAnswer     = "answer"
	MsgAccept     = "accept"
	MsgDecline    = "decline"
	MsgHangup     = "hangup"
	MsgHold       = "hold"
	MsgWrapUpDone = "wrapup_done"
)

// Reasons a call ends, as call_ended says them.
const (
	EndCallerHangup = "caller_hangup"
	EndAgentHangup  = "agent_hangup"
	EndMissed       = "missed"
	EndDeclined     = "declined"
	EndCallerGone   = "caller_gone"
	EndAgentLost    = "agent_lost"
	EndShutdown     = "shutdown"
)

// ClientMessage is a message from the client; fields a type does not use
// are empty.
type ClientMessage struct {
	Type        string `json:"type"`
	State       string `json:"state,omitempty"`       // state
	Reason      string `json:"reason,omitempty"`      // state (not_ready)
	SDP         string `json:"sdp,omitempty"`         // answer
	CallID      string `json:"call_id,omitempty"`     // accept, decline, hangup, hold, wrapup_done
	On          *bool  `json:"on,omitempty"`          // hold
	Disposition string `json:"disposition,omitempty"` // wrapup_done
	Notes       string `json:"notes,omitempty"`       // wrapup_done
}

// Messages from the server.
type (
	helloMsg struct {
		Type   string    `json:"type"`
		Agent  AgentInfo `json:"agent"`
		State  string    `json:"state"`
		Since  string    `json:"since"`
		Reason string    `json:"reason,omitempty"`
		Call   *CallInfo `json:"call,omitempty"`
	}
	stateMsg struct {
		Type   string `json:"type"`
		State  string `json:"state"`
		Since  string `json:"since"`
		Reason string `json:"reason,omitempty"`
	}
	offerMsg struct {
		Type string `json:"type"`
		SDP  string `json:"sdp"`
	}
	callOfferedMsg struct {
		Type string `json:"type"`
		CallInfo
	}
	callMsg struct {
		Type   string `json:"type"`
		CallID string `json:"call_id"`
		Reason string `json:"reason,omitempty"`
	}
	wrapUpMsg struct {
		Type     string  `json:"type"`
		CallID   string  `json:"call_id"`
		TimeoutS float64 `json:"timeout_s"`
	}
	errorMsg struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	}
)

// AgentInfo is who the agent is.
type AgentInfo struct {
	ID     string         `json:"id"`
	Name   string         `json:"name"`
	Skills map[string]int `json:"skills"`
}

// CallInfo is the screen pop of a ringing or connected call.
type CallInfo struct {
	CallID       string     `json:"call_id"`
	Caller       CallerInfo `json:"caller"`
	Skill        string     `json:"skill"`
	IVR          IVRInfo    `json:"ivr"`
	WaitedS      float64    `json:"waited_s"`
	RingTimeoutS float64    `json:"ring_timeout_s,omitempty"`
}

// CallerInfo is what caller identification found.
type CallerInfo struct {
	Number     string `json:"number"`
	Name       string `json:"name,omitempty"`
	CustomerID string `json:"customer_id,omitempty"`
	Tier       string `json:"tier,omitempty"`
}

// IVRInfo is what the caller did in the IVR.
type IVRInfo struct {
	Choices []Choice          `json:"choices"`
	Vars    map[string]string `json:"vars,omitempty"`
}

// Choice is one menu key or collected input.
type Choice struct {
	Node  string `json:"node"`
	Input string `json:"input"`
}

// maxMessage bounds a client message; SDP answers are a few KiB.
const maxMessage = 64 << 10

var errEmptyType = errors.New(`missing "type"`)

// parseClient reads one client message and checks its fields for its type.
func parseClient(data []byte) (ClientMessage, error) {
	var m ClientMessage
	if len(data) > maxMessage {
		return m, fmt.Errorf("message of %d bytes is over the %d byte limit", len(data), maxMessage)
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("not a JSON object: %v", err)
	}
	switch m.Type {
	case "":
		return m, errEmptyType
	case MsgState:
		switch m.State {
		case "available", "not_ready", "offline":
		default:
			return m, fmt.Errorf("state %q: choose available, not_ready or offline", m.State)
		}
	case MsgAnswer:
		if m.SDP == "" {
			return m, errors.New("answer without sdp")
		}
	case MsgAccept, MsgDecline, MsgHangup, MsgWrapUpDone:
		if m.CallID == "" {
			return m, fmt.Errorf("%s without call_id", m.Type)
		}
	case MsgHold:
		if m.CallID == "" || m.On == nil {
			return m, errors.New("hold needs call_id and on")
		}
	default:
		return m, fmt.Errorf("unknown message type %q", m.Type)
	}
	return m, nil
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
