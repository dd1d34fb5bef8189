package ivr

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"ivrd/media"
)

// scriptChannel stands in for the media layer: it records what is played
// and presses keys when a prompt starts, as a caller who knows the menu
// would. Prompts take no time unless given a length.
type scriptChannel struct {
	digits chan media.Digit

	mu      sync.Mutex
	plays   []playRecord
	press   map[string][]string // prompt → keys to press at its n-th start (one entry per start)
	starts  map[string]int
	lengths map[string]time.Duration // how long a prompt plays; 0: instantly
	active  int                      // Plays in progress
}

// playRecord is one call of Play.
type playRecord struct {
	prompts   []string
	cancelled bool // Play's context ended before the prompts did
}

func newScriptChannel() *scriptChannel {
	return &scriptChannel{
		digits:  make(chan media.Digit, 64),
		press:   make(map[string][]string),
		starts:  make(map[string]int),
		lengths: make(map[string]time.Duration),
	}
}

// onPrompt makes the caller press keys when prompt starts: the first start
// presses keys[0], the second keys[1], …; "" presses nothing.
func (c *scriptChannel) onPrompt(prompt string, keys ...string) *scriptChannel {
	c.press[prompt] = keys
	return c
}

// long makes prompt take d to play.
func (c *scriptChannel) long(prompt string, d time.Duration) *scriptChannel {
	c.lengths[prompt] = d
	return c
}

func (c *scriptChannel) pressKeys(keys string) {
	for i := 0; i < len(keys); i++ {
		c.digits <- media.Digit{Key: keys[i], Source: media.DigitRFC4733}
	}
}

func (c *scriptChannel) Digits() <-chan media.Digit { return c.digits }

func (c *scriptChannel) Play(ctx context.Context, prompts ...string) error {
	c.mu.Lock()
	c.active++
	idx := len(c.plays)
	c.plays = append(c.plays, playRecord{prompts: prompts})
	var length time.Duration
	var keys string
	for _, p := range prompts {
		length += c.lengths[p]
		n := c.starts[p]
		c.starts[p]++
		if n < len(c.press[p]) {
			keys += c.press[p][n]
		}
	}
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.active--
		c.mu.Unlock()
	}()
	c.pressKeys(keys)
	if length == 0 {
		return ctx.Err()
	}
	t := time.NewTimer(length)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		c.mu.Lock()
		c.plays[idx].cancelled = true
		c.mu.Unlock()
		return ctx.Err()
	}
}

// played returns every prompt played, in order.
func (c *scriptChannel) played() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, p := range c.plays {
		out = append(out, p.prompts...)
	}
	return out
}

func (c *scriptChannel) records() []playRecord {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]playRecord(nil), c.plays...)
}

func (c *scriptChannel) playing() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.active
}

// queueCall is one hand-over to the test queue.
type queueCall struct {
	skill    string
	priority int
}

// testQueue records hand-overs and answers with next.
type testQueue struct {
	mu    sync.Mutex
	calls []queueCall
	reqs  []QueueRequest
	next  string
}

func (q *testQueue) Queue(ctx context.Context, ch Channel, call *Call, req QueueRequest) (string, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.calls = append(q.calls, queueCall{req.Skill, req.Priority})
	q.reqs = append(q.reqs, req)
	next := q.next
	q.next = "" // hand back once at most
	return next, nil
}

func (q *testQueue) got() []queueCall {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]queueCall(nil), q.calls...)
}

// fastTimeouts runs flow timeouts 100 times faster: a 5 s menu timeout
// takes 50 ms.
func fastTimeouts(d time.Duration) <-chan time.Time { return time.After(d / 100) }

// checkGoroutines fails the test if it leaves goroutines behind.
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(2 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				t.Errorf("goroutines: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// logBuffer collects JSON log lines for assertions.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logBuffer) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// lines returns the decoded log lines.
func (l *logBuffer) lines(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// TestMediaChannelStartPlay: a media channel plays by name without a
// goroutine per playback; an unknown name ends the playback at once with
// an error that names it, and a Stop ends a long prompt.
func TestMediaChannelStartPlay(t *testing.T) {
	ports, err := media.NewPortPool(47200, 47203)
	if err != nil {
		t.Fatal(err)
	}
	peer, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	sess, err := media.NewSession(media.SessionConfig{
		Ports: ports, LocalIP: net.IPv4(127, 0, 0, 1), Law: media.ULaw,
		Remote: peer.LocalAddr().(*net.UDPAddr), Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	sess.Start()
	lib := media.NewLibrary()
	lib.Add(media.NewPrompt("beep", make([]int16, 3*media.FrameSamples)))
	lib.Add(media.NewPrompt("long", make([]int16, 250*media.FrameSamples)))
	ch := NewMediaChannel(sess, lib)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	if err := <-StartPlay(ctx, ch, "beep", "nosuch").Done(); err == nil || !strings.Contains(err.Error(), `"nosuch"`) {
		t.Errorf("playing an unknown prompt = %v, want an error naming it", err)
	}
	before := runtime.NumGoroutine()
	pb := StartPlay(ctx, ch, "beep")
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("StartPlay on a media channel started %d goroutines", n-before)
	}
	if err := <-pb.Done(); err != nil {
		t.Errorf("beep = %v", err)
	}
	pb = StartPlay(ctx, ch, "long")
	time.Sleep(60 * time.Millisecond)
	pb.Stop()
	select {
	case err := <-pb.Done():
		if !errors.Is(err, context.Canceled) {
			t.Errorf("stopped playback = %v, want context.Canceled", err)
		}
	case <-time.After(time.Second):
		t.Fatal("Stop did not end a 5 s prompt")
	}
}
