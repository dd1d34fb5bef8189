package web

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"ivrd/queue"
)

// The supervisor's live view: GET /api/v1/wallboard/events, a stream of
// Server-Sent Events carrying every skill's figures (as /api/v1/queues)
// and every agent (as /api/v1/agents) once a second.

// wallboardSnapshot is the data of one `snapshot` event.
type wallboardSnapshot struct {
	Queues []queue.Report `json:"queues"`
	Agents []agentJSON    `json:"agents"`
	At     time.Time      `json:"at"`
}

// wallboardFrame is one event ready to send.
type wallboardFrame struct {
	name string // snapshot, or unavailable when Redis does not answer
	data []byte
	err  error // why unavailable
}

// Wallboard timing defaults.
const (
	wallboardEvery     = time.Second      // a snapshot this often
	wallboardHeartbeat = 15 * time.Second // a comment when nothing else was sent
	wallboardRecheck   = 30 * time.Second // the session is checked again this often
)

// wallboard fans one Redis read per interval out to every open stream:
// ten supervisors watching cost what one does. The reader runs only
// while someone watches; the last stream to close stops it.
type wallboard struct {
	s         *Server
	every     time.Duration
	heartbeat time.Duration
	recheck   time.Duration

	mu   sync.Mutex
	subs map[chan wallboardFrame]struct{}
	stop context.CancelFunc // the reader's; nil when it is not running
	done chan struct{}      // closed when the current reader has returned
}

func newWallboard(s *Server) *wallboard {
	return &wallboard{
		s: s, every: wallboardEvery, heartbeat: wallboardHeartbeat, recheck: wallboardRecheck,
		subs: make(map[chan wallboardFrame]struct{}),
	}
}

// join subscribes a stream, starting the reader if it is the first;
// leave unsubscribes it, stopping the reader if it was the last.
func (wb *wallboard) join() (ch chan wallboardFrame, leave func()) {
	ch = make(chan wallboardFrame, 1)
	wb.mu.Lock()
	defer wb.mu.Unlock()
	wb.subs[ch] = struct{}{}
	if wb.stop == nil {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		wb.stop, wb.done = cancel, done
		go func() {
			defer close(done)
			wb.poll(ctx)
		}()
	}
	return ch, func() {
		wb.mu.Lock()
		defer wb.mu.Unlock()
		delete(wb.subs, ch)
		if len(wb.subs) == 0 && wb.stop != nil {
			wb.stop()
			wb.stop = nil
		}
	}
}

// poll reads the wallboard every interval and hands the result to every
// stream, replacing what a slow stream has not sent yet (it only ever
// needs the newest).
func (wb *wallboard) poll(ctx context.Context) {
	t := time.NewTicker(wb.every)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		f := wb.read(ctx)
		if ctx.Err() != nil {
			return
		}
		if bad := f.name != "snapshot"; bad != failing {
			failing = bad
			if bad {
				wb.s.log.Warn("wallboard: queue state unavailable", "error", f.err)
			} else {
				wb.s.log.Info("wallboard: queue state available again")
			}
		}
		wb.mu.Lock()
		for ch := range wb.subs {
			select {
			case ch <- f:
			default:
				select { // full: drop the older frame
				case <-ch:
				default:
				}
				select {
				case ch <- f:
				default:
				}
			}
		}
		wb.mu.Unlock()
	}
}

// read builds one event: a snapshot, or `unavailable` with the error.
func (wb *wallboard) read(ctx context.Context) wallboardFrame {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	snap, err := wb.s.wallboardSnapshot(ctx)
	if err != nil {
		data, _ := json.Marshal(map[string]string{"error": "queue state unavailable: " + err.Error()})
		return wallboardFrame{name: "unavailable", data: data, err: err}
	}
	data, err := json.Marshal(snap)
	if err != nil { // cannot happen: plain data
		data, _ = json.Marshal(map[string]string{"error": err.Error()})
		return wallboardFrame{name: "unavailable", data: data, err: err}
	}
	return wallboardFrame{name: "snapshot", data: data}
}

// wallboardSnapshot reads every skill's report and every agent.
func (s *Server) wallboardSnapshot(ctx context.Context) (wallboardSnapshot, error) {
	reps, err := s.cfg.Queue.Reports(ctx)
	if err != nil {
		return wallboardSnapshot{}, err
	}
	as, err := s.cfg.Queue.Store().Agents(ctx)
	if err != nil {
		return wallboardSnapshot{}, err
	}
	now := time.Now()
	return wallboardSnapshot{Queues: reps, Agents: toAgentsJSON(as, now), At: now.UTC()}, nil
}

// toAgentsJSON is agents as /api/v1/agents shows them.
func toAgentsJSON(as []queue.Agent, now time.Time) []agentJSON {
	out := make([]agentJSON, 0, len(as))
	for _, a := range as {
		out = append(out, agentJSON{
			ID: a.ID, Name: a.Name, Skills: a.Skills, State: string(a.State), Since: a.Since.UTC(),
			InStateS: float64(now.Sub(a.Since).Round(time.Second) / time.Second), Reason: a.Reason, Call: a.Call,
		})
	}
	return out
}

// serve is GET /api/v1/wallboard/events: a `snapshot` event at once, then
// one every second; `unavailable` instead while Redis does not answer;
// `end` when the session is over (the page then asks for a login). A
// comment goes out when nothing else did for a while.
func (wb *wallboard) serve(w http.ResponseWriter, r *http.Request) {
	ch, leave := wb.join()
	defer leave()
	first := wb.read(r.Context())
	st, err := startSSE(w)
	if err != nil {
		wb.s.log.Warn("wallboard stream", "error", err)
		return
	}
	if st.event(first.name, first.data) != nil {
		return
	}
	hb := time.NewTicker(wb.heartbeat / 2)
	defer hb.Stop()
	recheck := time.NewTicker(wb.recheck)
	defer recheck.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-wb.s.cfg.Done:
			_ = st.event("end", []byte(`{"reason":"server shutting down"}`))
			return
		case f := <-ch:
			if st.event(f.name, f.data) != nil {
				return
			}
		case <-hb.C:
			if st.idle() >= wb.heartbeat/2 && st.comment("heartbeat") != nil {
				return
			}
		case <-recheck.C:
			// A session ended (logout, expiry, password change) or a role
			// taken away ends the stream; Redis briefly away does not.
			if _, status, msg := wb.s.authorize(r, RoleSupervisor); status == http.StatusUnauthorized || status == http.StatusForbidden {
				data, _ := json.Marshal(map[string]any{"reason": msg, "status": status})
				_ = st.event("end", data)
				return
			}
		}
	}
}
