package web

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"ivrd/accounts"
)

// SessionCookie is the name of the cookie that carries a browser's session
// token.
const SessionCookie = "ivrd_session"

type userKey struct{}

// UserFrom returns the user a request was authorized for: handlers behind
// a role check (and the WebSocket handler) find it in the request's
// context. False when the server runs without accounts.
func UserFrom(ctx context.Context) (accounts.User, bool) {
	u, ok := ctx.Value(userKey{}).(accounts.User)
	return u, ok
}

// WithUser returns ctx carrying u, as the route wrapper does (for tests of
// handlers that read UserFrom).
func WithUser(ctx context.Context, u accounts.User) context.Context {
	return context.WithValue(ctx, userKey{}, u)
}

// Sessions is the Authorizer on accounts' sessions: the token comes from
// `Authorization: Bearer …` (programs) or the session cookie (browsers).
// Requests that change state and are authenticated by the cookie must come
// from ivrd's own pages (Origin or Referer), so another site cannot make a
// logged-in browser act (CSRF); Bearer requests cannot be forged that way
// and are exempt.
type Sessions struct {
	Accounts *accounts.Store
	Logger   *slog.Logger // default slog.Default()
}

// Authorize implements Authorizer.
func (a *Sessions) Authorize(r *http.Request, need Role) int {
	_, status, _ := a.authorize(r, need)
	return status
}

// authorize returns the user and 0, or the status to answer and why.
func (a *Sessions) authorize(r *http.Request, need Role) (accounts.User, int, string) {
	token, fromCookie, ok := credentials(r)
	if !ok {
		return accounts.User{}, http.StatusUnauthorized, "log in first"
	}
	if fromCookie && changesState(r) && !sameOriginStrict(r) {
		return accounts.User{}, http.StatusForbidden, "cross-site request refused: a request made with the session cookie must come from ivrd's own pages (Origin or Referer)"
	}
	u, err := a.Accounts.Authenticate(r.Context(), token)
	switch {
	case errors.Is(err, accounts.ErrNoSession):
		return accounts.User{}, http.StatusUnauthorized, "session expired or unknown: log in again"
	case err != nil:
		a.logger().Warn("authenticate", "method", r.Method, "path", r.URL.Path, "error", err)
		return accounts.User{}, http.StatusServiceUnavailable, "sessions unavailable for now (the server log says why)"
	}
	if !u.Role.Allows(accounts.Role(need)) {
		return u, http.StatusForbidden, "needs the " + string(need) + " role"
	}
	return u, 0, ""
}

func (a *Sessions) logger() *slog.Logger {
	if a.Logger != nil {
		return a.Logger
	}
	return slog.Default()
}

// credentials finds the session token: the Authorization header when there
// is one (a malformed one is not replaced by the cookie), else the cookie.
func credentials(r *http.Request) (token string, fromCookie, ok bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, found := strings.Cut(h, " ")
		tok = strings.TrimSpace(tok)
		if !found || !strings.EqualFold(scheme, "Bearer") || tok == "" {
			return "", false, false
		}
		return tok, false, true
	}
	if c, err := r.Cookie(SessionCookie); err == nil && c.Value != "" {
		return c.Value, true, true
	}
	return "", false, false
}

// changesState: every method but the safe ones (RFC 9110 §9.2.1).
func changesState(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// SameOrigin reports whether a browser's request comes from ivrd's own
// pages: its Origin header names this server (scheme https when served
// over TLS, same host and port). A request without Origin is not from a
// browser's cross-origin fetch or WebSocket (browsers always send it
// there) and passes. For the WebSocket handshake, whose cookie a browser
// sends from any site.
func SameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	return o == "" || sameHost(o, r)
}

// sameOriginStrict is the CSRF check for state changes carried by the
// cookie: Origin, or failing that Referer, must name this server; a
// request with neither is refused.
func sameOriginStrict(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" {
		return sameHost(o, r)
	}
	if ref := r.Header.Get("Referer"); ref != "" {
		return sameHost(ref, r)
	}
	return false
}

// sameHost reports whether the URL (an Origin, or a Referer) points at the
// host:port the request was sent to. "null" (sandboxed frames, file://)
// and other schemes never match.
func sameHost(raw string, r *http.Request) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return false
	}
	if r.TLS != nil && u.Scheme != "https" {
		return false
	}
	// Browsers leave default ports out of both Origin and Host.
	return strings.EqualFold(u.Host, r.Host)
}

// authorize runs the configured Authorizer for a route; with sessions, the
// user goes into the request's context for the handler.
func (s *Server) authorize(r *http.Request, need Role) (*http.Request, int, string) {
	if a, ok := s.cfg.Auth.(*Sessions); ok {
		u, status, msg := a.authorize(r, need)
		if status == 0 {
			r = r.WithContext(WithUser(r.Context(), u))
		}
		return r, status, msg
	}
	switch status := s.cfg.Auth.Authorize(r, need); status {
	case 0:
		return r, 0, ""
	case http.StatusUnauthorized:
		return r, status, "log in first"
	case http.StatusForbidden:
		return r, status, "needs the " + string(need) + " role"
	default:
		return r, status, http.StatusText(status)
	}
}
