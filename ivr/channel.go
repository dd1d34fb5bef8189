package ivr

import (
	"context"
	"fmt"
	"time"

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

// Playback is prompts playing while the call's goroutine waits for other
// things (keys, queue events).
type Playback interface {
	// Done delivers the result once: nil when the prompts have played,
	// else why they stopped (context.Canceled after Stop).
	Done() <-chan error
	// Stop ends the playback at the next frame; it does not wait.
	Stop()
}

// PlayStarter is a Channel that can start prompts without waiting for
// them (MediaChannel). StartPlay uses it when the channel has it.
type PlayStarter interface {
	StartPlay(ctx context.Context, prompts ...string) Playback
}

// StartPlay starts playing prompts on ch and returns at once. A channel
// that is a PlayStarter plays them without a goroutine; any other plays
// them with Play on a goroutine of its own.
func StartPlay(ctx context.Context, ch Channel, prompts ...string) Playback {
	if ps, ok := ch.(PlayStarter); ok {
		return ps.StartPlay(ctx, prompts...)
	}
	pctx, cancel := context.WithCancel(ctx)
	p := &goPlayback{cancel: cancel, done: make(chan error, 1)}
	go func() {
		p.done <- ch.Play(pctx, prompts...)
		cancel()
	}()
	return p
}

// goPlayback is a Play on a goroutine of its own.
type goPlayback struct {
	cancel context.CancelFunc
	done   chan error
}

func (p *goPlayback) Done() <-chan error { return p.done }
func (p *goPlayback) Stop()              { p.cancel() }

// QueueHandler puts a call in a queue; package queue implements it.
type QueueHandler interface {
	// Queue hands the call to a skill and blocks while the queue owns the
	// call. It returns the node to continue with: "" when the call is over
	// (the runner returns QueueDone), QueueNext for the queue node's own
	// next, or the name of any node of the flow (req.OnMaxWait, a value of
	// req.Options).
	Queue(ctx context.Context, ch Channel, call *Call, req QueueRequest) (next string, err error)
}

// QueueRequest is what a queue node asks of the queue.
type QueueRequest struct {
	Skill         string
	Priority      int           // higher is served first
	AnnounceEvery time.Duration // position and estimate repeated this often; 0: the queue's default
	MaxWait       time.Duration // 0: wait as long as it takes
	OverflowSkill string        // after MaxWait: move to this skill, keeping the caller's arrival
	OnMaxWait     string        // after MaxWait: leave the queue for this node
	// Options are the keys that work while waiting: a node to go to, or
	// QueueCallbackOption to leave a callback request.
	Options       map[byte]string
	OptionsPrompt []string // announces the options
}

// QueueCallbackOption, as the target of a queue option, lets the caller
// leave a callback request instead of waiting.
const QueueCallbackOption = "callback"

// QueueNext, returned by a QueueHandler, hands the call back to the flow at
// the queue node's `next` (e.g. a voicemail or callback offer when nobody
// answers).
const QueueNext = "@next"

// QueueFunc adapts a function to QueueHandler.
type QueueFunc func(ctx context.Context, ch Channel, call *Call, req QueueRequest) (string, error)

// Queue calls f.
func (f QueueFunc) Queue(ctx context.Context, ch Channel, call *Call, req QueueRequest) (string, error) {
	return f(ctx, ch, call, req)
}

// Identifier finds out who is calling; *callerid.Identifier implements it.
// It never fails: an unknown caller comes back unidentified.
type Identifier interface {
	Identify(ctx context.Context, callID, number string) callerid.Caller
}

// MediaChannel plays prompts by name from a library on a call's media
// session: the Channel every real call uses.
type MediaChannel struct {
	sess    *media.Session
	prompts *media.Library
	buf     []*media.Prompt
}

// NewMediaChannel returns the channel of one call. Use it from the call's
// goroutine (Play reuses a buffer).
func NewMediaChannel(sess *media.Session, prompts *media.Library) *MediaChannel {
	return &MediaChannel{sess: sess, prompts: prompts}
}

// Play implements Channel.
func (ch *MediaChannel) Play(ctx context.Context, names ...string) error {
	ch.buf = ch.buf[:0]
	for _, n := range names {
		p, ok := ch.prompts.Get(n)
		if !ok {
			// Flows are validated against the prompts at start.
			return fmt.Errorf("play: no prompt %q", n)
		}
		ch.buf = append(ch.buf, p)
	}
	return ch.sess.Play(ctx, ch.buf...)
}

// StartPlay implements PlayStarter: the session's pacer plays the prompts,
// no goroutine waits for them.
func (ch *MediaChannel) StartPlay(ctx context.Context, names ...string) Playback {
	prompts := make([]*media.Prompt, 0, len(names)) // kept by the playback: not ch.buf
	for _, n := range names {
		p, ok := ch.prompts.Get(n)
		if !ok {
			done := make(chan error, 1)
			done <- fmt.Errorf("play: no prompt %q", n)
			return failedPlayback(done)
		}
		prompts = append(prompts, p)
	}
	return ch.sess.StartPlay(ctx, prompts...)
}

// failedPlayback is a playback that never started.
type failedPlayback chan error

func (p failedPlayback) Done() <-chan error { return p }
func (p failedPlayback) Stop()              {}

// Digits implements Channel.
func (ch *MediaChannel) Digits() <-chan media.Digit { return ch.sess.Digits() }

// Session is the call's media session (for bridging it to an agent).
func (ch *MediaChannel) Session() *media.Session { return ch.sess }
