package web

import (
	"encoding/json"
	"errors"
	"mime"
	"net"
	"net/http"
	"strconv"
	"time"

	"ivrd/accounts"
)

// loginRequest is the body of POST /api/v1/login.
type loginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// userJSON is a user as the API shows it (never the password hash).
type userJSON struct {
	Name        string         `json:"name"`
	DisplayName string         `json:"display_name"`
	Role        accounts.Role  `json:"role"`
	Skills      map[string]int `json:"skills,omitempty"`
}

func toUserJSON(u accounts.User) userJSON {
	return userJSON{Name: u.Name, DisplayName: u.Label(), Role: u.Role, Skills: u.Skills}
}

// loginResponse is the answer to a successful login.
type loginResponse struct {
	Token   string        `json:"token"`
	Role    accounts.Role `json:"role"`
	User    userJSON      `json:"user"`
	Expires time.Time     `json:"expires"`
}

// login checks a user name and password and opens a session: the token in
// the body (for programs, as a Bearer token) and in an HttpOnly,
// SameSite=Strict cookie (for browsers; Secure over TLS).
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		// Also what keeps a plain HTML form on another site from posting here.
		writeError(w, http.StatusUnsupportedMediaType, "send JSON: Content-Type: application/json")
		return
	}
	if !SameOrigin(r) {
		writeError(w, http.StatusForbidden, "cross-site login refused")
		return
	}
	var req loginRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 8<<10)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "body: want {\"username\": …, \"password\": …}: "+err.Error())
		return
	}
	if req.Username == "" || req.Password == "" {
		writeError(w, http.StatusBadRequest, "username and password are required")
		return
	}
	addr := clientAddr(r)
	who := logName(req.Username)
	sess, err := s.cfg.Accounts.Login(r.Context(), req.Username, req.Password, addr)
	var lim *accounts.LimitedError
	switch {
	case errors.As(err, &lim):
		if lim.Kind != "user" {
			who = "(not checked)"
		}
		s.log.Warn("login refused: too many attempts", "user", who, "addr", addr, "limit", lim.Kind, "retry_after", lim.RetryAfter)
		// Whole seconds, rounded up, at least 1 (RFC 9110 §10.2.3).
		secs := max(1, int((lim.RetryAfter+time.Second-1)/time.Second))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		writeError(w, http.StatusTooManyRequests, "too many login attempts for this "+lim.Kind+": try again in "+strconv.Itoa(secs)+" s")
		return
	case errors.Is(err, accounts.ErrBadCredentials):
		if errors.Is(err, accounts.ErrNoUser) {
			// Not the name as typed: it may be a password typed one field early.
			who = "(no such user)"
		}
		s.log.Warn("login failed: wrong user name or password", "user", who, "addr", addr)
		writeError(w, http.StatusUnauthorized, "wrong user name or password")
		return
	case err != nil:
		s.log.Warn("login failed", "user", who, "addr", addr, "error", err)
		writeError(w, http.StatusServiceUnavailable, "login unavailable for now (the server log says why)")
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: sess.Token, Path: "/",
		MaxAge: int(time.Until(sess.Expires) / time.Second), Expires: sess.Expires,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.cfg.TLS || r.TLS != nil,
	})
	s.log.Info("login", "user", sess.User.Name, "role", sess.User.Role, "addr", addr)
	writeJSON(w, http.StatusOK, loginResponse{Token: sess.Token, Role: sess.User.Role, User: toUserJSON(sess.User), Expires: sess.Expires.UTC()})
}

// logout ends the session of the request's token (Bearer or cookie) and
// clears the cookie. Ending a session that has ended already is not an
// error.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	token, fromCookie, ok := credentials(r)
	if !ok {
		writeError(w, http.StatusUnauthorized, "not logged in")
		return
	}
	if fromCookie && !sameOriginStrict(r) {
		writeError(w, http.StatusForbidden, "cross-site request refused: a request made with the session cookie must come from ivrd's own pages (Origin or Referer)")
		return
	}
	if err := s.cfg.Accounts.Logout(r.Context(), token); err != nil {
		s.log.Warn("logout", "error", err)
		writeError(w, http.StatusServiceUnavailable, "logout unavailable for now (the server log says why)")
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: SessionCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.cfg.TLS || r.TLS != nil,
	})
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// me answers who the session belongs to (the pages ask on load).
func (s *Server) me(w http.ResponseWriter, r *http.Request) {
	u, ok := UserFrom(r.Context())
	if !ok {
		writeError(w, http.StatusNotFound, "this server has no accounts")
		return
	}
	writeJSON(w, http.StatusOK, toUserJSON(u))
}

// clientAddr is the address login attempts are counted under: the peer's
// IP. A reverse proxy in front of ivrd makes every client one address;
// headers such as X-Forwarded-For are not trusted, since any client could
// set them to escape the limit.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// logName is a user name as typed, for a log line; names that cannot
// exist are not repeated.
func logName(name string) string {
	if accounts.ValidName(name) {
		return name
	}
	return "(invalid name)"
}
