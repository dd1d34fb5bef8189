// Package accounts holds who may use ivrd's web side: users with a role
// (agent, supervisor, admin), agents' skills, password hashes (bcrypt),
// login sessions and login rate limits. Users come from the configuration
// file (read-only, for the demo and small sites) and from Redis (managed
// with `ivrd user`); sessions and limits live in Redis, so every instance
// on the same Redis shares them.
package accounts

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Role is what a user may do. Roles are ordered: agent < supervisor <
// admin, and a role may do everything the roles below it may.
type Role string

// The roles, from least to most.
const (
	RoleAgent      Role = "agent"
	RoleSupervisor Role = "supervisor"
	RoleAdmin      Role = "admin"
)

// Roles lists every role, from least to most.
var Roles = []Role{RoleAgent, RoleSupervisor, RoleAdmin}

// rank is a role's place in the order; 0 for an unknown role.
func (r Role) rank() int { return slices.Index(Roles, r) + 1 }

// Valid reports whether r is one of Roles.
func (r Role) Valid() bool { return r.rank() > 0 }

// Allows reports whether a user with role r may do what needs role need.
// An unknown role allows nothing, and nothing allows an unknown need.
func (r Role) Allows(need Role) bool { return r.Valid() && need.Valid() && r.rank() >= need.rank() }

// User is one account.
type User struct {
	Name        string         `json:"name"`
	DisplayName string         `json:"display_name,omitempty"`
	Role        Role           `json:"role"`
	Skills      map[string]int `json:"skills,omitempty"` // agents only: skill → proficiency 1..100
	// PasswordHash is the bcrypt hash of the password. It never leaves
	// the process in JSON or logs.
	PasswordHash string `json:"-"`
	// FromConfig: the user is in the configuration file (read-only here)
	// rather than in Redis.
	FromConfig bool `json:"-"`
}

// LogValue keeps the password hash out of logs.
func (u User) LogValue() slog.Value {
	return slog.GroupValue(slog.String("name", u.Name), slog.String("role", string(u.Role)))
}

// Label is the name people see: the display name, or the user name.
func (u User) Label() string {
	if u.DisplayName != "" {
		return u.DisplayName
	}
	return u.Name
}

// MaxNameLen bounds user names (they become part of Redis keys).
const MaxNameLen = 64

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.@-]*$`)

// ValidName reports whether name may be a user name: letters, digits and
// _ . @ - (not first), at most MaxNameLen characters. Names are also agent
// ids in the queue, so no ':', braces or spaces.
func ValidName(name string) bool { return len(name) <= MaxNameLen && nameRE.MatchString(name) }

// Check reports what is wrong with u, or nil. knownSkill says whether a
// skill is configured (nil: any skill name is accepted). The password hash
// is checked by CheckHash, not here.
func (u User) Check(knownSkill func(string) bool) error {
	var errs []error
	if !ValidName(u.Name) {
		errs = append(errs, fmt.Errorf("user name %q: 1 to %d letters, digits, _ . @ - (not first)", u.Name, MaxNameLen))
	}
	if !u.Role.Valid() {
		errs = append(errs, fmt.Errorf("role %q is not one of agent, supervisor, admin", u.Role))
	}
	if strings.ContainsAny(u.DisplayName, "\r\n") || len(u.DisplayName) > 200 {
		errs = append(errs, errors.New("display name: one line of at most 200 bytes"))
	}
	switch {
	case u.Role == RoleAgent && len(u.Skills) == 0:
		errs = append(errs, errors.New("an agent needs at least one skill"))
	case u.Role != RoleAgent && len(u.Skills) > 0 && u.Role.Valid():
		errs = append(errs, fmt.Errorf("only agents have skills (this user is a %s)", u.Role))
	}
	for _, sk := range slices.Sorted(maps.Keys(u.Skills)) {
		if !skillRE.MatchString(sk) {
			errs = append(errs, fmt.Errorf("skill name %q: letters, digits, - and _ only", sk))
		} else if knownSkill != nil && !knownSkill(sk) {
			errs = append(errs, fmt.Errorf("unknown skill %q (not in queue.skills)", sk))
		}
		if lvl := u.Skills[sk]; lvl < 1 || lvl > 100 {
			errs = append(errs, fmt.Errorf("skill %s: proficiency %d is not in 1..100", sk, lvl))
		}
	}
	return errors.Join(errs...)
}

var skillRE = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// FormatSkills writes skills as "billing=5,support=3", sorted by name (the
// form `ivrd user --skills` reads and Redis stores).
func FormatSkills(skills map[string]int) string {
	parts := make([]string, 0, len(skills))
	for _, n := range slices.Sorted(maps.Keys(skills)) {
		parts = append(parts, n+"="+strconv.Itoa(skills[n]))
	}
	return strings.Join(parts, ",")
}

// ParseSkills reads "billing=5,support=3"; an empty string is no skills.
func ParseSkills(s string) (map[string]int, error) {
	out := make(map[string]int)
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, part := range strings.Split(s, ",") {
		name, lvl, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(strings.TrimSpace(lvl))
		name = strings.TrimSpace(name)
		if !ok || err != nil || name == "" {
			return nil, fmt.Errorf("skills: %q is not skill=proficiency (e.g. billing=5)", part)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("skills: %s is listed twice", name)
		}
		out[name] = n
	}
	return out, nil
}
