package ivr

import (
	"time"

	"ivrd/ivr/callerid"
)

// Call is everything known about one call. The flow fills it in as it runs
// and it travels with the call to the queue and the agent's screen. Only the
// goroutine running the call's flow may change it while Run is running.
type Call struct {
	ID          string            // the call's id, logged as call_id
	Number      string            // caller number as received (P-Asserted-Identity or From user)
	DisplayName string            // caller's display name as received
	Dialed      string            // request-URI user: the number the caller dialled
	Caller      callerid.Caller   // filled by the lookup node
	Vars        map[string]string // set by set and collect nodes
	Choices     []Choice          // every accepted menu and collect input, in order
	Skill       string            // set by the queue node
	Queued      time.Time         // when the call first entered a queue
	Priority    int               // queue priority; higher is served first; set by set (priority) and queue nodes

	// Segment, when set, hears each change of the call's segment (see
	// Mark): the recording uses it to mark where the IVR, the queue, the
	// agent and hold begin and end.
	Segment func(kind, detail string)
}

// Mark reports that the call entered a segment — "ivr", "queue" (detail:
// the skill), "agent" (detail: the agent), "hold" — or left one (the kind
// followed by "_end"). It does nothing without a Segment hook or on a nil
// Call.
func (c *Call) Mark(kind, detail string) {
	if c != nil && c.Segment != nil {
		c.Segment(kind, detail)
	}
}

// Choice is one input the caller gave: a menu key or collected digits.
type Choice struct {
	Node  string    // the menu or collect node
	Input string    // the key pressed, or the digits collected
	At    time.Time // when the input was accepted
}

// Outcome says how a flow ended for a call; the same words are used in logs
// and metric labels.
type Outcome string

// The ways a flow ends.
const (
	// Hangup: a hangup node ran; the server ends the call (BYE).
	Hangup Outcome = "hangup"
	// QueueDone: a queue node handed the call over and the queue finished
	// with it.
	QueueDone Outcome = "queue_done"
	// CallerGone: the call's context was cancelled, normally because the
	// caller hung up.
	CallerGone Outcome = "caller_gone"
	// Failed: the flow could not go on (media error, queue error, a loop
	// without input); Run also returns the error.
	Failed Outcome = "failed"
)

// Result is how a flow ended and where.
type Result struct {
	Outcome Outcome
	Node    string // the last node entered
	Visits  int    // how many nodes were entered
}
