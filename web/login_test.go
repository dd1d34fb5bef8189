package web

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/bcrypt"

	"ivrd/accounts"
	"ivrd/queue"
)

// testUsers are configuration users with their passwords (cheap hashes).
var testUsers = []struct {
	name, password string
	role           accounts.Role
	skills         map[string]int
}{
	{"agent1", "agent1-pw", accounts.RoleAgent, map[string]int{"billing": 5, "support": 3}},
	{"supervisor1", "supervisor1-pw", accounts.RoleSupervisor, nil},
	{"admin1", "admin1-pw", accounts.RoleAdmin, nil},
}

// authServer is an HTTP server with accounts on the real Redis.
type authServer struct {
	*httptest.Server
	q   *queue.Queue
	acc *accounts.Store
	rdb redis.UniversalClient
}

// newAuthServer serves the API with testUsers, sessions and login limits
// on rdb; mod adjusts the accounts' configuration, tls serves https.
func newAuthServer(t *testing.T, rdb redis.UniversalClient, tlsOn bool, mod func(*accounts.Config), log ...*slog.Logger) *authServer {
	t.Helper()
	q := newQueue(t, rdb)
	prefix := strings.TrimSuffix(q.Store().Key("x"), ":{q}:x")
	t.Cleanup(func() { // redis_rate puts "rate:" before the limiter's keys
		keys, _ := rdb.Keys(context.Background(), "rate:"+prefix+":*").Result()
		if len(keys) > 0 {
			rdb.Del(context.Background(), keys...)
		}
	})
	var users []accounts.User
	for _, u := range testUsers {
		h, err := accounts.HashPassword(u.password, bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		users = append(users, accounts.User{Name: u.name, Role: u.role, Skills: u.skills, PasswordHash: h})
	}
	cfg := accounts.Config{
		Prefix: prefix, Users: users, Cost: bcrypt.MinCost, SessionTTL: time.Hour,
		Limiter:       queue.NewLimiter(q.Store()),
		LoginsPerUser: queue.Rate{N: 5, Per: time.Minute}, LoginsPerAddress: queue.Rate{N: 20, Per: time.Minute},
	}
	if mod != nil {
		mod(&cfg)
	}
	acc, err := accounts.NewStore(rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgWeb := Config{Queue: q, Accounts: acc}
	if len(log) > 0 {
		cfgWeb.Logger = log[0]
	}
	s, err := New(cfgWeb)
	if err != nil {
		t.Fatal(err)
	}
	var srv *httptest.Server
	if tlsOn {
		srv = httptest.NewTLSServer(s)
	} else {
		srv = httptest.NewServer(s)
	}
	t.Cleanup(srv.Close)
	return &authServer{Server: srv, q: q, acc: acc, rdb: rdb}
}

// req sends one request; header pairs follow the body.
func (a *authServer) req(t *testing.T, c *http.Client, method, path, body string, header ...string) (*http.Response, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	r, err := http.NewRequest(method, a.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	if c == nil {
		c = a.Client()
	}
	res, err := c.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func loginBody(user, pw string) string {
	b, _ := json.Marshal(map[string]string{"username": user, "password": pw})
	return string(b)
}

// login logs in and returns the answer's token.
func (a *authServer) login(t *testing.T, user, pw string) string {
	t.Helper()
	res, body := a.req(t, nil, "POST", "/api/v1/login", loginBody(user, pw))
	if res.StatusCode != 200 {
		t.Fatalf("login %s: %d %s", user, res.StatusCode, body)
	}
	var out struct{ Token string }
	if err := json.Unmarshal([]byte(body), &out); err != nil || out.Token == "" {
		t.Fatalf("login %s: %v %s", user, err, body)
	}
	return out.Token
}

func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }

func TestLoginAndRoles(t *testing.T) {
	a := newAuthServer(t, realRedis(t), false, nil)
	res, body := a.req(t, nil, "POST", "/api/v1/login", loginBody("agent1", "agent1-pw"))
	if res.StatusCode != 200 {
		t.Fatalf("login: %d %s", res.StatusCode, body)
	}
	var out struct {
		Token string
		Role  string
		User  struct {
			Name        string
			DisplayName string `json:"display_name"`
			Skills      map[string]int
		}
		Expires time.Time
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Token) != 43 || out.Role != "agent" || out.User.Name != "agent1" || out.User.DisplayName != "agent1" || out.User.Skills["billing"] != 5 {
		t.Fatalf("login answer: %s", body)
	}
	if d := time.Until(out.Expires); d < 59*time.Minute || d > time.Hour {
		t.Fatalf("expires in %v; want the session TTL", d)
	}
	if strings.Contains(body, "$2a$") || strings.Contains(body, "agent1-pw") {
		t.Fatalf("login answer shows the hash or the password: %s", body)
	}
	cookies := res.Cookies()
	if len(cookies) != 1 {
		t.Fatalf("cookies %v", cookies)
	}
	c := cookies[0]
	if c.Name != SessionCookie || c.Value != out.Token || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/" || c.Secure || c.MaxAge < 3590 || c.MaxAge > 3600 {
		t.Fatalf("cookie %+v; want ivrd_session=<token>, HttpOnly, SameSite=Strict, Path=/, not Secure over http, Max-Age the TTL", c)
	}

	agent := out.Token
	sup := a.login(t, "supervisor1", "supervisor1-pw")
	admin := a.login(t, "admin1", "admin1-pw")
	for _, c := range []struct {
		who, tok, path string
		want           int
	}{
		{"anonymous", "", "/api/v1/queues", 401},
		{"anonymous", "", "/api/v1/agents", 401},
		{"anonymous", "", "/api/v1/me", 401},
		{"agent", agent, "/api/v1/queues", 200},
		{"agent", agent, "/api/v1/agents", 403},
		{"agent", agent, "/api/v1/me", 200},
		{"supervisor", sup, "/api/v1/queues", 200},
		{"supervisor", sup, "/api/v1/agents", 200},
		{"admin", admin, "/api/v1/queues", 200},
		{"admin", admin, "/api/v1/agents", 200},
		{"a made-up token", strings.Repeat("A", 43), "/api/v1/queues", 401},
	} {
		var h []string
		if c.tok != "" {
			h = bearer(c.tok)
		}
		res, body := a.req(t, nil, "GET", c.path, "", h...)
		if res.StatusCode != c.want {
			t.Errorf("%s GET %s: %d %s; want %d", c.who, c.path, res.StatusCode, body, c.want)
			continue
		}
		switch c.want {
		case 401:
			if res.Header.Get("WWW-Authenticate") == "" || !strings.Contains(body, `"error"`) {
				t.Errorf("%s GET %s: 401 without WWW-Authenticate or JSON error: %s", c.who, c.path, body)
			}
		case 403:
			if !strings.Contains(body, "needs the supervisor role") {
				t.Errorf("%s GET %s: 403 body %s", c.who, c.path, body)
			}
		}
	}
	// Malformed Authorization headers are not a way around the check.
	for _, h := range []string{"Bearer", "Basic " + agent, agent, "Bearer  "} {
		if res, _ := a.req(t, nil, "GET", "/api/v1/queues", "", "Authorization", h); res.StatusCode != 401 {
			t.Errorf("Authorization %q: %d; want 401", h, res.StatusCode)
		}
	}
	if res, body := a.req(t, nil, "GET", "/api/v1/me", "", bearer(sup)...); res.StatusCode != 200 || !strings.Contains(body, `"role": "supervisor"`) || !strings.Contains(body, `"name": "supervisor1"`) {
		t.Fatalf("GET /api/v1/me as supervisor1: %d %s", res.StatusCode, body)
	}

	// A browser: the cookie jar carries the session.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	if res, body := a.req(t, browser, "POST", "/api/v1/login", loginBody("supervisor1", "supervisor1-pw")); res.StatusCode != 200 {
		t.Fatalf("browser login: %d %s", res.StatusCode, body)
	}
	if res, body := a.req(t, browser, "GET", "/api/v1/agents", ""); res.StatusCode != 200 {
		t.Fatalf("browser GET /api/v1/agents with the cookie: %d %s", res.StatusCode, body)
	}

	// Logout ends the session: the token no longer opens anything.
	if res, body := a.req(t, nil, "POST", "/api/v1/logout", "", bearer(agent)...); res.StatusCode != 204 {
		t.Fatalf("logout: %d %s", res.StatusCode, body)
	}
	if res, _ := a.req(t, nil, "GET", "/api/v1/queues", "", bearer(agent)...); res.StatusCode != 401 {
		t.Fatalf("token after logout: %d; want 401", res.StatusCode)
	}
	if res, _ := a.req(t, nil, "GET", "/api/v1/queues", "", bearer(sup)...); res.StatusCode != 200 {
		t.Fatalf("another user's session after agent1's logout: %d", res.StatusCode)
	}
	if res, _ := a.req(t, nil, "POST", "/api/v1/logout", ""); res.StatusCode != 401 {
		t.Fatalf("logout without a session: %d; want 401", res.StatusCode)
	}
}

func TestLoginBadPassword(t *testing.T) {
	var logBuf syncBuffer
	a := newAuthServer(t, realRedis(t), false, nil, slog.New(slog.NewTextHandler(&logBuf, nil)))
	ctx := context.Background()
	sessions := func() int {
		keys, err := a.rdb.Keys(ctx, strings.TrimSuffix(a.q.Store().Key("session", "x"), "x")+"*").Result()
		if err != nil {
			t.Fatal(err)
		}
		return len(keys)
	}
	var bodies []string
	for _, c := range [][2]string{{"agent1", "agent1-pW"}, {"agent1", "supervisor1-pw"}, {"nobody", "agent1-pw"}, {"agent1 ", "agent1-pw"}} {
		res, body := a.req(t, nil, "POST", "/api/v1/login", loginBody(c[0], c[1]))
		if res.StatusCode != 401 || len(res.Cookies()) != 0 {
			t.Fatalf("login %q/%q: %d %s (cookies %v); want 401 and no cookie", c[0], c[1], res.StatusCode, body, res.Cookies())
		}
		bodies = append(bodies, body)
	}
	// The answer does not tell a wrong name from a wrong password.
	for _, b := range bodies[1:] {
		if b != bodies[0] {
			t.Fatalf("different answers for a wrong name and a wrong password:\n%s\n%s", bodies[0], b)
		}
	}
	if n := sessions(); n != 0 {
		t.Fatalf("%d sessions after failed logins", n)
	}
	// A password typed into the name field does not reach the log; a
	// known name does, and the address.
	if res, _ := a.req(t, nil, "POST", "/api/v1/login", loginBody("Tr0ub4dor", "agent1")); res.StatusCode != 401 {
		t.Fatalf("login as Tr0ub4dor: %d", res.StatusCode)
	}
	log := logBuf.String()
	for _, secret := range []string{"Tr0ub4dor", "agent1-pW", "supervisor1-pw", "$2a$"} {
		if strings.Contains(log, secret) {
			t.Fatalf("the log holds %q:\n%s", secret, log)
		}
	}
	if !strings.Contains(log, "user=agent1 addr=127.0.0.1") || !strings.Contains(log, `user="(no such user)"`) {
		t.Fatalf("log of failed logins:\n%s", log)
	}
	for _, c := range []struct {
		body, ctype string
		want        int
	}{
		{`{"username":"agent1"}`, "application/json", 400},
		{`{"username":"agent1","password":`, "application/json", 400},
		{`username=agent1&password=agent1-pw`, "application/x-www-form-urlencoded", 415},
		{loginBody("agent1", "agent1-pw"), "text/plain", 415},
	} {
		res, body := a.req(t, nil, "POST", "/api/v1/login", c.body, "Content-Type", c.ctype)
		if res.StatusCode != c.want {
			t.Errorf("login body %q (%s): %d %s; want %d", c.body, c.ctype, res.StatusCode, body, c.want)
		}
	}
	if n := sessions(); n != 0 {
		t.Fatalf("%d sessions after refused logins", n)
	}
	a.login(t, "agent1", "agent1-pw")
	if n := sessions(); n != 1 {
		t.Fatalf("%d sessions after one login", n)
	}
}

func TestLoginRateLimit(t *testing.T) {
	a := newAuthServer(t, realRedis(t), false, func(c *accounts.Config) {
		c.LoginsPerUser = queue.Rate{N: 3, Per: time.Minute}
		c.LoginsPerAddress = queue.Rate{N: 6, Per: time.Minute}
	})
	for i := range 3 {
		if res, body := a.req(t, nil, "POST", "/api/v1/login", loginBody("agent1", "wrong")); res.StatusCode != 401 {
			t.Fatalf("attempt %d: %d %s; want 401", i+1, res.StatusCode, body)
		}
	}
	// The fourth attempt for agent1 is refused, right password or not.
	res, body := a.req(t, nil, "POST", "/api/v1/login", loginBody("agent1", "agent1-pw"))
	if res.StatusCode != 429 || len(res.Cookies()) != 0 || !strings.Contains(body, "too many login attempts for this user") {
		t.Fatalf("4th attempt: %d %s; want 429 for the user", res.StatusCode, body)
	}
	ra, err := strconv.Atoi(res.Header.Get("Retry-After"))
	if err != nil || ra < 1 || ra > 60 {
		t.Fatalf("Retry-After %q; want 1..60 seconds", res.Header.Get("Retry-After"))
	}
	// Another user still logs in: the limit is per user…
	a.login(t, "supervisor1", "supervisor1-pw")
	// …until the address has spent its 6 attempts (4 + 1 so far).
	if res, body := a.req(t, nil, "POST", "/api/v1/login", loginBody("someone", "x")); res.StatusCode != 401 {
		t.Fatalf("6th attempt from the address: %d %s; want 401", res.StatusCode, body)
	}
	res, body = a.req(t, nil, "POST", "/api/v1/login", loginBody("admin1", "admin1-pw"))
	if res.StatusCode != 429 || !strings.Contains(body, "address") || res.Header.Get("Retry-After") == "" {
		t.Fatalf("7th attempt from the address: %d %s; want 429 for the address with Retry-After", res.StatusCode, body)
	}
}

func TestCSRF(t *testing.T) {
	a := newAuthServer(t, realRedis(t), false, nil)
	tok := a.login(t, "agent1", "agent1-pw")
	cookie := []string{"Cookie", SessionCookie + "=" + tok}
	self := a.URL
	with := func(h ...string) []string { return append(append([]string(nil), cookie...), h...) }

	// State changes with the cookie need Origin or Referer naming ivrd.
	for _, c := range []struct {
		name   string
		header []string
	}{
		{"no Origin or Referer", with()},
		{"another site's Origin", with("Origin", "https://evil.example")},
		{"another port", with("Origin", "http://127.0.0.1:1")},
		{"Origin null", with("Origin", "null")},
		{"another site's Referer", with("Referer", "https://evil.example/page")},
	} {
		res, body := a.req(t, nil, "POST", "/api/v1/logout", "", c.header...)
		if res.StatusCode != 403 || !strings.Contains(body, "cross-site") {
			t.Fatalf("cookie logout with %s: %d %s; want 403", c.name, res.StatusCode, body)
		}
	}
	if res, _ := a.req(t, nil, "GET", "/api/v1/queues", "", bearer(tok)...); res.StatusCode != 200 {
		t.Fatalf("the refused logouts ended the session: %d", res.StatusCode)
	}
	// Reading with the cookie needs no Origin.
	if res, body := a.req(t, nil, "GET", "/api/v1/queues", "", cookie...); res.StatusCode != 200 {
		t.Fatalf("cookie GET: %d %s", res.StatusCode, body)
	}
	// The route check refuses cookie state changes the same way.
	sess := &Sessions{Accounts: a.acc}
	post := func(h ...string) *http.Request {
		r := httptest.NewRequest("POST", a.URL+"/api/v1/anything", nil)
		for i := 0; i+1 < len(h); i += 2 {
			r.Header.Set(h[i], h[i+1])
		}
		return r
	}
	if st := sess.Authorize(post(cookie...), RoleAgent); st != 403 {
		t.Fatalf("route: cookie POST without Origin: %d; want 403", st)
	}
	if st := sess.Authorize(post(with("Origin", self)...), RoleAgent); st != 0 {
		t.Fatalf("route: cookie POST from ivrd's origin: %d; want 0", st)
	}
	if st := sess.Authorize(post(bearer(tok)...), RoleAgent); st != 0 {
		t.Fatalf("route: Bearer POST without Origin: %d; want 0 (programs are exempt)", st)
	}
	// Login from another site is refused (login CSRF); programs send no Origin.
	if res, body := a.req(t, nil, "POST", "/api/v1/login", loginBody("agent1", "agent1-pw"), "Origin", "https://evil.example"); res.StatusCode != 403 {
		t.Fatalf("cross-site login: %d %s; want 403", res.StatusCode, body)
	}
	// From ivrd's own page (Referer) the logout works.
	if res, body := a.req(t, nil, "POST", "/api/v1/logout", "", with("Referer", self+"/agent")...); res.StatusCode != 204 {
		t.Fatalf("cookie logout from ivrd's page: %d %s", res.StatusCode, body)
	}
	if res, _ := a.req(t, nil, "GET", "/api/v1/queues", "", cookie...); res.StatusCode != 401 {
		t.Fatalf("cookie after logout: %d; want 401", res.StatusCode)
	}
}

func TestSameOrigin(t *testing.T) {
	for _, c := range []struct {
		origin string
		tls    bool
		want   bool
	}{
		{"", false, true}, // not a browser
		{"http://ivrd.example:8080", false, true},
		{"http://IVRD.example:8080", false, true},
		{"https://ivrd.example:8080", false, true}, // TLS ended by a proxy in front
		{"http://ivrd.example", false, false},
		{"http://ivrd.example:8081", false, false},
		{"http://evil.example:8080", false, false},
		{"null", false, false},
		{"file://", false, false},
		{"ws://ivrd.example:8080", false, false},
		{"https://ivrd.example:8080", true, true},
		{"http://ivrd.example:8080", true, false}, // a plain page may not drive a TLS server
	} {
		r := httptest.NewRequest("GET", "http://ivrd.example:8080/api/v1/agent/ws", nil)
		if c.tls {
			r.TLS = &tls.ConnectionState{}
		}
		if c.origin != "" {
			r.Header.Set("Origin", c.origin)
		}
		if got := SameOrigin(r); got != c.want {
			t.Errorf("Origin %q (tls %v): %v, want %v", c.origin, c.tls, got, c.want)
		}
	}
}

func TestSecureCookieOverTLS(t *testing.T) {
	a := newAuthServer(t, realRedis(t), true, nil)
	res, body := a.req(t, nil, "POST", "/api/v1/login", loginBody("agent1", "agent1-pw"))
	if res.StatusCode != 200 || len(res.Cookies()) != 1 || !res.Cookies()[0].Secure {
		t.Fatalf("login over TLS: %d %s cookies %v; want a Secure cookie", res.StatusCode, body, res.Cookies())
	}
	// Behind a proxy that ends TLS: Config.TLS marks the cookie Secure.
	q := newQueue(t, realRedis(t))
	s, err := New(Config{Queue: q, Accounts: a.acc, TLS: true})
	if err != nil {
		t.Fatal(err)
	}
	w := httptest.NewRecorder()
	r := httptest.NewRequest("POST", "/api/v1/login", bytes.NewReader([]byte(loginBody("agent1", "agent1-pw"))))
	r.Header.Set("Content-Type", "application/json")
	s.ServeHTTP(w, r)
	if c := w.Result().Cookies(); w.Code != 200 || len(c) != 1 || !c[0].Secure {
		t.Fatalf("login with Config.TLS: %d cookies %v", w.Code, c)
	}
}

func TestUserFrom(t *testing.T) {
	if _, ok := UserFrom(context.Background()); ok {
		t.Fatal("a user in an empty context")
	}
	u := accounts.User{Name: "agent1", Role: accounts.RoleAgent}
	if got, ok := UserFrom(WithUser(context.Background(), u)); !ok || got.Name != "agent1" {
		t.Fatalf("UserFrom: %+v %v", got, ok)
	}
}

func TestLoginWithRedisGone(t *testing.T) {
	m := miniredis.RunT(t)
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{m.Addr()}, MaxRetries: -1, DialTimeout: 200 * time.Millisecond})
	defer rdb.Close()
	a := newAuthServer(t, rdb, false, nil)
	tok := a.login(t, "agent1", "agent1-pw")
	m.Close()
	if res, body := a.req(t, nil, "POST", "/api/v1/login", loginBody("agent1", "agent1-pw")); res.StatusCode != 503 {
		t.Fatalf("login with Redis gone: %d %s; want 503", res.StatusCode, body)
	}
	if res, body := a.req(t, nil, "GET", "/api/v1/queues", "", bearer(tok)...); res.StatusCode != 503 || !strings.Contains(body, "sessions unavailable") {
		t.Fatalf("request with Redis gone: %d %s; want 503", res.StatusCode, body)
	}
}

// syncBuffer is a log destination safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
