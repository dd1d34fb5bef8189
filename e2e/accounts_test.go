package e2e

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// tokens caches one supervisor1 session per running ivrd, for the tests'
// GETs of the API.
var tokens sync.Map // *ivrd → string

// token returns a Bearer token of the demo's supervisor1 on d.
func (d *ivrd) token() string {
	d.t.Helper()
	if tok, ok := tokens.Load(d); ok {
		return tok.(string)
	}
	res, body := d.post(httpClient, "/api/v1/login", loginJSON("supervisor1", "supervisor1"))
	if res.StatusCode != http.StatusOK {
		d.t.Fatalf("login supervisor1: %d %s", res.StatusCode, body)
	}
	var out loginAnswer
	if err := json.Unmarshal([]byte(body), &out); err != nil || out.Token == "" {
		d.t.Fatalf("login supervisor1: %v %s", err, body)
	}
	tokens.Store(d, out.Token)
	d.t.Cleanup(func() { tokens.Delete(d) })
	return out.Token
}

type loginAnswer struct {
	Token string `json:"token"`
	Role  string `json:"role"`
	User  struct {
		Name        string         `json:"name"`
		DisplayName string         `json:"display_name"`
		Skills      map[string]int `json:"skills"`
	} `json:"user"`
}

func loginJSON(user, pw string) string {
	b, _ := json.Marshal(map[string]string{"username": user, "password": pw})
	return string(b)
}

// send makes one request to ivrd's HTTP server; header pairs follow.
func (d *ivrd) send(c *http.Client, method, path, body string, header ...string) (*http.Response, string) {
	d.t.Helper()
	scheme := "http"
	if tr, ok := c.Transport.(*http.Transport); ok && tr.TLSClientConfig != nil {
		scheme = "https"
	}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, scheme+"://"+d.httpAddr+path, rd)
	if err != nil {
		d.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := c.Do(req)
	if err != nil {
		d.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func (d *ivrd) post(c *http.Client, path, body string, header ...string) (*http.Response, string) {
	d.t.Helper()
	return d.send(c, "POST", path, body, header...)
}

// loginAs logs in and returns the answer, failing unless it is 200.
func (d *ivrd) loginAs(user, pw string) loginAnswer {
	d.t.Helper()
	res, body := d.post(httpClient, "/api/v1/login", loginJSON(user, pw))
	if res.StatusCode != http.StatusOK {
		d.t.Fatalf("login %s: %d %s", user, res.StatusCode, body)
	}
	var out loginAnswer
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		d.t.Fatal(err)
	}
	return out
}

// TestDemoAccounts: the demo accounts of the README log in with their
// documented passwords (ivrd warned about them at start); a wrong password
// is 401; an agent may read the queues but not the agents (403), a
// supervisor both; anonymous requests are 401; logout ends the token;
// a state change carried by the cookie without Origin is refused (CSRF).
func TestDemoAccounts(t *testing.T) {
	t.Parallel()
	d := startIvrd(t, demoConfig)
	d.waitLog(5*time.Second, "demo passwords in use", "users=agent1,agent2,supervisor1")
	if strings.Contains(d.log.String(), "no accounts yet") {
		t.Fatal("ivrd still says the API has no accounts")
	}

	a1 := d.loginAs("agent1", "agent1")
	if a1.Role != "agent" || a1.User.DisplayName != "Alice Agent" || a1.User.Skills["billing"] != 5 || a1.User.Skills["support"] != 5 {
		t.Fatalf("agent1: %+v", a1)
	}
	a2 := d.loginAs("agent2", "agent2")
	if a2.Role != "agent" || a2.User.DisplayName != "Bob Agent" || a2.User.Skills["billing"] != 5 || a2.User.Skills["support"] != 5 {
		t.Fatalf("agent2: %+v", a2)
	}
	sup := d.loginAs("supervisor1", "supervisor1")
	if sup.Role != "supervisor" {
		t.Fatalf("supervisor1: %+v", sup)
	}
	d.waitLog(time.Second, "msg=login", "user=agent1", "role=agent")

	const wrong = "not-agent1s-password"
	if res, body := d.post(httpClient, "/api/v1/login", loginJSON("agent1", wrong)); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong password: %d %s; want 401", res.StatusCode, body)
	}
	d.waitLog(time.Second, "login failed", "user=agent1")

	bearer := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }
	for _, c := range []struct {
		who  string
		auth []string
		path string
		want int
	}{
		{"anonymous", nil, "/api/v1/queues", 401},
		{"anonymous", nil, "/api/v1/agents", 401},
		{"agent1", bearer(a1.Token), "/api/v1/queues", 200},
		{"agent1", bearer(a1.Token), "/api/v1/agents", 403},
		{"supervisor1", bearer(sup.Token), "/api/v1/queues", 200},
		{"supervisor1", bearer(sup.Token), "/api/v1/agents", 200},
	} {
		res, body := d.send(httpClient, "GET", c.path, "", c.auth...)
		if res.StatusCode != c.want {
			t.Errorf("%s GET %s: %d %s; want %d", c.who, c.path, res.StatusCode, body, c.want)
		}
	}

	// CSRF: the cookie alone does not make a state change.
	cookie := []string{"Cookie", "ivrd_session=" + a2.Token}
	if res, body := d.post(httpClient, "/api/v1/logout", "", cookie...); res.StatusCode != http.StatusForbidden {
		t.Fatalf("cookie logout without Origin: %d %s; want 403", res.StatusCode, body)
	}
	if res, _ := d.send(httpClient, "GET", "/api/v1/queues", "", cookie...); res.StatusCode != 200 {
		t.Fatalf("agent2's session after the refused logout: %d", res.StatusCode)
	}
	if res, body := d.post(httpClient, "/api/v1/logout", "", append(cookie, "Origin", "http://"+d.httpAddr)...); res.StatusCode != http.StatusNoContent {
		t.Fatalf("cookie logout from ivrd's origin: %d %s", res.StatusCode, body)
	}

	// Logout ends agent1's token, and only it.
	if res, body := d.post(httpClient, "/api/v1/logout", "", bearer(a1.Token)...); res.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: %d %s", res.StatusCode, body)
	}
	for _, tok := range []string{a1.Token, a2.Token} {
		if res, _ := d.send(httpClient, "GET", "/api/v1/queues", "", bearer(tok)...); res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("token after logout: %d; want 401", res.StatusCode)
		}
	}
	if res, _ := d.send(httpClient, "GET", "/api/v1/agents", "", bearer(sup.Token)...); res.StatusCode != 200 {
		t.Fatalf("supervisor1 after the others logged out: %d", res.StatusCode)
	}

	// Neither passwords nor tokens reach the log.
	log := d.log.String()
	for _, secret := range []string{wrong, a1.Token, a2.Token, sup.Token, "$2a$"} {
		if strings.Contains(log, secret) {
			t.Fatalf("the log holds %q", secret)
		}
	}
}

// TestLoginRateLimit: the demo allows 5 login attempts per user a minute:
// the sixth is 429 with Retry-After, even with the right password; another
// user still logs in.
func TestLoginRateLimit(t *testing.T) {
	t.Parallel()
	d := startIvrd(t, demoConfig)
	for i := range 5 {
		if res, body := d.post(httpClient, "/api/v1/login", loginJSON("agent2", "guess"+strconv.Itoa(i))); res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d %s; want 401", i+1, res.StatusCode, body)
		}
	}
	res, body := d.post(httpClient, "/api/v1/login", loginJSON("agent2", "agent2"))
	if res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("6th attempt: %d %s; want 429", res.StatusCode, body)
	}
	if ra, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 60 {
		t.Fatalf("Retry-After %q; want 1..60 s", res.Header.Get("Retry-After"))
	}
	d.waitLog(time.Second, "too many attempts", "user=agent2", "limit=user")
	d.loginAs("agent1", "agent1")
}

// TestAccountsTLS: with http.tls_cert and tls_key ivrd serves https, and
// the session cookie is Secure; plain http is not served.
func TestAccountsTLS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certPEM := writeCert(t, filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"))
	cfg := writeConfig(t, fmt.Sprintf("http:\n  listen: 127.0.0.1:8080\n  tls_cert: %s\n  tls_key: %s\n",
		filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")))
	d := startIvrd(t, cfg)
	d.waitLog(time.Second, "ivrd ready", "tls=true")
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	res, body := d.post(c, "/api/v1/login", loginJSON("agent1", "agent1"))
	if res.StatusCode != http.StatusOK || len(res.Cookies()) != 1 || !res.Cookies()[0].Secure || !res.Cookies()[0].HttpOnly {
		t.Fatalf("https login: %d %s cookies %v; want 200 and a Secure, HttpOnly cookie", res.StatusCode, body, res.Cookies())
	}
	if res, err := httpClient.Get("http://" + d.httpAddr + "/healthz"); err == nil {
		res.Body.Close()
		if res.StatusCode < 400 {
			t.Fatalf("plain http answered %d", res.StatusCode)
		}
	}
}

// TestAccountsRedisUser: on a real Redis, `ivrd user add` (the binary)
// creates an agent that the running server logs in and lists at once;
// `ivrd user remove` ends its session.
func TestAccountsRedisUser(t *testing.T) {
	t.Parallel()
	d, _, prefix := realRedisIvrd(t)
	cfg := writeConfig(t, fmt.Sprintf("redis:\n  url: \"\"\n  prefix: %s\n", prefix))
	user := func(stdin string, args ...string) string {
		t.Helper()
		cmd := exec.Command(ivrdBin, append([]string{"user"}, append(args, "-config", cfg)...)...)
		cmd.Env = append(os.Environ(), "IVRD_REDIS_URL=redis://"+realRedisAddr()+"/0")
		cmd.Stdin = strings.NewReader(stdin)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Fatalf("ivrd user %v: %v\n%s", args, err, out.String())
		}
		return out.String()
	}
	user("carol-secret\n", "add", "carol", "-role", "agent", "-skills", "billing=3", "-display-name", "Carol Agent", "-password-stdin")
	if out := user("", "list"); !strings.Contains(out, "carol") || !strings.Contains(out, "supervisor1") {
		t.Fatalf("ivrd user list:\n%s", out)
	}
	c := d.loginAs("carol", "carol-secret")
	if c.Role != "agent" || c.User.DisplayName != "Carol Agent" {
		t.Fatalf("carol: %+v", c)
	}
	var agents []agentEntry
	d.getJSON("/api/v1/agents", &agents)
	found := false
	for _, a := range agents {
		found = found || a.ID == "carol" && a.Skills["billing"] == 3 && a.State == "offline"
	}
	if !found {
		t.Fatalf("GET /api/v1/agents: %+v; want carol, offline, billing 3", agents)
	}
	user("", "remove", "carol")
	res, _ := d.send(httpClient, "GET", "/api/v1/queues", "", "Authorization", "Bearer "+c.Token)
	if res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("carol's token after ivrd user remove: %d; want 401", res.StatusCode)
	}
	d.getJSON("/api/v1/agents", &agents)
	for _, a := range agents {
		if a.ID == "carol" {
			t.Fatalf("carol still an agent after ivrd user remove: %+v", agents)
		}
	}
}

// writeCert writes a self-signed certificate for 127.0.0.1 and its key,
// and returns the certificate's PEM.
func writeCert(t *testing.T, certPath, keyPath string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ivrd e2e"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(certPath, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certPEM
}
