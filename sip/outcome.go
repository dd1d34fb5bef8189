package sip

// Outcome is how a call ended: one closed set used alike in logs, metric
// labels and (later) the call record.
type Outcome string

// Call outcomes.
const (
	OutcomeCompleted    Outcome = "completed"     // the flow ended the call (we sent BYE)
	OutcomeCallerHangup Outcome = "caller_hangup" // the caller sent BYE
	OutcomeCanceled     Outcome = "canceled"      // CANCEL before answer
	OutcomeNoAck        Outcome = "no_ack"        // our 200 was never acknowledged
	OutcomeMediaTimeout Outcome = "media_timeout" // RTP stopped
	OutcomeShutdown     Outcome = "shutdown"      // ended by a server shutdown past its grace period
	OutcomeRejected     Outcome = "rejected"      // turned away before answer (codec, limits, draining)
	OutcomeServerError  Outcome = "server_error"  // we failed (no port, transport error)
)
