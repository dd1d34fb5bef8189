package web

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"time"

	"ivrd/recordings"
)

// Recordings for supervisors: GET /api/v1/recordings (search),
// /api/v1/recordings/{id} (metadata) and /api/v1/recordings/{id}/audio
// (the WAV, with Range). Only ids of the library's form (32 lowercase hex
// digits) are looked up, and only the library opens files: a path never
// comes from the request.

// errNoRecordings: this ivrd was started without a recordings library.
const errNoRecordings = "this ivrd keeps no recordings (recordings are not configured)"

// Recordings page sizes.
const (
	recordingsDefaultLimit = 50
	recordingsMaxLimit     = 500
)

// recordingsPage is the answer of GET /api/v1/recordings.
type recordingsPage struct {
	Recordings []recordings.Meta `json:"recordings"`
	Total      int               `json:"total"`
	Offset     int               `json:"offset"`
	NextOffset *int              `json:"next_offset"` // null on the last page
}

// recordingsList is GET /api/v1/recordings?from&to&agent&caller&skill&
// disposition&min_duration_s&offset&limit: newest first.
func (s *Server) recordingsList(w http.ResponseWriter, r *http.Request) {
	lib := s.cfg.Recordings
	if lib == nil {
		writeError(w, http.StatusNotFound, errNoRecordings)
		return
	}
	q, err := recordingsQuery(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	p := lib.List(q)
	out := recordingsPage{Recordings: p.Recordings, Total: p.Total, Offset: q.Offset}
	if out.Recordings == nil {
		out.Recordings = []recordings.Meta{}
	}
	if p.NextOffset > 0 {
		out.NextOffset = &p.NextOffset
	}
	writeJSON(w, http.StatusOK, out)
}

// recordingsQuery reads the filters; an unreadable one is an error that
// names it.
func recordingsQuery(r *http.Request) (recordings.Query, error) {
	v := r.URL.Query()
	q := recordings.Query{
		Agent: v.Get("agent"), Caller: strings.TrimSpace(v.Get("caller")),
		Skill: v.Get("skill"), Disposition: v.Get("disposition"),
	}
	for _, f := range []struct {
		name string
		to   *time.Time
	}{{"from", &q.From}, {"to", &q.To}} {
		if s := v.Get(f.name); s != "" {
			t, err := time.Parse(time.RFC3339, s)
			if err != nil {
				return q, fmt.Errorf("%s: want a time like 2026-03-01T09:00:00Z (RFC 3339), got %q", f.name, s)
			}
			*f.to = t
		}
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
		return q, errors.New("from must be before to")
	}
	if s := v.Get("min_duration_s"); s != "" {
		d, err := strconv.ParseFloat(s, 64)
		if err != nil || d < 0 || d > 1e7 {
			return q, fmt.Errorf("min_duration_s: want seconds (0 or more), got %q", s)
		}
		q.MinDuration = time.Duration(d * float64(time.Second))
	}
	var err error
	if q.Offset, err = queryInt(r, "offset", 0, 0, 1<<30); err != nil {
		return q, err
	}
	if q.Limit, err = queryInt(r, "limit", recordingsDefaultLimit, 1, recordingsMaxLimit); err != nil {
		return q, err
	}
	return q, nil
}

// recordingGet is GET /api/v1/recordings/{id}: the metadata; the audit
// trail records the view.
func (s *Server) recordingGet(w http.ResponseWriter, r *http.Request) {
	lib := s.cfg.Recordings
	if lib == nil {
		writeError(w, http.StatusNotFound, errNoRecordings)
		return
	}
	id := r.PathValue("id")
	m, err := lib.Get(id)
	if err != nil {
		s.recordingError(w, r, id, err)
		return
	}
	s.audit(r, AuditView, id)
	writeJSON(w, http.StatusOK, m)
}

// recordingAudio is GET (and HEAD) /api/v1/recordings/{id}/audio: the WAV
// with Range, ETag and conditional requests (http.ServeContent);
// ?download=1 asks the browser to save it. The audit trail records a
// download, or a listen when playback starts (a request from the first
// byte; the requests of seeking are not counted), at most once a minute
// per user, recording and action.
func (s *Server) recordingAudio(w http.ResponseWriter, r *http.Request) {
	lib := s.cfg.Recordings
	if lib == nil {
		writeError(w, http.StatusNotFound, errNoRecordings)
		return
	}
	id := r.PathValue("id")
	f, info, err := lib.Open(id)
	if err != nil {
		s.recordingError(w, r, id, err)
		return
	}
	defer f.Close()
	download := r.URL.Query().Get("download") == "1"
	h := w.Header()
	h.Set("Content-Type", "audio/wav")
	h.Set("X-Content-Type-Options", "nosniff")
	// Every change of the file (a recording being written grows) is a
	// new ETag; the browser may keep what it has but asks each time.
	h.Set("ETag", fmt.Sprintf(`"%s-%x-%x"`, id, info.Size, info.ModTime.UnixNano()))
	h.Set("Cache-Control", "private, no-cache")
	disp := "inline"
	if download {
		disp = "attachment"
	}
	h.Set("Content-Disposition", fmt.Sprintf(`%s; filename="recording-%s.wav"`, disp, id))
	if r.Method == http.MethodGet && fromFirstByte(r) {
		action := AuditListen
		if download {
			action = AuditDownload
		}
		if s.firstInAMinute(r, action, id) {
			s.audit(r, action, id)
		}
	}
	http.ServeContent(w, r, "", info.ModTime, f)
}

// recordingError answers a failed lookup: 404 for an id that is not one
// or not there (never saying which), 503 otherwise.
func (s *Server) recordingError(w http.ResponseWriter, r *http.Request, id string, err error) {
	switch {
	case errors.Is(err, recordings.ErrInvalidID), errors.Is(err, recordings.ErrNotFound), errors.Is(err, fs.ErrNotExist):
		writeError(w, http.StatusNotFound, "no such recording")
	default:
		if !recordings.ValidID(id) {
			id = "(invalid)"
		}
		s.log.Warn("recording", "method", r.Method, "path", r.URL.Path, "recording", id, "error", err)
		writeError(w, http.StatusServiceUnavailable, "recording unavailable (the server log says why)")
	}
}

// fromFirstByte reports whether a request reads the file from its start:
// no Range, or a first range from byte 0 (what a player asks for when
// playback starts; seeking asks for later bytes).
func fromFirstByte(r *http.Request) bool {
	rng := r.Header.Get("Range")
	if rng == "" {
		return true
	}
	spec, ok := strings.CutPrefix(rng, "bytes=")
	if !ok {
		return true
	}
	first, _, _ := strings.Cut(spec, ",")
	start, _, _ := strings.Cut(strings.TrimSpace(first), "-")
	return start == "0"
}

// firstInAMinute reports whether this user has not done action with the
// recording within the last minute (a player fetching the start twice is
// one listen); shared by every ivrd on the Redis. When Redis cannot say,
// it answers true: an extra line beats a missing one.
func (s *Server) firstInAMinute(r *http.Request, action, id string) bool {
	user := "-"
	if u, ok := UserFrom(r.Context()); ok {
		user = u.Name
	}
	st := s.cfg.Queue.Store()
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	ok, err := st.Client().SetNX(ctx, st.Key("audit", "seen", action, id, user), 1, time.Minute).Result()
	return ok || err != nil
}
