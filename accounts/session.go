package accounts

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"ivrd/queue"
)

// Session is a successful login.
type Session struct {
	Token   string    // 32 random bytes, base64url; only its SHA-256 is stored
	User    User      // without the password hash
	Expires time.Time // the session ends then (or at logout)
}

// tokenLen is the length of a token: 32 bytes in unpadded base64url.
var tokenLen = base64.RawURLEncoding.EncodedLen(32)

// SessionKey is the Redis key of the session a token opens: the token
// itself is never stored, only its SHA-256.
func (s *Store) SessionKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return s.key("session", hex.EncodeToString(sum[:]))
}

// fingerprint ties a session to the password it was opened with: a new
// password (or a user removed and added again) ends the old sessions.
func fingerprint(hash string) string {
	sum := sha256.Sum256([]byte(hash))
	return hex.EncodeToString(sum[:16])
}

// Login checks name and password and opens a session. Attempts are
// counted per client address and per user name, successful or not, before
// the password is checked: beyond either limit the answer is a
// *LimitedError whatever the password. A wrong name or password is
// ErrBadCredentials, in about the same time either way (an unknown name
// is also ErrNoUser, for logs).
func (s *Store) Login(ctx context.Context, name, password, addr string) (Session, error) {
	if err := s.allow(ctx, "login_addr", "address", addr, s.cfg.LoginsPerAddress); err != nil {
		return Session{}, err
	}
	// Names that cannot exist get no counter of their own (so junk names
	// make no keys); the address limit still counts them.
	if ValidName(name) {
		if err := s.allow(ctx, "login_user", "user", name, s.cfg.LoginsPerUser); err != nil {
			return Session{}, err
		}
	}
	u, err := s.Get(ctx, name)
	if errors.Is(err, ErrNoUser) {
		PasswordMatches(s.dummyHash(), password) // spend the time a real check takes
		// Both, for the caller's log (a password typed as the name is
		// better not logged); the client must be told neither.
		return Session{}, fmt.Errorf("%w (%w)", ErrBadCredentials, ErrNoUser)
	}
	if err != nil {
		return Session{}, err
	}
	if !PasswordMatches(u.PasswordHash, password) {
		return Session{}, ErrBadCredentials
	}
	return s.open(ctx, u, addr)
}

func (s *Store) allow(ctx context.Context, kind, what, key string, r queue.Rate) error {
	if s.cfg.Limiter == nil {
		return nil
	}
	v, err := s.cfg.Limiter.Allow(ctx, kind, key, r)
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	if !v.Allowed {
		return &LimitedError{Kind: what, RetryAfter: v.RetryAfter}
	}
	return nil
}

// dummyHash is a hash of nothing anyone types, at the configured cost.
func (s *Store) dummyHash() string {
	s.dummyOnce.Do(func() {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		s.dummy, _ = HashPassword(hex.EncodeToString(b), s.cfg.Cost)
	})
	return s.dummy
}

// open stores a new session for u.
func (s *Store) open(ctx context.Context, u User, addr string) (Session, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return Session{}, fmt.Errorf("session token: %w", err)
	}
	token := base64.RawURLEncoding.EncodeToString(b)
	now := s.cfg.Now()
	key := s.SessionKey(token)
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, key, "user", u.Name, "pw", fingerprint(u.PasswordHash),
			"created", strconv.FormatInt(now.UnixMilli(), 10), "addr", addr)
		p.PExpire(ctx, key, s.cfg.SessionTTL)
		return nil
	})
	if err != nil {
		return Session{}, fmt.Errorf("store session of %s: %w", u.Name, err)
	}
	u.PasswordHash = ""
	return Session{Token: token, User: u, Expires: now.Add(s.cfg.SessionTTL)}, nil
}

// Authenticate returns the user whose session token opens, as the user is
// now (a new role or skills apply at once). ErrNoSession when the token
// opens nothing.
func (s *Store) Authenticate(ctx context.Context, token string) (User, error) {
	if len(token) != tokenLen {
		return User{}, ErrNoSession
	}
	if _, err := base64.RawURLEncoding.DecodeString(token); err != nil {
		return User{}, ErrNoSession
	}
	key := s.SessionKey(token)
	m, err := s.rdb.HGetAll(ctx, key).Result()
	if err != nil {
		return User{}, fmt.Errorf("read session: %w", err)
	}
	if len(m) == 0 {
		return User{}, ErrNoSession
	}
	u, err := s.Get(ctx, m["user"])
	if errors.Is(err, ErrNoUser) {
		return User{}, ErrNoSession
	}
	if err != nil {
		return User{}, err
	}
	if subtle.ConstantTimeCompare([]byte(fingerprint(u.PasswordHash)), []byte(m["pw"])) != 1 {
		return User{}, ErrNoSession // the password changed since the login
	}
	u.PasswordHash = ""
	return u, nil
}

// Logout ends the session token opens; a token that opens nothing is not
// an error.
func (s *Store) Logout(ctx context.Context, token string) error {
	if err := s.rdb.Del(ctx, s.SessionKey(token)).Err(); err != nil {
		return fmt.Errorf("end session: %w", err)
	}
	return nil
}
