package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"ivrd/accounts"
	"ivrd/configs"
	"ivrd/queue"
)

// newAccounts returns the users, sessions and login limits of cfg on the
// queue store's Redis (same prefix).
func newAccounts(cfg *configs.Config, st *queue.Store) (*accounts.Store, error) {
	users := make([]accounts.User, 0, len(cfg.Users))
	for _, u := range cfg.Users {
		users = append(users, accounts.User{
			Name: u.Name, DisplayName: u.DisplayName, Role: accounts.Role(u.Role),
			Skills: u.Skills, PasswordHash: u.PasswordHash,
		})
	}
	return accounts.NewStore(st.Client(), accounts.Config{
		Prefix:           cfg.Redis.Prefix,
		Users:            users,
		KnownSkill:       func(s string) bool { _, ok := cfg.Queue.Skills[s]; return ok },
		SessionTTL:       cfg.HTTP.SessionTTL,
		Limiter:          queue.NewLimiter(st),
		LoginsPerUser:    queueRate(cfg.Limits.LoginsPerUser),
		LoginsPerAddress: queueRate(cfg.Limits.LoginsPerAddress),
	})
}

func queueRate(r configs.Rate) queue.Rate { return queue.Rate{N: r.N, Per: r.Per} }

// agentUsers lists the users with the agent role: the configuration
// file's and those added to Redis with `ivrd user add`. When Redis's users
// cannot be read, or some of them, the error comes with the others.
func agentUsers(ctx context.Context, cfg *configs.Config, st *queue.Store) ([]accounts.User, error) {
	acc, err := newAccounts(cfg, st)
	if err != nil {
		return nil, err
	}
	users, err := acc.List(ctx)
	if users == nil { // Redis failed: at least the file's agents
		for _, u := range cfg.Users {
			users = append(users, accounts.User{Name: u.Name, DisplayName: u.DisplayName, Role: accounts.Role(u.Role), Skills: u.Skills})
		}
	}
	return slices.DeleteFunc(users, func(u accounts.User) bool { return u.Role != accounts.RoleAgent }), err
}

// demoHashes are the password hashes of the demo accounts in
// configs/ivrd.yaml; each password is the user's name (README).
var demoHashes = map[string]bool{
	"$2a$10$ZcchT535I8S4AAvyLuHNz.cnut6T05/li8ETJDlHQG/svM6ZaTo4G": true, // agent1
	"$2a$10$RQIuKg7FGxdMJwo/6MPwD.jarAlz1lG2QNzmoLh.bhTHrh00YtfC.": true, // agent2
	"$2a$10$T3bX6MO6wpxBSqxmYkucC.lWqiRkpQZmZj/djvrsTd4V/PJJWj7HK": true, // supervisor1
}

// demoNames are the demo accounts.
var demoNames = []string{"agent1", "agent2", "supervisor1"}

// demoPasswordUsers names the configured demo accounts whose password is
// still the documented one (the user name). The shipped hashes are
// recognised without bcrypt's cost; a demo account with another hash is
// checked against its name.
func demoPasswordUsers(users []configs.User) []string {
	var out []string
	for _, u := range users {
		if !slices.Contains(demoNames, u.Name) {
			continue
		}
		if demoHashes[u.PasswordHash] || accounts.PasswordMatches(u.PasswordHash, u.Name) {
			out = append(out, u.Name)
		}
	}
	return out
}

// warnAccounts says at start what makes the web side unsafe or unusable.
func warnAccounts(cfg *configs.Config, log *slog.Logger) {
	if names := demoPasswordUsers(cfg.Users); len(names) > 0 {
		log.Warn("demo passwords in use: anyone who has read the README can log in as these users; "+
			"give them new password hashes (ivrd user hash) or remove them from users:",
			"users", strings.Join(names, ","))
	}
	if len(cfg.Users) == 0 && cfg.Redis.URL == "" {
		log.Warn("no users configured and no Redis for `ivrd user add`: nobody can log in (add users: to the configuration)")
	}
}

const userUsage = `usage: ivrd user COMMAND [-config FILE] ...

  add NAME -role agent|supervisor|admin [-skills billing=5,support=3] [-display-name "Alice Agent"] [-password-stdin]
  passwd NAME [-password-stdin]      set a new password; the user's sessions end
  list                               every user: the configuration file's and Redis's
  remove NAME                        the user's sessions end; an agent leaves the queue
  hash [-password-stdin]             print a bcrypt hash for users: in the configuration file

The commands work on the Redis of the configuration (redis.url, or
IVRD_REDIS_URL); -config defaults to configs/ivrd.yaml. Changes apply to
running servers at once. Without -password-stdin the password is asked
for twice on the terminal (what you type is shown).
`

// userCmd runs `ivrd user …`.
func userCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, userUsage)
		return 2
	}
	sub := args[0]
	fs := flag.NewFlagSet("ivrd user "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, userUsage) }
	configPath := fs.String("config", "configs/ivrd.yaml", "configuration file (redis.url, redis.prefix, queue.skills)")
	var role, skills, display *string
	var pwStdin *bool
	wantNames := 1
	switch sub {
	case "add":
		role = fs.String("role", "", "agent, supervisor or admin")
		skills = fs.String("skills", "", "agents: skill=proficiency,… (1..100), e.g. billing=5,support=3")
		display = fs.String("display-name", "", "the name people see (default: NAME)")
		pwStdin = fs.Bool("password-stdin", false, "read the password from one line of standard input")
	case "passwd":
		pwStdin = fs.Bool("password-stdin", false, "read the password from one line of standard input")
	case "hash":
		pwStdin = fs.Bool("password-stdin", false, "read the password from one line of standard input")
		wantNames = 0
	case "list":
		wantNames = 0
	case "remove":
	default:
		fmt.Fprintf(stderr, "ivrd user: unknown command %q\n\n%s", sub, userUsage)
		return 2
	}
	names, err := parseInterleaved(fs, args[1:])
	if err != nil {
		return 2
	}
	if len(names) != wantNames {
		fmt.Fprintf(stderr, "ivrd user %s: want %d name(s), got %d (%s)\n\n%s", sub, wantNames, len(names), strings.Join(names, " "), userUsage)
		return 2
	}
	in := bufio.NewReader(stdin)
	password := func(who string) (string, error) { return readPassword(in, stderr, who, *pwStdin) }
	fail := func(err error) int {
		fmt.Fprintf(stderr, "ivrd user %s: %v\n", sub, err)
		return 1
	}

	if sub == "hash" {
		pw, err := password("the new user")
		if err != nil {
			return fail(err)
		}
		if err := accounts.CheckNewPassword("", pw); err != nil {
			return fail(err)
		}
		h, err := accounts.HashPassword(pw, accounts.DefaultCost)
		if err != nil {
			return fail(err)
		}
		fmt.Fprintln(stdout, h)
		return 0
	}

	cfg, err := configs.Load(*configPath)
	if err != nil {
		return fail(err)
	}
	if cfg.Redis.URL == "" {
		return fail(fmt.Errorf("%s has no redis.url (nor does IVRD_REDIS_URL name one): the embedded store lives inside the running server, "+
			"so users are then defined in the configuration file's users: list (ivrd user hash makes a password_hash)", *configPath))
	}
	be, err := queue.Open(cfg.Redis.URL, slog.New(slog.DiscardHandler))
	if err != nil {
		return fail(err)
	}
	defer be.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := be.Ping(ctx); err != nil {
		return fail(fmt.Errorf("the Redis of %s (redis.url) does not answer: %w", *configPath, err))
	}
	st, err := queue.NewStore(be.Client, queue.StoreConfig{Prefix: cfg.Redis.Prefix, Owner: "ivrd-user"})
	if err != nil {
		return fail(err)
	}
	acc, err := newAccounts(cfg, st)
	if err != nil {
		return fail(err)
	}

	switch sub {
	case "list":
		users, err := acc.List(ctx)
		tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tROLE\tDISPLAY NAME\tSKILLS\tDEFINED IN")
		for _, u := range users {
			from := "redis"
			if u.FromConfig {
				from = "config"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.Name, u.Role, u.DisplayName, accounts.FormatSkills(u.Skills), from)
		}
		_ = tw.Flush()
		if err != nil {
			return fail(err)
		}
	case "add":
		sk, err := accounts.ParseSkills(*skills)
		if err != nil {
			return fail(err)
		}
		u := accounts.User{Name: names[0], DisplayName: *display, Role: accounts.Role(*role), Skills: sk}
		known := func(s string) bool { _, ok := cfg.Queue.Skills[s]; return ok }
		if err := u.Check(known); err != nil { // before asking for a password
			return fail(err)
		}
		if _, err := acc.Get(ctx, u.Name); err == nil {
			return fail(fmt.Errorf("user %s: %w", u.Name, accounts.ErrExists))
		}
		pw, err := password(u.Name)
		if err != nil {
			return fail(err)
		}
		if err := acc.Add(ctx, u, pw); err != nil {
			return fail(err)
		}
		if u.Role == accounts.RoleAgent {
			// Running servers also do this at their next reconciliation.
			if _, err := st.UpsertAgent(ctx, queue.Agent{ID: u.Name, Name: u.Label(), Skills: u.Skills}); err != nil {
				return fail(fmt.Errorf("user %s added, but not yet in the queue (ivrd adds it within 30 s): %w", u.Name, err))
			}
		}
		fmt.Fprintf(stdout, "added %s (%s%s)\n", u.Name, u.Role, skillNote(u.Skills))
	case "passwd":
		name := names[0]
		if _, err := acc.Get(ctx, name); err != nil {
			return fail(err)
		}
		pw, err := password(name)
		if err != nil {
			return fail(err)
		}
		if err := acc.SetPassword(ctx, name, pw); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "password of %s changed; its sessions have ended\n", name)
	case "remove":
		name := names[0]
		u, err := acc.Get(ctx, name)
		if err != nil {
			return fail(err)
		}
		if u.FromConfig {
			return fail(fmt.Errorf("remove user %s: %w", name, accounts.ErrConfigUser))
		}
		if u.Role == accounts.RoleAgent {
			// First out of the queue: an agent with a call stays, and so
			// does the user, until the call is over.
			if err := st.RemoveAgent(ctx, name); err != nil && !errors.Is(err, queue.ErrNoAgent) {
				return fail(fmt.Errorf("agent %s cannot leave the queue now (try again when the call is over): %w", name, err))
			}
		}
		if err := acc.Remove(ctx, name); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "removed %s; its sessions have ended\n", name)
	}
	return 0
}

func skillNote(sk map[string]int) string {
	if len(sk) == 0 {
		return ""
	}
	return "; " + accounts.FormatSkills(sk)
}

// parseInterleaved parses flags that may come before or after the
// positional arguments (`add NAME -role agent`), which flag.Parse alone
// stops at.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// readPassword reads one line of in: the password, without its line end.
// Interactively (not -password-stdin) it prompts on stderr and asks twice.
func readPassword(in *bufio.Reader, prompt io.Writer, who string, fromStdin bool) (string, error) {
	line := func() (string, error) {
		s, err := in.ReadString('\n')
		if err != nil && !(errors.Is(err, io.EOF) && s != "") {
			return "", fmt.Errorf("read the password: %w", err)
		}
		return strings.TrimRight(s, "\r\n"), nil
	}
	if fromStdin {
		return line()
	}
	fmt.Fprintf(prompt, "Password for %s: ", who)
	pw, err := line()
	if err != nil {
		return "", err
	}
	fmt.Fprint(prompt, "Again: ")
	again, err := line()
	if err != nil {
		return "", err
	}
	if again != pw {
		return "", errors.New("the two passwords differ")
	}
	return pw, nil
}
