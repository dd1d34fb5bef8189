package web

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"ivrd/accounts"
	"ivrd/agents"
	"ivrd/queue"
	"ivrd/recordings"
)

// Role is what a user may do.
type Role string

// Roles, from least to most.
const (
	RoleAgent      Role = "agent"
	RoleSupervisor Role = "supervisor"
	RoleAdmin      Role = "admin"
)

// Authorizer decides who may call a route: it returns the status to answer
// (0 to let the request through): 401 for nobody logged in, 403 for the
// wrong role.
type Authorizer interface {
	Authorize(r *http.Request, need Role) (status int)
}

// OpenAccess lets every request through (a server built without
// accounts, and tests).
type OpenAccess struct{}

// Authorize implements Authorizer.
func (OpenAccess) Authorize(*http.Request, Role) int { return 0 }

// Config configures the HTTP handler.
type Config struct {
	Queue    *queue.Queue
	Registry *prometheus.Registry // served at /metrics
	Auth     Authorizer           // default: sessions of Accounts, or OpenAccess without Accounts
	Accounts *accounts.Store      // users and sessions; serves /api/v1/login, /logout and /me
	TLS      bool                 // served over https: the session cookie is Secure
	Agents   *agents.Hub          // serves the agent signalling WebSocket; nil: none
	Logger   *slog.Logger
	// Audit keeps who listened to or downloaded which recording; nil:
	// the list `<prefix>:{q}:audit` in the queue's Redis, capped at
	// AuditCap entries (0: DefaultAuditCap).
	Audit    AuditLog
	AuditCap int
	// Recordings serves /api/v1/recordings to supervisors; nil: those
	// routes answer 404.
	Recordings *recordings.Library
	// Done, when closed (ivrd shutting down), ends the open event
	// streams, so that http.Server.Shutdown need not wait for them.
	Done <-chan struct{}
}

// Server is the HTTP handler.
type Server struct {
	cfg Config
	log *slog.Logger
	mux *http.ServeMux
}

// New builds the handler and its routes.
func New(cfg Config) (*Server, error) {
	if cfg.Queue == nil {
		return nil, errors.New("web: Config.Queue is required")
	}
	switch {
	case cfg.Auth != nil:
	case cfg.Accounts != nil:
		cfg.Auth = &Sessions{Accounts: cfg.Accounts, Logger: cfg.Logger}
	default:
		cfg.Auth = OpenAccess{}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Server{cfg: cfg, log: cfg.Logger, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /healthz", s.healthz)
	if cfg.Registry != nil {
		s.mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{Registry: cfg.Registry}))
	}
	s.route("GET /api/v1/queues", RoleAgent, s.queues)
	s.route("GET /api/v1/agents", RoleSupervisor, s.agents)
	s.route("GET /api/v1/calls", RoleSupervisor, s.calls)
	s.route("GET /api/v1/wallboard/events", RoleSupervisor, newWallboard(s).serve)
	s.route("GET /api/v1/audit", RoleSupervisor, s.auditList)
	s.route("GET /api/v1/recordings", RoleSupervisor, s.recordingsList)
	s.route("GET /api/v1/recordings/{id}", RoleSupervisor, s.recordingGet)
	s.route("GET /api/v1/recordings/{id}/audio", RoleSupervisor, s.recordingAudio)
	if cfg.Accounts != nil {
		s.mux.HandleFunc("POST /api/v1/login", s.login)
		s.mux.HandleFunc("POST /api/v1/logout", s.logout)
		s.route("GET /api/v1/me", RoleAgent, s.me)
	}
	if cfg.Agents != nil {
		ws := cfg.Agents.WSHandler(func(r *http.Request) (agents.Identity, bool) {
			u, ok := UserFrom(r.Context())
			return agents.Identity{ID: u.Name, Name: u.DisplayName, Skills: u.Skills}, ok
		}, SameOrigin)
		s.route("GET /api/v1/agent/ws", RoleAgent, func(w http.ResponseWriter, r *http.Request) {
			// Supervisors and admins rank above agents but take no calls.
			if u, _ := UserFrom(r.Context()); u.Role != accounts.RoleAgent {
				writeError(w, http.StatusForbidden, "only agents take calls")
				return
			}
			ws.ServeHTTP(w, r)
		})
	}
	pages := Pages()
	s.mux.Handle("GET /agent", pages)
	s.mux.Handle("GET /supervisor", pages)
	s.mux.Handle("GET /static/", pages)
	s.mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: "+r.Method+" "+r.URL.Path)
	})
	return s, nil
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// route registers an API handler behind the role check; the handler finds
// the user with UserFrom.
func (s *Server) route(pattern string, need Role, h http.HandlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		r, status, msg := s.authorize(r, need)
		if status != 0 {
			if status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="ivrd"`)
			}
			writeError(w, status, msg)
			return
		}
		h(w, r)
	})
}

// healthz answers 200 when ivrd can serve callers: Redis answers.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := s.cfg.Queue.Healthy(ctx); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, "unhealthy: "+err.Error()+"\n")
		return
	}
	_, _ = io.WriteString(w, "ok\n")
}

func (s *Server) queues(w http.ResponseWriter, r *http.Request) {
	reps, err := s.cfg.Queue.Reports(r.Context())
	if err != nil {
		s.log.Warn("GET /api/v1/queues", "error", err)
		writeError(w, http.StatusServiceUnavailable, "queue state unavailable: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, reps)
}

// agentJSON is an agent as the API shows it.
type agentJSON struct {
	ID       string         `json:"id"`
	Name     string         `json:"name"`
	Skills   map[string]int `json:"skills"`
	State    string         `json:"state"`
	Since    time.Time      `json:"since"`
	InStateS float64        `json:"in_state_s"`
	Reason   string         `json:"reason,omitempty"`
	Call     string         `json:"call_id,omitempty"`
}

func (s *Server) agents(w http.ResponseWriter, r *http.Request) {
	as, err := s.cfg.Queue.Store().Agents(r.Context())
	if err != nil {
		s.log.Warn("GET /api/v1/agents", "error", err)
		writeError(w, http.StatusServiceUnavailable, "agent state unavailable: "+err.Error())
		return
	}
	now := time.Now()
	out := make([]agentJSON, 0, len(as))
	for _, a := range as {
		out = append(out, agentJSON{
			ID: a.ID, Name: a.Name, Skills: a.Skills, State: string(a.State), Since: a.Since.UTC(),
			InStateS: float64(now.Sub(a.Since).Round(time.Second) / time.Second), Reason: a.Reason, Call: a.Call,
		})
	}
	writeJSON(w, http.StatusOK, out)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}
