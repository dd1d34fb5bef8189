package ivr

import (
	"context"
	"fmt"

	"ivrd/ivr/callerid"
	"ivrd/media"
)

// Channel is what the runner needs from a call's media; the SIP/media layer
// implements it.
type Channel interface {
	// Play plays the named prompts in order and returns when they are done
	// or ctx is cancelled (then it returns ctx.Err()).
	Play(ctx context.Context, prompts ...string) error
	// Digits delivers the caller's key presses. The runner reads it while
	// prompts play, so digits are never left unread.
	Digits() <-chan media.Digit
}

// QueueHandler puts a call in a queue; package queue implements it.
type QueueHandler interface {
	// Queue hands the call to a skill and blocks while the queue owns the
	// call. It returns the node to continue with: "" when the call is over
	// (the runner returns QueueDone), QueueNext for the queue node's own
	// next, or the name of any node of the flow.
	Queue(ctx context.Context, ch Channel, call *Call, skill string, priority int) (next string, err error)
}

// QueueNext, returned by a QueueHandler, hands the call back to the flow at
// the queue node's `next` (e.g. a voicemail or callback offer when nobody
// answers).
const QueueNext = "@next"

// QueueFunc adapts a function to QueueHandler.
type QueueFunc func(ctx context.Context, ch Channel, call *Call, skill string, priority int) (string, error)

// Queue calls f.
func (f QueueFunc) Queue(ctx context.Context, ch Channel, call *Call, skill string, priority int) (string, error) {
	return f(ctx, ch, call, skill, priority)
}

// PlaceholderQueue is the queue to wire until a real one exists: it plays
// the prompts (e.g. "queue_placeholder") and ends the flow.
func PlaceholderQueue(prompts ...string) QueueHandler {
	return QueueFunc(func(ctx context.Context, ch Channel, call *Call, skill string, _ int) (string, error) {
		if err := ch.Play(ctx, prompts...); err != nil {
			return "", fmt.Errorf("play placeholder for queue %s: %w", skill, err)
		}
		return "", nil
	})
}

// Identifier finds out who is calling; *callerid.Identifier implements it.
// It never fails: an unknown caller comes back unidentified.
type Identifier interface {
	Identify(ctx context.Context, callID, number string) callerid.Caller
}
