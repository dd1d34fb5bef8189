package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"ivrd/queue"
)

// Audit actions: what a user did with a recording.
const (
	AuditView     = "view"     // opened its details (GET /api/v1/recordings/{id})
	AuditListen   = "listen"   // started playing it in the browser
	AuditDownload = "download" // fetched the file to keep (?download=1)
)

// AuditEntry is one line of the audit trail: who did what with which
// recording, when and from where.
type AuditEntry struct {
	At          time.Time `json:"at"`
	User        string    `json:"user"`
	Action      string    `json:"action"`
	RecordingID string    `json:"recording_id"`
	RemoteAddr  string    `json:"remote_addr"`
}

// AuditLog keeps the audit trail, newest first.
type AuditLog interface {
	// Append adds an entry.
	Append(ctx context.Context, e AuditEntry) error
	// List returns up to limit entries from offset (0 is the newest) and
	// how many there are in all.
	List(ctx context.Context, offset, limit int) (entries []AuditEntry, total int, err error)
}

// DefaultAuditCap is how many entries RedisAudit keeps by default.
const DefaultAuditCap = 100_000

// RedisAudit is the AuditLog in Redis: one list, `<prefix>:{q}:audit`, of
// JSON entries, newest first, trimmed to Cap entries (the oldest go).
// Every ivrd sharing the Redis writes to the same trail.
type RedisAudit struct {
	rdb redis.UniversalClient
	key string
	cap int
}

// NewRedisAudit returns the audit trail under the queue store's prefix;
// cap ≤ 0 means DefaultAuditCap.
func NewRedisAudit(st *queue.Store, cap int) *RedisAudit {
	if cap <= 0 {
		cap = DefaultAuditCap
	}
	return &RedisAudit{rdb: st.Client(), key: st.Key("audit"), cap: cap}
}

// Append implements AuditLog: LPUSH and LTRIM in one transaction.
func (a *RedisAudit) Append(ctx context.Context, e AuditEntry) error {
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, err = a.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.LPush(ctx, a.key, data)
		p.LTrim(ctx, a.key, 0, int64(a.cap-1))
		return nil
	})
	if err != nil {
		return fmt.Errorf("audit: append: %w", err)
	}
	return nil
}

// List implements AuditLog.
func (a *RedisAudit) List(ctx context.Context, offset, limit int) ([]AuditEntry, int, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var rng *redis.StringSliceCmd
	var n *redis.IntCmd
	_, err := a.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		rng = p.LRange(ctx, a.key, int64(offset), int64(offset+limit-1))
		n = p.LLen(ctx, a.key)
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, 0, fmt.Errorf("audit: list: %w", err)
	}
	out := make([]AuditEntry, 0, len(rng.Val()))
	for _, s := range rng.Val() {
		var e AuditEntry
		if json.Unmarshal([]byte(s), &e) != nil {
			continue // not ours; never fails the whole page
		}
		out = append(out, e)
	}
	return out, int(n.Val()), nil
}

// auditLog is the configured trail, or the one in the queue's Redis.
func (s *Server) auditLog() AuditLog {
	if s.cfg.Audit != nil {
		return s.cfg.Audit
	}
	return NewRedisAudit(s.cfg.Queue.Store(), s.cfg.AuditCap)
}

// audit records that the request's user did action with a recording. The
// trail failing does not stop the user (a supervisor reviewing a call
// while Redis hiccups); it is logged as an error instead.
func (s *Server) audit(r *http.Request, action, recordingID string) {
	e := AuditEntry{At: time.Now().UTC(), Action: action, RecordingID: recordingID, RemoteAddr: clientAddr(r)}
	if u, ok := UserFrom(r.Context()); ok {
		e.User = u.Name
	}
	if err := s.auditLog().Append(r.Context(), e); err != nil {
		s.log.Error("audit trail not written", "user", e.User, "action", action, "recording", recordingID, "error", err)
	}
}

// auditPage is the answer of GET /api/v1/audit.
type auditPage struct {
	Entries    []AuditEntry `json:"entries"`
	Total      int          `json:"total"`
	Offset     int          `json:"offset"`
	NextOffset *int         `json:"next_offset"` // null on the last page
}

// Audit page sizes.
const (
	auditDefaultLimit = 50
	auditMaxLimit     = 500
)

// auditList is GET /api/v1/audit?offset=&limit=: the trail, newest first.
func (s *Server) auditList(w http.ResponseWriter, r *http.Request) {
	offset, err := queryInt(r, "offset", 0, 0, 1<<30)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	limit, err := queryInt(r, "limit", auditDefaultLimit, 1, auditMaxLimit)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	entries, total, err := s.auditLog().List(r.Context(), offset, limit)
	if err != nil {
		s.log.Warn("GET /api/v1/audit", "error", err)
		writeError(w, http.StatusServiceUnavailable, "audit trail unavailable: "+err.Error())
		return
	}
	p := auditPage{Entries: entries, Total: total, Offset: offset}
	if next := offset + limit; next < total {
		p.NextOffset = &next
	}
	writeJSON(w, http.StatusOK, p)
}

// queryInt reads an integer query parameter within [lo, hi]; def when
// absent.
func queryInt(r *http.Request, name string, def, lo, hi int) (int, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("%s: want a whole number from %d to %d, got %q", name, lo, hi, v)
	}
	return n, nil
}
