package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"
)

// idleState is the server at rest: what must come back after a load run
// and a quiet minute.
type idleState struct {
	Goroutines float64        `json:"goroutines"`
	FDs        int            `json:"fds"`
	Sockets    int            `json:"sockets"`
	UDP        int            `json:"udp_sockets"`
	RSS        int64          `json:"rss"`
	Keys       int            `json:"redis_keys"`
	KeyKinds   map[string]int `json:"redis_key_kinds"` // key pattern → how many
	// GoroutineKinds are the most common goroutines by the function that
	// started them, "count function".
	GoroutineKinds []string `json:"goroutine_kinds"`
	// Memory is where RSS is by the Go runtime's account.
	Memory goMemory `json:"go_memory"`
}

// readIdle samples the server and counts its Redis keys by pattern.
func readIdle(ctx context.Context, srv *server, rdb *redis.Client) (idleState, error) {
	var st idleState
	ps, err := readProc(srv.pid)
	if err != nil {
		return st, err
	}
	st.FDs, st.Sockets, st.UDP, st.RSS = ps.FDs, ps.Sockets, ps.UDP, ps.RSS
	m, err := srv.metrics()
	if err != nil {
		return st, fmt.Errorf("read ivrd's metrics: %w", err)
	}
	g, ok := m["go_goroutines"]
	if !ok {
		return st, errors.New("metric go_goroutines not found")
	}
	st.Goroutines = g
	if st.Memory, err = memoryFrom(m); err != nil {
		return st, err
	}
	st.GoroutineKinds = srv.goroutineKinds(8)
	st.KeyKinds = map[string]int{}
	iter := rdb.Scan(ctx, 0, srv.prefix+":*", 1000).Iterator()
	for iter.Next(ctx) {
		st.Keys++
		st.KeyKinds[keyPattern(strings.TrimPrefix(iter.Val(), srv.prefix+":"))]++
	}
	if err := iter.Err(); err != nil {
		return st, fmt.Errorf("scan redis keys: %w", err)
	}
	return st, nil
}

// idPart matches the parts of a key that name one thing among many: call
// ids, numbers, user names of the bench, hex tokens.
var idPart = regexp.MustCompile(`^(\+?[0-9][0-9a-f-]*|bench[0-9]+|[0-9a-f]{16,}|[A-Za-z0-9_-]{20,})$`)

// keyPattern turns a key into its kind: the parts that are ids become *.
func keyPattern(key string) string {
	parts := strings.Split(key, ":")
	for i, p := range parts {
		if idPart.MatchString(p) {
			parts[i] = "*"
		}
	}
	return strings.Join(parts, ":")
}

// keyGrowth lists the key kinds that have more keys after than before.
func keyGrowth(before, after map[string]int) []string {
	var out []string
	for k, n := range after {
		if n > before[k] {
			out = append(out, fmt.Sprintf("%s +%d", k, n-before[k]))
		}
	}
	slices.Sort(out)
	return out
}

// perCallGrowth is keyGrowth of the kinds that hold one key per call,
// caller, agent or login (their pattern has a *): after a quiet wait none
// may be left over. The other kinds are one key per skill or per server.
func perCallGrowth(before, after map[string]int) []string {
	var out []string
	for _, g := range keyGrowth(before, after) {
		if strings.Contains(g, "*") {
			out = append(out, g)
		}
	}
	return out
}

// deleteKeys removes the bench's keys from Redis.
func deleteKeys(ctx context.Context, rdb *redis.Client, prefix string) error {
	iter := rdb.Scan(ctx, 0, prefix+":*", 1000).Iterator()
	var batch []string
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == 500 {
			if err := rdb.Unlink(ctx, batch...).Err(); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if len(batch) > 0 {
		if err := rdb.Unlink(ctx, batch...).Err(); err != nil {
			return err
		}
	}
	return iter.Err()
}

// goroutineKinds groups the server's goroutines by the function that
// started them (from /debug/pprof/goroutine?debug=1) and returns the n
// most common as "count function".
func (s *server) goroutineKinds(n int) []string {
	resp, err := http.Get("http://" + s.pprof + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil
	}
	return groupGoroutines(string(b), n)
}

// groupGoroutines reads a debug=1 goroutine profile: blocks of "N @ pcs"
// followed by "#\tpc\tfunction+off\tfile:line" frames, innermost first.
func groupGoroutines(profile string, n int) []string {
	counts := map[string]int{}
	for _, block := range strings.Split(profile, "\n\n") {
		lines := strings.Split(strings.TrimSpace(block), "\n")
		if strings.HasPrefix(lines[0], "goroutine profile:") {
			lines = lines[1:] // the header comes with the first block
		}
		var count int
		if len(lines) == 0 {
			continue
		}
		if _, err := fmt.Sscanf(lines[0], "%d @", &count); err != nil {
			continue
		}
		outer := ""
		for _, l := range lines[1:] {
			if f := strings.Split(l, "\t"); len(f) >= 3 && strings.HasPrefix(l, "#") {
				outer = f[2]
			}
		}
		if i := strings.LastIndex(outer, "+0x"); i >= 0 {
			outer = outer[:i]
		}
		counts[outer] += count
	}
	kinds := make([]string, 0, len(counts))
	for k := range counts {
		kinds = append(kinds, k)
	}
	slices.SortFunc(kinds, func(a, b string) int { return counts[b] - counts[a] })
	var out []string
	for _, k := range kinds[:min(n, len(kinds))] {
		out = append(out, fmt.Sprintf("%d %s", counts[k], k))
	}
	return out
}
