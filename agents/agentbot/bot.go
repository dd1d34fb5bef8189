// Package agentbot is a programmable agent: it logs in over HTTP, speaks the
// documented agent protocol (docs/agent-protocol.md) over the WebSocket,
// and carries audio both ways on a pion PeerConnection, as a browser would.
// Tests and the load generator use it; it uses nothing of ivrd but the
// public protocol.
package agentbot

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"
	"github.com/zaf/g711"
)

// Config configures a Bot.
type Config struct {
	BaseURL  string // e.g. http://127.0.0.1:8080
	Username string
	Password string
	// Tone is the frequency (Hz) the bot "says" into calls; 0: silence.
	Tone float64
	// Say, when set, fills each 20 ms PCMU payload the bot sends instead of
	// the Tone (the load generator stamps its audio this way). It is called
	// on the sending goroutine just before the packet leaves.
	Say func(payload []byte)
	// OnAudio, when set, is given every RTP packet the bot receives instead
	// of the bot keeping it (Audio stays empty): when it arrived, its G.711
	// payload (valid only until OnAudio returns) and whether the law is
	// A-law rather than µ-law. It is called on the track's reader goroutine
	// and must return quickly. A load generator reads what it needs this
	// way and keeps nothing per packet.
	OnAudio func(at time.Time, payload []byte, alaw bool)
	// QuietIdle sends audio only from an offered call to its end, as a
	// softphone that attaches the microphone per call; by default the bot
	// sends every 20 ms while connected, as the agent page does today.
	QuietIdle bool
	Logger    *slog.Logger
}

// Message is a protocol message as received: its type and every field.
type Message map[string]any

// Type is the message's type.
func (m Message) Type() string { s, _ := m["type"].(string); return s }

// Str returns a string field.
func (m Message) Str(k string) string { s, _ := m[k].(string); return s }

// Frame is 20 ms of audio the bot received, with when it arrived.
type Frame struct {
	At  time.Time
	PCM []int16
}

// Bot is one logged-in agent.
type Bot struct {
	cfg   Config
	log   *slog.Logger
	token string
	ws    *websocket.Conn
	api   *webrtc.API

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	msgs   []Message
	cond   chan struct{} // closed and replaced on every new message
	pc     *webrtc.PeerConnection
	frames []Frame

	inCall atomic.Bool // from call_offered to call_ended (QuietIdle)
}

// Login logs in and returns the session token, or an error carrying the
// HTTP status.
func Login(ctx context.Context, baseURL, user, password string) (string, error) {
	body, _ := json.Marshal(map[string]string{"username": user, "password": password})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/api/v1/login", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("login: %w", err)
	}
	defer res.Body.Close()
	var out struct {
		Token string `json:"token"`
		Error string `json:"error"`
	}
	_ = json.NewDecoder(res.Body).Decode(&out)
	if res.StatusCode != http.StatusOK {
		return "", &StatusError{Status: res.StatusCode, Message: out.Error}
	}
	return out.Token, nil
}

// Logout ends the session of token, as the page's "Log out" does.
func Logout(ctx context.Context, baseURL, token string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, baseURL+"/api/v1/logout", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("logout: %w", err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusNoContent {
		return &StatusError{Status: res.StatusCode, Message: "logout refused"}
	}
	return nil
}

// StatusError is an HTTP refusal.
type StatusError struct {
	Status  int
	Message string
}

func (e *StatusError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.Status, e.Message) }

// Start logs in and opens the signalling connection. It does not change
// the agent's state: call SetState.
func Start(ctx context.Context, cfg Config) (*Bot, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	token, err := Login(ctx, cfg.BaseURL, cfg.Username, cfg.Password)
	if err != nil {
		return nil, err
	}
	return Connect(ctx, cfg, token)
}

// Connect opens a signalling connection with an existing token (a second
// "tab", or a reconnect).
func Connect(ctx context.Context, cfg Config, token string) (*Bot, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	wsURL := "ws" + strings.TrimPrefix(cfg.BaseURL, "http") + "/api/v1/agent/ws"
	ws, _, err := websocket.Dial(ctx, wsURL, &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + token}},
	})
	if err != nil {
		return nil, fmt.Errorf("agentbot: connect %s: %w", wsURL, err)
	}
	ws.SetReadLimit(1 << 20)
	api, err := newAPI()
	if err != nil {
		ws.CloseNow()
		return nil, err
	}
	bctx, cancel := context.WithCancel(context.Background())
	b := &Bot{cfg: cfg, log: cfg.Logger.With("bot", cfg.Username), token: token, ws: ws, api: api,
		ctx: bctx, cancel: cancel, cond: make(chan struct{})}
	b.wg.Add(1)
	go b.readLoop()
	return b, nil
}

// Token is the bot's session token.
func (b *Bot) Token() string { return b.token }

func newAPI() (*webrtc.API, error) {
	m := &webrtc.MediaEngine{}
	for _, c := range []struct {
		mime string
		pt   webrtc.PayloadType
	}{{webrtc.MimeTypePCMU, 0}, {webrtc.MimeTypePCMA, 8}} {
		if err := m.RegisterCodec(webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: c.mime, ClockRate: 8000, Channels: 1},
			PayloadType:        c.pt,
		}, webrtc.RTPCodecTypeAudio); err != nil {
			return nil, err
		}
	}
	se := webrtc.SettingEngine{}
	se.SetIncludeLoopbackCandidate(true)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	return webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithSettingEngine(se)), nil
}

func (b *Bot) readLoop() {
	defer b.wg.Done()
	for {
		_, data, err := b.ws.Read(b.ctx)
		if err != nil {
			b.record(Message{"type": "closed", "error": err.Error()})
			return
		}
		var m Message
		if err := json.Unmarshal(data, &m); err != nil {
			b.log.Warn("undecodable message", "data", string(data))
			continue
		}
		switch m.Type() {
		case "offer":
			if err := b.answer(m.Str("sdp")); err != nil {
				b.log.Error("answer the offer", "error", err)
			}
		case "call_offered":
			b.inCall.Store(true)
		case "call_ended":
			b.inCall.Store(false)
		}
		b.record(m)
	}
}

func (b *Bot) record(m Message) {
	b.mu.Lock()
	b.msgs = append(b.msgs, m)
	close(b.cond)
	b.cond = make(chan struct{})
	b.mu.Unlock()
}

// Messages returns every message received so far.
func (b *Bot) Messages() []Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Message(nil), b.msgs...)
}

// Wait returns the first message received at or after index from (0: any)
// that match accepts, waiting for it until ctx ends. It returns the
// message's index too, so a test can wait for what comes after it.
func (b *Bot) Wait(ctx context.Context, from int, match func(Message) bool) (Message, int, error) {
	for {
		b.mu.Lock()
		for i := from; i < len(b.msgs); i++ {
			if match(b.msgs[i]) {
				m := b.msgs[i]
				b.mu.Unlock()
				return m, i, nil
			}
		}
		cond := b.cond
		b.mu.Unlock()
		select {
		case <-cond:
		case <-ctx.Done():
			return nil, 0, fmt.Errorf("agentbot %s: waiting: %w (received %v)", b.cfg.Username, ctx.Err(), b.types())
		}
	}
}

// WaitType waits for a message of a type.
func (b *Bot) WaitType(ctx context.Context, from int, typ string) (Message, int, error) {
	return b.Wait(ctx, from, func(m Message) bool { return m.Type() == typ })
}

// WaitState waits for a state (or hello) message with the state.
func (b *Bot) WaitState(ctx context.Context, from int, state string) (Message, int, error) {
	return b.Wait(ctx, from, func(m Message) bool {
		return (m.Type() == "state" || m.Type() == "hello") && m.Str("state") == state
	})
}

func (b *Bot) types() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, m := range b.msgs {
		out = append(out, m.Type()+":"+m.Str("state")+m.Str("reason"))
	}
	return out
}

// Send sends one message (any JSON value; raw strings are sent as they are).
func (b *Bot) Send(ctx context.Context, v any) error {
	var data []byte
	switch x := v.(type) {
	case string:
		data = []byte(x)
	case []byte:
		data = x
	default:
		var err error
		if data, err = json.Marshal(v); err != nil {
			return err
		}
	}
	return b.ws.Write(ctx, websocket.MessageText, data)
}

// SetState chooses available, not_ready (with a reason) or offline.
func (b *Bot) SetState(ctx context.Context, state, reason string) error {
	return b.Send(ctx, map[string]string{"type": "state", "state": state, "reason": reason})
}

// Call sends a call action: accept, decline, hangup.
func (b *Bot) Call(ctx context.Context, action, callID string) error {
	return b.Send(ctx, map[string]string{"type": action, "call_id": callID})
}

// WrapUpDone ends wrap-up.
func (b *Bot) WrapUpDone(ctx context.Context, callID, disposition, notes string) error {
	return b.Send(ctx, map[string]string{"type": "wrapup_done", "call_id": callID, "disposition": disposition, "notes": notes})
}

// answer takes the server's offer: a new PeerConnection (the old one is
// closed), audio out (the tone) and in (recorded), a complete answer.
func (b *Bot) answer(sdp string) error {
	pc, err := b.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return err
	}
	track, err := webrtc.NewTrackLocalStaticSample(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000, Channels: 1}, "audio", "agentbot")
	if err != nil {
		pc.Close()
		return err
	}
	if _, err := pc.AddTrack(track); err != nil {
		pc.Close()
		return err
	}
	pc.OnTrack(func(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		alaw := strings.EqualFold(t.Codec().MimeType, webrtc.MimeTypePCMA)
		buf := make([]byte, 1500)
		var pkt rtp.Packet // reused: its Payload points into buf
		for {
			n, _, err := t.Read(buf)
			if err != nil {
				return
			}
			if err := pkt.Unmarshal(buf[:n]); err != nil {
				continue
			}
			at := time.Now()
			if b.cfg.OnAudio != nil {
				b.cfg.OnAudio(at, pkt.Payload, alaw)
				continue
			}
			pcm := make([]int16, len(pkt.Payload))
			for i, v := range pkt.Payload {
				if alaw {
					pcm[i] = g711.DecodeAlawFrame(v)
				} else {
					pcm[i] = g711.DecodeUlawFrame(v)
				}
			}
			b.mu.Lock()
			b.frames = append(b.frames, Frame{At: at, PCM: pcm})
			b.mu.Unlock()
		}
	})
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: sdp}); err != nil {
		pc.Close()
		return err
	}
	ans, err := pc.CreateAnswer(nil)
	if err != nil {
		pc.Close()
		return err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(ans); err != nil {
		pc.Close()
		return err
	}
	<-gathered
	b.mu.Lock()
	old := b.pc
	b.pc = pc
	b.mu.Unlock()
	if old != nil {
		old.Close()
	}
	b.wg.Add(1)
	go b.speak(pc, track)
	return b.Send(b.ctx, map[string]string{"type": "answer", "sdp": pc.LocalDescription().SDP})
}

// speak sends the tone (or silence) every 20 ms while pc lives.
func (b *Bot) speak(pc *webrtc.PeerConnection, track *webrtc.TrackLocalStaticSample) {
	defer b.wg.Done()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	var phase float64
	buf := make([]byte, 160)
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-t.C:
		}
		if pc.ConnectionState() == webrtc.PeerConnectionStateClosed {
			return
		}
		if b.cfg.QuietIdle && !b.inCall.Load() {
			continue
		}
		if b.cfg.Say != nil {
			b.cfg.Say(buf)
		} else {
			b.tone(buf, &phase)
		}
		if err := track.WriteSample(media.Sample{Data: buf, Duration: 20 * time.Millisecond}); err != nil && !errors.Is(err, context.Canceled) {
			b.log.Debug("write sample", "error", err)
		}
	}
}

// tone fills buf with the next 20 ms of the Tone (or silence), in PCMU.
func (b *Bot) tone(buf []byte, phase *float64) {
	for i := range buf {
		v := 0.0
		if b.cfg.Tone > 0 {
			v = 0.3 * 32767 * math.Sin(*phase)
			*phase += 2 * math.Pi * b.cfg.Tone / 8000
		}
		buf[i] = g711.EncodeUlawFrame(int16(v))
	}
}

// Audio returns the frames received since index from, and the next index
// (none with Config.OnAudio).
func (b *Bot) Audio(from int) ([]Frame, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if from > len(b.frames) {
		from = len(b.frames)
	}
	return append([]Frame(nil), b.frames[from:]...), len(b.frames)
}

// Connected reports whether the bot's PeerConnection is connected.
func (b *Bot) Connected() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pc != nil && b.pc.ConnectionState() == webrtc.PeerConnectionStateConnected
}

// DropAudio closes the PeerConnection without a word, as a crashed
// browser would.
func (b *Bot) DropAudio() {
	b.mu.Lock()
	pc := b.pc
	b.pc = nil
	b.mu.Unlock()
	if pc != nil {
		pc.Close()
	}
}

// Close closes the WebSocket and the audio and waits for the goroutines.
func (b *Bot) Close() {
	b.cancel()
	b.ws.CloseNow()
	b.DropAudio()
	b.wg.Wait()
}

// CloseSignalling drops only the WebSocket (the audio stays), as a network
// blip would.
func (b *Bot) CloseSignalling() { b.ws.CloseNow() }
