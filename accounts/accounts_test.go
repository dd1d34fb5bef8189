package accounts

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
	"golang.org/x/crypto/bcrypt"

	"ivrd/queue"
)

// realRedis is the Redis that .ci/run provides; IVRD_TEST_REDIS (host:port)
// overrides.
var realRedis = func() string {
	if a := os.Getenv("IVRD_TEST_REDIS"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}()

// env is one test's Redis, key prefix and (optional) miniredis.
type env struct {
	rdb    redis.UniversalClient
	prefix string
	mini   *miniredis.Miniredis // nil on the real Redis
	st     *queue.Store
}

// forEachBackend runs f on the real Redis (required) and on the embedded
// store, each time under a fresh key prefix that is deleted afterwards.
func forEachBackend(t *testing.T, f func(t *testing.T, e *env)) {
	t.Run("redis", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", realRedis, time.Second)
		if err != nil {
			t.Fatalf("these tests need a real Redis at %s (bash .ci/run starts one): %v", realRedis, err)
		}
		c.Close()
		rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{realRedis}})
		t.Cleanup(func() { rdb.Close() })
		f(t, newEnv(t, rdb, nil))
	})
	t.Run("embedded", func(t *testing.T) {
		m := miniredis.RunT(t)
		rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{m.Addr()}})
		t.Cleanup(func() { rdb.Close() })
		f(t, newEnv(t, rdb, m))
	})
}

func newEnv(t *testing.T, rdb redis.UniversalClient, m *miniredis.Miniredis) *env {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "ivrdacctest-" + hex.EncodeToString(b)
	t.Cleanup(func() {
		ctx := context.Background()
		var keys []string
		// redis_rate puts "rate:" before the limiter's keys.
		for _, match := range []string{prefix + ":*", "rate:" + prefix + ":*"} {
			iter := rdb.Scan(ctx, 0, match, 1000).Iterator()
			for iter.Next(ctx) {
				keys = append(keys, iter.Val())
			}
		}
		if len(keys) > 0 {
			rdb.Del(ctx, keys...)
		}
	})
	st, err := queue.NewStore(rdb, queue.StoreConfig{Prefix: prefix, Owner: "accounts-test"})
	if err != nil {
		t.Fatal(err)
	}
	return &env{rdb: rdb, prefix: prefix, mini: m, st: st}
}

// keys lists every key under the test's prefix.
func (e *env) keys(t *testing.T) []string {
	t.Helper()
	ctx := context.Background()
	var keys []string
	iter := e.rdb.Scan(ctx, 0, e.prefix+":*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return keys
}

func mustHash(t *testing.T, pw string) string {
	t.Helper()
	h, err := HashPassword(pw, bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// demoUsers are configuration users as the demo has them (cheap hashes).
func demoUsers(t *testing.T) []User {
	return []User{
		{Name: "agent1", DisplayName: "Alice Agent", Role: RoleAgent, Skills: map[string]int{"billing": 5, "support": 5}, PasswordHash: mustHash(t, "agent1")},
		{Name: "supervisor1", Role: RoleSupervisor, PasswordHash: mustHash(t, "supervisor1")},
	}
}

func newStore(t *testing.T, e *env, mod func(*Config)) *Store {
	t.Helper()
	cfg := Config{Prefix: e.prefix, Users: demoUsers(t), Cost: bcrypt.MinCost, SessionTTL: time.Hour,
		KnownSkill: func(s string) bool { return s == "billing" || s == "support" }}
	if mod != nil {
		mod(&cfg)
	}
	s, err := NewStore(e.rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestRoleOrder(t *testing.T) {
	for _, c := range []struct {
		have, need Role
		ok         bool
	}{
		{RoleAgent, RoleAgent, true},
		{RoleAgent, RoleSupervisor, false},
		{RoleAgent, RoleAdmin, false},
		{RoleSupervisor, RoleAgent, true},
		{RoleSupervisor, RoleSupervisor, true},
		{RoleSupervisor, RoleAdmin, false},
		{RoleAdmin, RoleAgent, true},
		{RoleAdmin, RoleSupervisor, true},
		{RoleAdmin, RoleAdmin, true},
		{"", RoleAgent, false},
		{"root", RoleAgent, false},
		{RoleAdmin, "root", false},
	} {
		if got := c.have.Allows(c.need); got != c.ok {
			t.Errorf("%q allows %q = %v, want %v", c.have, c.need, got, c.ok)
		}
	}
}

func TestUserCheck(t *testing.T) {
	ok := User{Name: "alice.smith@example", Role: RoleAgent, Skills: map[string]int{"billing": 1, "support": 100}}
	if err := ok.Check(nil); err != nil {
		t.Fatalf("valid agent refused: %v", err)
	}
	known := func(s string) bool { return s == "billing" }
	for _, c := range []struct {
		name string
		u    User
		want string
	}{
		{"empty name", User{Role: RoleAdmin}, "user name"},
		{"colon in name", User{Name: "a:b", Role: RoleAdmin}, "user name"},
		{"brace in name", User{Name: "a{q}", Role: RoleAdmin}, "user name"},
		{"long name", User{Name: strings.Repeat("a", 65), Role: RoleAdmin}, "user name"},
		{"bad role", User{Name: "a", Role: "root"}, `role "root"`},
		{"agent without skills", User{Name: "a", Role: RoleAgent}, "at least one skill"},
		{"supervisor with skills", User{Name: "a", Role: RoleSupervisor, Skills: map[string]int{"billing": 1}}, "only agents"},
		{"proficiency 0", User{Name: "a", Role: RoleAgent, Skills: map[string]int{"billing": 0}}, "proficiency 0"},
		{"proficiency 101", User{Name: "a", Role: RoleAgent, Skills: map[string]int{"billing": 101}}, "proficiency 101"},
		{"unknown skill", User{Name: "a", Role: RoleAgent, Skills: map[string]int{"sales": 3}}, `unknown skill "sales"`},
		{"two-line display name", User{Name: "a", Role: RoleAdmin, DisplayName: "x\ny"}, "display name"},
	} {
		err := c.u.Check(known)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error with %q", c.name, err, c.want)
		}
	}
}

func TestSkills(t *testing.T) {
	m, err := ParseSkills(" support=3, billing=5 ")
	if err != nil || len(m) != 2 || m["billing"] != 5 || m["support"] != 3 {
		t.Fatalf("ParseSkills: %v %v", m, err)
	}
	if s := FormatSkills(m); s != "billing=5,support=3" {
		t.Fatalf("FormatSkills: %q", s)
	}
	for _, bad := range []string{"billing", "billing=x", "=3", "billing=1,billing=2"} {
		if _, err := ParseSkills(bad); err == nil {
			t.Errorf("ParseSkills(%q) accepted", bad)
		}
	}
}

func TestPasswords(t *testing.T) {
	h, err := HashPassword("correct horse", 0)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := bcrypt.Cost([]byte(h)); err != nil || c < 10 {
		t.Fatalf("default cost %d (%v); want at least 10", c, err)
	}
	if !PasswordMatches(h, "correct horse") || PasswordMatches(h, "correct horsE") || PasswordMatches(h, "") {
		t.Fatal("PasswordMatches")
	}
	if err := CheckHash(h); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"", "agent1", "$2a$10$short", "sha256:abcdef"} {
		if err := CheckHash(bad); err == nil {
			t.Errorf("CheckHash(%q) accepted", bad)
		}
	}
	for pw, want := range map[string]string{"short": "shorter", "alice123": "user name", strings.Repeat("x", 73): "longer"} {
		if err := CheckNewPassword("alice123", pw); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckNewPassword(%q) = %v; want %q", pw, err, want)
		}
	}
	if _, err := HashPassword(strings.Repeat("x", 73), bcrypt.MinCost); err == nil {
		t.Error("a password bcrypt would cut was hashed")
	}
}

func TestNewStoreChecksConfigUsers(t *testing.T) {
	m := miniredis.RunT(t)
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{m.Addr()}})
	defer rdb.Close()
	h := mustHash(t, "x")
	_, err := NewStore(rdb, Config{Users: []User{
		{Name: "a", Role: RoleAdmin, PasswordHash: h},
		{Name: "a", Role: RoleAdmin, PasswordHash: h},
		{Name: "b", Role: RoleAdmin, PasswordHash: "plain"},
		{Name: "c", Role: "boss", PasswordHash: h},
	}})
	for _, want := range []string{"user a: listed twice", "user b: password hash", `user c: role "boss"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NewStore: %v; want %q", err, want)
		}
	}
}

func TestLoginSessions(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		s := newStore(t, e, nil)
		sess, err := s.Login(ctx, "agent1", "agent1", "10.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		if len(sess.Token) != 43 || sess.User.Name != "agent1" || sess.User.Role != RoleAgent || sess.User.Skills["billing"] != 5 || sess.User.PasswordHash != "" {
			t.Fatalf("session %+v", sess)
		}
		// Only the token's SHA-256 is in Redis: no key or value holds the token.
		key := s.SessionKey(sess.Token)
		if !strings.HasPrefix(key, e.prefix+":{q}:session:") || len(strings.TrimPrefix(key, e.prefix+":{q}:session:")) != 64 {
			t.Fatalf("session key %s", key)
		}
		for _, k := range e.keys(t) {
			if strings.Contains(k, sess.Token) {
				t.Fatalf("key %s holds the token", k)
			}
		}
		fields := e.rdb.HGetAll(ctx, key).Val()
		if fields["user"] != "agent1" || fields["addr"] != "10.0.0.1" || fields["pw"] == "" {
			t.Fatalf("%s = %v", key, fields)
		}
		for f, v := range fields {
			if strings.Contains(v, sess.Token) || strings.Contains(v, "$2a$") {
				t.Fatalf("%s field %s holds the token or the hash", key, f)
			}
		}
		if ttl := e.rdb.PTTL(ctx, key).Val(); ttl <= 59*time.Minute || ttl > time.Hour {
			t.Fatalf("%s TTL %v; want the session TTL (1h)", key, ttl)
		}

		u, err := s.Authenticate(ctx, sess.Token)
		if err != nil || u.Name != "agent1" || u.Role != RoleAgent || u.PasswordHash != "" {
			t.Fatalf("Authenticate: %+v %v", u, err)
		}
		// A token that differs in one character opens nothing.
		other := []byte(sess.Token)
		other[0] ^= 1
		for _, bad := range []string{"", "x", string(other), sess.Token + "A", strings.Repeat("!", 43)} {
			if _, err := s.Authenticate(ctx, bad); !errors.Is(err, ErrNoSession) {
				t.Errorf("Authenticate(%q): %v; want ErrNoSession", bad, err)
			}
		}

		for _, c := range [][2]string{{"agent1", "agent2"}, {"agent1", ""}, {"nobody", "agent1"}, {"", ""}, {"a:b", "x"}} {
			if _, err := s.Login(ctx, c[0], c[1], "10.0.0.2"); !errors.Is(err, ErrBadCredentials) {
				t.Errorf("Login(%q, %q): %v; want ErrBadCredentials", c[0], c[1], err)
			}
		}

		// For the log only: an unknown name is also ErrNoUser, a wrong
		// password is not.
		if _, err := s.Login(ctx, "nobody", "x", "10.0.0.2"); !errors.Is(err, ErrNoUser) {
			t.Errorf("unknown name: %v; want ErrNoUser too", err)
		}
		if _, err := s.Login(ctx, "agent1", "x", "10.0.0.2"); errors.Is(err, ErrNoUser) {
			t.Errorf("wrong password: %v is ErrNoUser", err)
		}

		// Another instance (another Store on the same Redis, same
		// configuration) sees the session.
		if u, err := newStore(t, e, func(c *Config) { c.Users = s.cfg.Users }).Authenticate(ctx, sess.Token); err != nil || u.Name != "agent1" {
			t.Fatalf("second store: %+v %v", u, err)
		}
		// A configuration file with a new hash for agent1 (a new
		// password) ends the sessions opened with the old one.
		if _, err := newStore(t, e, nil).Authenticate(ctx, sess.Token); !errors.Is(err, ErrNoSession) {
			t.Fatalf("session after agent1's hash changed in the file: %v; want ErrNoSession", err)
		}

		if err := s.Logout(ctx, sess.Token); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Authenticate(ctx, sess.Token); !errors.Is(err, ErrNoSession) {
			t.Fatalf("after logout: %v", err)
		}
		if n := e.rdb.Exists(ctx, key).Val(); n != 0 {
			t.Fatalf("%s still exists after logout", key)
		}
		if err := s.Logout(ctx, sess.Token); err != nil {
			t.Fatalf("second logout: %v", err)
		}
	})
}

func TestSessionExpires(t *testing.T) {
	m := miniredis.RunT(t)
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{m.Addr()}})
	defer rdb.Close()
	e := newEnv(t, rdb, m)
	s := newStore(t, e, func(c *Config) { c.SessionTTL = 10 * time.Minute })
	ctx := context.Background()
	sess, err := s.Login(ctx, "supervisor1", "supervisor1", "10.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, sess.Token); err != nil {
		t.Fatal(err)
	}
	m.FastForward(9 * time.Minute)
	if _, err := s.Authenticate(ctx, sess.Token); err != nil {
		t.Fatalf("after 9 of 10 minutes: %v", err)
	}
	m.FastForward(2 * time.Minute)
	if _, err := s.Authenticate(ctx, sess.Token); !errors.Is(err, ErrNoSession) {
		t.Fatalf("after 11 of 10 minutes: %v; want ErrNoSession", err)
	}
}

func TestLoginRateLimit(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		s := newStore(t, e, func(c *Config) {
			c.Limiter = queue.NewLimiter(e.st)
			c.LoginsPerUser = queue.Rate{N: 3, Per: time.Minute}
			c.LoginsPerAddress = queue.Rate{N: 5, Per: time.Minute}
		})
		// Three wrong passwords for agent1 are answered as such…
		for i := range 3 {
			if _, err := s.Login(ctx, "agent1", "guess", "10.0.0.1"); !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("attempt %d: %v; want ErrBadCredentials", i+1, err)
			}
		}
		// …then even the right one is refused, from any address.
		_, err := s.Login(ctx, "agent1", "agent1", "10.0.0.9")
		var lim *LimitedError
		if !errors.As(err, &lim) || lim.Kind != "user" || lim.RetryAfter <= 0 || lim.RetryAfter > time.Minute {
			t.Fatalf("4th attempt for agent1: %v; want a per-user limit with a retry time within a minute", err)
		}
		if k := "rate:" + e.prefix + ":{q}:limit:login_user:agent1"; e.rdb.Exists(ctx, k).Val() != 1 {
			t.Fatalf("no limiter key %s", k)
		}
		// supervisor1 has a budget of its own.
		if _, err := s.Login(ctx, "supervisor1", "supervisor1", "10.0.0.2"); err != nil {
			t.Fatalf("supervisor1: %v", err)
		}
		// 10.0.0.1 has spent 3 of 5 (the attempt from 10.0.0.9 was not
		// its); two more names, then the address is refused whatever the name.
		for _, name := range []string{"x1", "x2"} {
			if _, err := s.Login(ctx, name, "guess", "10.0.0.1"); !errors.Is(err, ErrBadCredentials) {
				t.Fatalf("%s from 10.0.0.1: %v", name, err)
			}
		}
		_, err = s.Login(ctx, "supervisor1", "supervisor1", "10.0.0.1")
		if !errors.As(err, &lim) || lim.Kind != "address" {
			t.Fatalf("6th attempt from 10.0.0.1: %v; want the per-address limit", err)
		}
		if k := "rate:" + e.prefix + ":{q}:limit:login_addr:10.0.0.1"; e.rdb.Exists(ctx, k).Val() != 1 {
			t.Fatalf("no limiter key %s", k)
		}
		if !strings.Contains(err.Error(), "address") {
			t.Fatalf("message %q does not say what was limited", err)
		}
	})
}

func TestRedisUsers(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		s := newStore(t, e, nil)
		carol := User{Name: "carol", DisplayName: "Carol Agent", Role: RoleAgent, Skills: map[string]int{"billing": 7}}
		if err := s.Add(ctx, carol, "carol-secret"); err != nil {
			t.Fatal(err)
		}
		h := e.rdb.HGetAll(ctx, e.prefix+":{q}:user:carol").Val()
		if h["role"] != "agent" || h["skills"] != "billing=7" || h["display_name"] != "Carol Agent" || !strings.HasPrefix(h["password_hash"], "$2a$") {
			t.Fatalf("user hash: %v", h)
		}
		if !e.rdb.SIsMember(ctx, e.prefix+":{q}:users", "carol").Val() {
			t.Fatal("carol not in the users set")
		}
		if err := s.Add(ctx, carol, "other-secret"); !errors.Is(err, ErrExists) {
			t.Fatalf("second add: %v; want ErrExists", err)
		}
		if err := s.Add(ctx, User{Name: "agent1", Role: RoleAdmin}, "whatever1"); !errors.Is(err, ErrExists) {
			t.Fatalf("add over a configuration user: %v; want ErrExists", err)
		}
		if err := s.Add(ctx, User{Name: "dave", Role: RoleAgent, Skills: map[string]int{"sales": 1}}, "dave-secret"); err == nil || !strings.Contains(err.Error(), "unknown skill") {
			t.Fatalf("unknown skill: %v", err)
		}
		if err := s.Add(ctx, User{Name: "dave", Role: RoleAdmin}, "dave"); err == nil {
			t.Fatal("the user name as password was accepted")
		}

		list, err := s.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, u := range list {
			names = append(names, u.Name)
			if u.Name == "carol" && (u.FromConfig || u.Skills["billing"] != 7) || u.Name == "agent1" && !u.FromConfig {
				t.Errorf("listed %+v", u)
			}
		}
		if strings.Join(names, ",") != "agent1,carol,supervisor1" {
			t.Fatalf("List: %v", names)
		}

		sess, err := s.Login(ctx, "carol", "carol-secret", "10.0.0.1")
		if err != nil || sess.User.DisplayName != "Carol Agent" {
			t.Fatalf("carol's login: %+v %v", sess, err)
		}
		// A new password ends the sessions opened with the old one.
		if err := s.SetPassword(ctx, "carol", "carol-secret-2"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Authenticate(ctx, sess.Token); !errors.Is(err, ErrNoSession) {
			t.Fatalf("old session after passwd: %v; want ErrNoSession", err)
		}
		if _, err := s.Login(ctx, "carol", "carol-secret", "10.0.0.1"); !errors.Is(err, ErrBadCredentials) {
			t.Fatalf("old password: %v", err)
		}
		sess, err = s.Login(ctx, "carol", "carol-secret-2", "10.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		// Removing the user ends its sessions too.
		if err := s.Remove(ctx, "carol"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Authenticate(ctx, sess.Token); !errors.Is(err, ErrNoSession) {
			t.Fatalf("session after remove: %v", err)
		}
		if e.rdb.Exists(ctx, e.prefix+":{q}:user:carol").Val() != 0 || e.rdb.SIsMember(ctx, e.prefix+":{q}:users", "carol").Val() {
			t.Fatal("carol's keys remain")
		}
		if err := s.Remove(ctx, "carol"); !errors.Is(err, ErrNoUser) {
			t.Fatalf("second remove: %v", err)
		}
		if err := s.SetPassword(ctx, "carol", "carol-secret-3"); !errors.Is(err, ErrNoUser) {
			t.Fatalf("passwd of a removed user: %v", err)
		}
		if err := s.SetPassword(ctx, "agent1", "new-password"); !errors.Is(err, ErrConfigUser) {
			t.Fatalf("passwd of a configuration user: %v", err)
		}
		if err := s.Remove(ctx, "supervisor1"); !errors.Is(err, ErrConfigUser) {
			t.Fatalf("remove of a configuration user: %v", err)
		}
		if _, err := s.Get(ctx, "carol"); !errors.Is(err, ErrNoUser) {
			t.Fatalf("Get after remove: %v", err)
		}
	})
}

// A user removed and added again under the same name does not get the old
// sessions back.
func TestReAddedUserStartsOver(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		s := newStore(t, e, nil)
		u := User{Name: "erin", Role: RoleSupervisor}
		if err := s.Add(ctx, u, "erin-secret"); err != nil {
			t.Fatal(err)
		}
		sess, err := s.Login(ctx, "erin", "erin-secret", "10.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Remove(ctx, "erin"); err != nil {
			t.Fatal(err)
		}
		if err := s.Add(ctx, u, "erin-secret"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Authenticate(ctx, sess.Token); !errors.Is(err, ErrNoSession) {
			t.Fatalf("old session of a re-added user: %v", err)
		}
	})
}

// A user hash broken by hand is named, and the other users are still listed.
func TestListSkipsBrokenUser(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		s := newStore(t, e, nil)
		if err := s.Add(ctx, User{Name: "frank", Role: RoleAdmin}, "frank-secret"); err != nil {
			t.Fatal(err)
		}
		if err := s.Add(ctx, User{Name: "gina", Role: RoleAdmin}, "gina-secret"); err != nil {
			t.Fatal(err)
		}
		e.rdb.HSet(ctx, s.UserKey("frank"), "role", "owner")
		list, err := s.List(ctx)
		if err == nil || !strings.Contains(err.Error(), s.UserKey("frank")) || !strings.Contains(err.Error(), `"owner"`) {
			t.Fatalf("List error %v; want one naming %s and its role", err, s.UserKey("frank"))
		}
		var names []string
		for _, u := range list {
			names = append(names, u.Name)
		}
		if strings.Join(names, ",") != "agent1,gina,supervisor1" {
			t.Fatalf("List with a broken user: %v", names)
		}
		if _, err := s.Login(ctx, "frank", "frank-secret", "10.0.0.1"); err == nil || errors.Is(err, ErrBadCredentials) {
			t.Fatalf("login of the broken user: %v; want an error naming the problem", err)
		}
	})
}
