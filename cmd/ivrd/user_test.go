package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/bcrypt"

	"ivrd/accounts"
	"ivrd/configs"
	"ivrd/queue"
)

// realRedis is the Redis .ci/run provides; IVRD_TEST_REDIS overrides.
func realRedis(t *testing.T) string {
	t.Helper()
	addr := os.Getenv("IVRD_TEST_REDIS")
	if addr == "" {
		addr = "127.0.0.1:6379"
	}
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatalf("these tests need a real Redis at %s (bash .ci/run starts one): %v", addr, err)
	}
	c.Close()
	return addr
}

func cheapHash(t *testing.T, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// userEnv is a configuration on the real Redis under a fresh prefix (keys
// deleted at the end), with the file users supervisor1 and agent1.
type userEnv struct {
	path, prefix string
	rdb          *redis.Client
	cfg          *configs.Config
	st           *queue.Store
}

func newUserEnv(t *testing.T) *userEnv {
	t.Helper()
	addr := realRedis(t)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "ivrdusertest-" + hex.EncodeToString(b)
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	t.Cleanup(func() {
		defer rdb.Close()
		ctx := context.Background()
		for _, match := range []string{prefix + ":*", "rate:" + prefix + ":*"} {
			keys, _ := rdb.Keys(ctx, match).Result()
			if len(keys) > 0 {
				rdb.Del(ctx, keys...)
			}
		}
	})
	demo, err := filepath.Abs("../../configs")
	if err != nil {
		t.Fatal(err)
	}
	text := fmt.Sprintf(`ivr:
  flow: %[1]s/flows/main.yaml
  prompts: %[1]s/prompts
  directory: %[1]s/directory.csv
queue:
  skills: {billing: {}, support: {}, general: {}}
redis:
  url: redis://%[2]s/0
  prefix: %[3]s
users:
  - {name: supervisor1, role: supervisor, password_hash: %[4]s}
  - {name: agent1, display_name: Alice Agent, role: agent, skills: {billing: 5}, password_hash: %[5]s}
`, demo, addr, prefix, cheapHash(t, "supervisor1"), cheapHash(t, "agent1"))
	path := filepath.Join(t.TempDir(), "ivrd.yaml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("IVRD_REDIS_URL", "redis://"+addr+"/0") // whatever the caller's environment says
	cfg, err := configs.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := queue.NewStore(rdb, queue.StoreConfig{Prefix: prefix, Owner: "user-test"})
	if err != nil {
		t.Fatal(err)
	}
	return &userEnv{path: path, prefix: prefix, rdb: rdb, cfg: cfg, st: st}
}

// user runs `ivrd user args… -config <the env's file>` with stdin.
func (e *userEnv) user(stdin string, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := userCmd(append(args, "-config", e.path), strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func (e *userEnv) accounts(t *testing.T) *accounts.Store {
	t.Helper()
	acc, err := newAccounts(e.cfg, e.st)
	if err != nil {
		t.Fatal(err)
	}
	return acc
}

func TestUserCommands(t *testing.T) {
	e := newUserEnv(t)
	ctx := context.Background()

	code, out, errs := e.user("carol-secret\n", "add", "carol", "-role", "agent", "-skills", "billing=7,support=2", "-display-name", "Carol Agent", "-password-stdin")
	if code != 0 || !strings.Contains(out, "added carol (agent; billing=7,support=2)") {
		t.Fatalf("add carol: %d %q %q", code, out, errs)
	}
	h := e.rdb.HGetAll(ctx, e.prefix+":{q}:user:carol").Val()
	if h["role"] != "agent" || h["skills"] != "billing=7,support=2" || h["display_name"] != "Carol Agent" {
		t.Fatalf("%s:{q}:user:carol = %v", e.prefix, h)
	}
	if c, err := bcrypt.Cost([]byte(h["password_hash"])); err != nil || c < 10 {
		t.Fatalf("carol's hash: cost %d (%v); want bcrypt at 10 or more", c, err)
	}
	if strings.Contains(fmt.Sprint(h), "carol-secret") {
		t.Fatal("the password is stored in the clear")
	}
	// The agent is in the queue at once (running servers need not wait).
	a, err := e.st.GetAgent(ctx, "carol")
	if err != nil || a.Name != "Carol Agent" || a.Skills["billing"] != 7 || a.State != queue.Offline {
		t.Fatalf("queue agent carol: %+v %v", a, err)
	}
	// A running server's store logs carol in.
	acc := e.accounts(t)
	if _, err := acc.Login(ctx, "carol", "carol-secret", "10.0.0.1"); err != nil {
		t.Fatalf("carol's login: %v", err)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"add", "carol", "-role", "admin"}, "exists already"},
		{[]string{"add", "agent1", "-role", "admin"}, "exists already"},
		{[]string{"add", "dave", "-role", "agent", "-skills", "sales=3"}, `unknown skill "sales"`},
		{[]string{"add", "dave", "-role", "agent"}, "at least one skill"},
		{[]string{"add", "dave", "-role", "boss"}, `role "boss"`},
		{[]string{"add", "dave", "-role", "admin", "-skills", "billing=3"}, "only agents"},
		{[]string{"add", "dave", "-role", "agent", "-skills", "billing"}, "skill=proficiency"},
		{[]string{"passwd", "agent1"}, "configuration file"},
		{[]string{"passwd", "nobody"}, "no such user"},
		{[]string{"remove", "supervisor1"}, "configuration file"},
		{[]string{"remove", "nobody"}, "no such user"},
	} {
		args := c.args
		if args[0] != "remove" {
			args = append(args, "-password-stdin")
		}
		code, _, errs := e.user("whatever-pw\n", args...)
		if code != 1 || !strings.Contains(errs, c.want) {
			t.Errorf("ivrd user %s: %d %q; want exit 1 and %q", strings.Join(c.args, " "), code, errs, c.want)
		}
	}
	if code, _, errs := e.user("short\n", "add", "dave", "-role", "admin", "-password-stdin"); code != 1 || !strings.Contains(errs, "shorter than 8") {
		t.Fatalf("short password: %d %q", code, errs)
	}
	if n := e.rdb.Exists(ctx, e.prefix+":{q}:user:dave").Val(); n != 0 {
		t.Fatal("a refused add left dave in Redis")
	}

	code, out, errs = e.user("", "list")
	if code != 0 {
		t.Fatalf("list: %d %q", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "NAME") ||
		!strings.HasPrefix(lines[1], "agent1 ") || !strings.HasSuffix(lines[1], "config") ||
		!strings.HasPrefix(lines[2], "carol ") || !strings.Contains(lines[2], "Carol Agent") || !strings.Contains(lines[2], "billing=7,support=2") || !strings.HasSuffix(lines[2], "redis") ||
		!strings.HasPrefix(lines[3], "supervisor1 ") {
		t.Fatalf("list:\n%s", out)
	}

	// passwd asks twice on the terminal; a new password ends the sessions.
	sess, err := acc.Login(ctx, "carol", "carol-secret", "10.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if code, _, errs := e.user("new-secret-1\nnew-secret-2\n", "passwd", "carol"); code != 1 || !strings.Contains(errs, "differ") {
		t.Fatalf("passwd with two different entries: %d %q", code, errs)
	}
	code, out, errs = e.user("new-secret-1\nnew-secret-1\n", "passwd", "carol")
	if code != 0 || !strings.Contains(out, "sessions have ended") || !strings.Contains(errs, "Password for carol: ") {
		t.Fatalf("passwd: %d %q %q", code, out, errs)
	}
	if _, err := acc.Authenticate(ctx, sess.Token); !errors.Is(err, accounts.ErrNoSession) {
		t.Fatalf("session after passwd: %v", err)
	}
	if _, err := acc.Login(ctx, "carol", "new-secret-1", "10.0.0.2"); err != nil {
		t.Fatalf("login with the new password: %v", err)
	}

	// remove: out of the queue first, then the user.
	code, out, errs = e.user("", "remove", "carol")
	if code != 0 || !strings.Contains(out, "removed carol") {
		t.Fatalf("remove: %d %q %q", code, out, errs)
	}
	if _, err := e.st.GetAgent(ctx, "carol"); !errors.Is(err, queue.ErrNoAgent) {
		t.Fatalf("queue agent after remove: %v", err)
	}
	if e.rdb.Exists(ctx, e.prefix+":{q}:user:carol").Val() != 0 || e.rdb.SIsMember(ctx, e.prefix+":{q}:users", "carol").Val() {
		t.Fatal("carol's keys remain")
	}
}

// An agent on a call cannot be removed until the call is over.
func TestUserRemoveAgentOnCall(t *testing.T) {
	e := newUserEnv(t)
	ctx := context.Background()
	acc, err := accounts.NewStore(e.rdb, accounts.Config{Prefix: e.prefix, Cost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	if err := acc.Add(ctx, accounts.User{Name: "erin", Role: accounts.RoleAgent, Skills: map[string]int{"billing": 3}}, "erin-secret"); err != nil {
		t.Fatal(err)
	}
	if err := setupRedis(ctx, e.cfg, e.st); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.SetAgentState(ctx, "erin", queue.Available, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.SetAgentState(ctx, "agent1", queue.NotReady, "lunch"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.Enqueue(ctx, queue.Entry{ID: "call-1", Skill: "billing", Enqueued: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if ms, err := e.st.Dispatch(ctx, []string{"billing"}, 1); err != nil || len(ms) != 1 || ms[0].Agent != "erin" {
		t.Fatalf("dispatch: %+v %v", ms, err)
	}
	code, _, errs := e.user("", "remove", "erin")
	if code != 1 || !strings.Contains(errs, "when the call is over") {
		t.Fatalf("remove an agent with a call: %d %q", code, errs)
	}
	if _, err := acc.Get(ctx, "erin"); err != nil {
		t.Fatalf("the user went although the agent stayed: %v", err)
	}
}

// setupRedis (run before every reconciliation) makes agents of the agent
// users, from the file and from Redis; supervisors are no agents.
func TestSetupRedisMakesAgentsOfUsers(t *testing.T) {
	e := newUserEnv(t)
	ctx := context.Background()
	acc, err := accounts.NewStore(e.rdb, accounts.Config{Prefix: e.prefix, Cost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	if err := acc.Add(ctx, accounts.User{Name: "carol", DisplayName: "Carol Agent", Role: accounts.RoleAgent, Skills: map[string]int{"support": 4}}, "carol-secret"); err != nil {
		t.Fatal(err)
	}
	if err := acc.Add(ctx, accounts.User{Name: "sam", Role: accounts.RoleSupervisor}, "sam-secret"); err != nil {
		t.Fatal(err)
	}
	// A hand-broken user is left out; the others still become agents.
	if err := acc.Add(ctx, accounts.User{Name: "zed", Role: accounts.RoleAgent, Skills: map[string]int{"billing": 1}}, "zed-secret"); err != nil {
		t.Fatal(err)
	}
	e.rdb.HSet(ctx, e.prefix+":{q}:user:zed", "role", "chief")
	if err := setupRedis(ctx, e.cfg, e.st); err != nil {
		t.Fatal(err)
	}
	as, err := e.st.Agents(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]queue.Agent{}
	for _, a := range as {
		got[a.ID] = a
	}
	if len(got) != 2 || got["agent1"].Name != "Alice Agent" || got["agent1"].Skills["billing"] != 5 ||
		got["carol"].Name != "Carol Agent" || got["carol"].Skills["support"] != 4 || got["carol"].State != queue.Offline {
		t.Fatalf("agents after setupRedis: %+v; want agent1 (file) and carol (Redis)", as)
	}
	// Redis lost its data: the next reconciliation puts both back.
	keys, _ := e.rdb.Keys(ctx, e.prefix+":{q}:agent*").Result()
	e.rdb.Del(ctx, keys...)
	if err := setupRedis(ctx, e.cfg, e.st); err != nil {
		t.Fatal(err)
	}
	if as, _ := e.st.Agents(ctx); len(as) != 2 {
		t.Fatalf("agents after Redis lost them: %+v", as)
	}
}

func TestUserNeedsRedis(t *testing.T) {
	t.Setenv("IVRD_REDIS_URL", "")
	var out, errb bytes.Buffer
	code := run([]string{"user", "list", "-config", "../../configs/ivrd.yaml"}, &out, &errb)
	if code != 1 || !strings.Contains(errb.String(), "no redis.url") || !strings.Contains(errb.String(), "users:") {
		t.Fatalf("user list without Redis: %d %q", code, errb.String())
	}
}

func TestUserHash(t *testing.T) {
	var out, errb bytes.Buffer
	if code := userCmd([]string{"hash", "-password-stdin"}, strings.NewReader("a long password\n"), &out, &errb); code != 0 {
		t.Fatalf("hash: %d %q", code, errb.String())
	}
	h := strings.TrimSpace(out.String())
	if bcrypt.CompareHashAndPassword([]byte(h), []byte("a long password")) != nil {
		t.Fatalf("hash %q does not verify", h)
	}
	if c, _ := bcrypt.Cost([]byte(h)); c < 10 {
		t.Fatalf("cost %d", c)
	}
	out.Reset()
	if code := userCmd([]string{"hash", "-password-stdin"}, strings.NewReader("short\n"), &out, &errb); code != 1 || out.Len() != 0 {
		t.Fatalf("hash of a short password: %d %q", code, out.String())
	}
}

func TestUserUsage(t *testing.T) {
	for _, args := range [][]string{nil, {"frobnicate"}, {"add"}, {"remove", "a", "b"}, {"list", "x"}, {"add", "x", "-nope"}} {
		var out, errb bytes.Buffer
		if code := userCmd(args, strings.NewReader(""), &out, &errb); code != 2 || !strings.Contains(errb.String(), "usage: ivrd user") {
			t.Errorf("ivrd user %v: %d %q; want 2 and the usage", args, code, errb.String())
		}
	}
}

// The demo's hashes are the ones ivrd recognises as demo passwords, and
// each is the hash of the user's name, as the README says.
func TestDemoPasswords(t *testing.T) {
	t.Setenv("IVRD_REDIS_URL", "")
	cfg, err := configs.Load("../../configs/ivrd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Users) != len(demoHashes) {
		t.Fatalf("%d demo users, %d demo hashes", len(cfg.Users), len(demoHashes))
	}
	for _, u := range cfg.Users {
		if !demoHashes[u.PasswordHash] {
			t.Errorf("%s's hash in configs/ivrd.yaml is not in demoHashes", u.Name)
		}
		if !accounts.PasswordMatches(u.PasswordHash, u.Name) {
			t.Errorf("%s's demo password is not %q", u.Name, u.Name)
		}
	}
	if got := strings.Join(demoPasswordUsers(cfg.Users), ","); got != "agent1,agent2,supervisor1" {
		t.Fatalf("demo passwords found for %q", got)
	}
	var buf bytes.Buffer
	warnAccounts(cfg, slog.New(slog.NewTextHandler(&buf, nil)))
	if !strings.Contains(buf.String(), "demo passwords in use") || !strings.Contains(buf.String(), "users=agent1,agent2,supervisor1") {
		t.Fatalf("warning: %q", buf.String())
	}

	// Another hash of the same password is still the demo password; a new
	// password is not; other names are not demo accounts.
	users := []configs.User{
		{Name: "agent1", PasswordHash: cheapHash(t, "agent1")},
		{Name: "agent2", PasswordHash: cheapHash(t, "a new password")},
		{Name: "alice", PasswordHash: cheapHash(t, "alice")},
	}
	if got := strings.Join(demoPasswordUsers(users), ","); got != "agent1" {
		t.Fatalf("demo passwords found for %q; want agent1", got)
	}
	buf.Reset()
	cfg.Users = users[1:]
	warnAccounts(cfg, slog.New(slog.NewTextHandler(&buf, nil)))
	if buf.Len() != 0 {
		t.Fatalf("warned without demo passwords: %q", buf.String())
	}
}
