package accounts

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"ivrd/queue"
)

// Sentinel errors callers branch on.
var (
	// ErrNoUser: no user by that name.
	ErrNoUser = errors.New("no such user")
	// ErrExists: a user by that name exists already.
	ErrExists = errors.New("user exists already")
	// ErrConfigUser: the user is in the configuration file, which ivrd
	// does not change; edit the file instead.
	ErrConfigUser = errors.New("user is defined in the configuration file (edit it there)")
	// ErrBadCredentials: wrong user name or password. Which of the two is
	// not said.
	ErrBadCredentials = errors.New("wrong user name or password")
	// ErrNoSession: the token names no live session (never issued,
	// expired, logged out, or its user was removed or changed password).
	ErrNoSession = errors.New("no such session")
)

// LimitedError is a login refused by a rate limit.
type LimitedError struct {
	Kind       string        // "user" or "address"
	RetryAfter time.Duration // when the next attempt would be allowed
}

func (e *LimitedError) Error() string {
	return fmt.Sprintf("too many login attempts for this %s: retry in %v", e.Kind, e.RetryAfter.Round(time.Second))
}

// Config configures a Store.
type Config struct {
	Prefix     string            // keys are "<prefix>:{q}:…" (the queue's prefix); default "ivrd"
	Users      []User            // from the configuration file: read-only, checked by NewStore
	KnownSkill func(string) bool // the configured skills, for users added to Redis; nil: any
	SessionTTL time.Duration     // a session ends this long after login; default 12h
	// Limiter counts login attempts (nil: no limits) per user name
	// (kind "login_user") and per client address ("login_addr").
	Limiter                         *queue.Limiter
	LoginsPerUser, LoginsPerAddress queue.Rate
	Cost                            int              // bcrypt cost of new hashes; 0: DefaultCost
	Now                             func() time.Time // clock; default time.Now
}

// Store is the users, sessions and login limits. It holds no state of its
// own besides its configuration: several Stores (and ivrd processes) on
// one Redis see the same users and sessions.
type Store struct {
	rdb    redis.UniversalClient
	cfg    Config
	prefix string
	config map[string]User

	dummyOnce sync.Once
	dummy     string // a hash to compare against for unknown users
}

// NewStore returns a store on rdb.
func NewStore(rdb redis.UniversalClient, cfg Config) (*Store, error) {
	if cfg.Prefix == "" {
		cfg.Prefix = "ivrd"
	}
	if strings.ContainsAny(cfg.Prefix, "{}: ") {
		return nil, fmt.Errorf("accounts: key prefix %q: letters, digits, - and _ (the hash tag is added)", cfg.Prefix)
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Store{rdb: rdb, cfg: cfg, prefix: cfg.Prefix + ":{q}", config: make(map[string]User, len(cfg.Users))}
	var errs []error
	for _, u := range cfg.Users {
		if _, dup := s.config[u.Name]; dup {
			errs = append(errs, fmt.Errorf("user %s: listed twice", u.Name))
		}
		if err := u.Check(nil); err != nil {
			errs = append(errs, fmt.Errorf("user %s: %w", u.Name, err))
		}
		if err := CheckHash(u.PasswordHash); err != nil {
			errs = append(errs, fmt.Errorf("user %s: password hash %w", u.Name, err))
		}
		u.FromConfig = true
		u.Skills = maps.Clone(u.Skills)
		s.config[u.Name] = u
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("accounts: %w", err)
	}
	return s, nil
}

// SessionTTL is how long a session lasts from login.
func (s *Store) SessionTTL() time.Duration { return s.cfg.SessionTTL }

// key returns the full Redis key for the parts.
func (s *Store) key(parts ...string) string { return s.prefix + ":" + strings.Join(parts, ":") }

// UserKey is the Redis hash of a user added with `ivrd user add`.
func (s *Store) UserKey(name string) string { return s.key("user", name) }

// UsersKey is the Redis set of the names of users in Redis.
func (s *Store) UsersKey() string { return s.key("users") }

// addScript creates a user unless it exists. KEYS: users set, user hash.
// ARGV: name, then field/value pairs.
var addScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[2]) == 1 then return redis.error_reply('EXISTS') end
redis.call('HSET', KEYS[2], unpack(ARGV, 2))
redis.call('SADD', KEYS[1], ARGV[1])
return 1
`)

// passwdScript replaces an existing user's hash. KEYS: user hash. ARGV: hash.
var passwdScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return redis.error_reply('NOUSER') end
redis.call('HSET', KEYS[1], 'password_hash', ARGV[1])
return 1
`)

// removeScript deletes a user. KEYS: users set, user hash. ARGV: name.
var removeScript = redis.NewScript(`
local n = redis.call('DEL', KEYS[2])
redis.call('SREM', KEYS[1], ARGV[1])
return n
`)

func scriptErr(op string, err error) error {
	switch strings.TrimPrefix(err.Error(), "ERR ") {
	case "EXISTS":
		return fmt.Errorf("%s: %w", op, ErrExists)
	case "NOUSER":
		return fmt.Errorf("%s: %w", op, ErrNoUser)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// Get returns the user called name: from the configuration file, else from
// Redis.
func (s *Store) Get(ctx context.Context, name string) (User, error) {
	if u, ok := s.config[name]; ok {
		u.Skills = maps.Clone(u.Skills)
		return u, nil
	}
	if !ValidName(name) {
		return User{}, fmt.Errorf("user %q: %w", name, ErrNoUser)
	}
	m, err := s.rdb.HGetAll(ctx, s.UserKey(name)).Result()
	if err != nil {
		return User{}, fmt.Errorf("read user %s (%s): %w", name, s.UserKey(name), err)
	}
	if len(m) == 0 {
		return User{}, fmt.Errorf("user %s: %w", name, ErrNoUser)
	}
	return s.fromHash(name, m)
}

func (s *Store) fromHash(name string, m map[string]string) (User, error) {
	skills, err := ParseSkills(m["skills"])
	if err != nil {
		return User{}, fmt.Errorf("user %s (%s): %w", name, s.UserKey(name), err)
	}
	u := User{Name: name, DisplayName: m["display_name"], Role: Role(m["role"]), Skills: skills, PasswordHash: m["password_hash"]}
	if !u.Role.Valid() {
		return User{}, fmt.Errorf("user %s (%s): role %q is not one of agent, supervisor, admin", name, s.UserKey(name), u.Role)
	}
	return u, nil
}

// List returns every user, from the configuration file and from Redis,
// sorted by name. A configuration user hides a Redis user of the same name.
// A user that cannot be read (a hash edited by hand) is left out and named
// in the error, which then comes with the other users.
func (s *Store) List(ctx context.Context) ([]User, error) {
	out := make([]User, 0, len(s.config))
	for _, u := range s.config {
		u.Skills = maps.Clone(u.Skills)
		out = append(out, u)
	}
	names, err := s.rdb.SMembers(ctx, s.UsersKey()).Result()
	if err != nil {
		return nil, fmt.Errorf("list users (%s): %w", s.UsersKey(), err)
	}
	slices.Sort(names)
	cmds := make([]*redis.MapStringStringCmd, 0, len(names))
	if len(names) > 0 {
		_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, n := range names {
				cmds = append(cmds, p.HGetAll(ctx, s.UserKey(n)))
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("read users: %w", err)
		}
	}
	var bad []error
	for i, n := range names {
		if _, ok := s.config[n]; ok || len(cmds[i].Val()) == 0 {
			continue // hidden by the file, or removed meanwhile
		}
		u, err := s.fromHash(n, cmds[i].Val())
		if err != nil {
			bad = append(bad, err)
			continue
		}
		out = append(out, u)
	}
	slices.SortFunc(out, func(a, b User) int { return strings.Compare(a.Name, b.Name) })
	return out, errors.Join(bad...)
}

// Add creates a user in Redis with the given password (hashed here). The
// name must not be taken, in Redis or in the configuration file.
func (s *Store) Add(ctx context.Context, u User, password string) error {
	if _, ok := s.config[u.Name]; ok {
		return fmt.Errorf("add user %s: %w", u.Name, ErrExists)
	}
	if err := u.Check(s.cfg.KnownSkill); err != nil {
		return fmt.Errorf("add user %s: %w", u.Name, err)
	}
	if err := CheckNewPassword(u.Name, password); err != nil {
		return fmt.Errorf("add user %s: %w", u.Name, err)
	}
	hash, err := HashPassword(password, s.cfg.Cost)
	if err != nil {
		return err
	}
	err = addScript.Run(ctx, s.rdb, []string{s.UsersKey(), s.UserKey(u.Name)}, u.Name,
		"name", u.Name, "display_name", u.DisplayName, "role", string(u.Role),
		"skills", FormatSkills(u.Skills), "password_hash", hash,
		"created", strconv.FormatInt(s.cfg.Now().UnixMilli(), 10)).Err()
	if err != nil {
		return scriptErr("add user "+u.Name+" ("+s.UserKey(u.Name)+")", err)
	}
	return nil
}

// SetPassword replaces a Redis user's password. The user's sessions end.
func (s *Store) SetPassword(ctx context.Context, name, password string) error {
	if _, ok := s.config[name]; ok {
		return fmt.Errorf("set password of %s: %w", name, ErrConfigUser)
	}
	if !ValidName(name) {
		return fmt.Errorf("set password of %q: %w", name, ErrNoUser)
	}
	if err := CheckNewPassword(name, password); err != nil {
		return fmt.Errorf("set password of %s: %w", name, err)
	}
	hash, err := HashPassword(password, s.cfg.Cost)
	if err != nil {
		return err
	}
	if err := passwdScript.Run(ctx, s.rdb, []string{s.UserKey(name)}, hash).Err(); err != nil {
		return scriptErr("set password of "+name+" ("+s.UserKey(name)+")", err)
	}
	return nil
}

// Remove deletes a Redis user. Its sessions end.
func (s *Store) Remove(ctx context.Context, name string) error {
	if _, ok := s.config[name]; ok {
		return fmt.Errorf("remove user %s: %w", name, ErrConfigUser)
	}
	if !ValidName(name) {
		return fmt.Errorf("remove user %q: %w", name, ErrNoUser)
	}
	n, err := removeScript.Run(ctx, s.rdb, []string{s.UsersKey(), s.UserKey(name)}, name).Int()
	if err != nil {
		return scriptErr("remove user "+name+" ("+s.UserKey(name)+")", err)
	}
	if n == 0 {
		return fmt.Errorf("remove user %s: %w", name, ErrNoUser)
	}
	return nil
}
