package queue

import (
	"embed"
	"fmt"
	"strings"

	"github.com/redis/go-redis/v9"
)

//go:embed lua/*.lua
var luaFiles embed.FS

// scripts are the queue's transitions, each one Lua script so that it is
// atomic on one Redis and on Redis Cluster (every key shares one hash tag).
type scripts struct {
	upsertAgent, removeAgent, agentState, agentInstance   *redis.Script
	enqueue, dispatch, accept, requeue, abandon, complete *redis.Script
	leave, callback, snapshot, reconcile                  *redis.Script
}

func loadScripts() (*scripts, error) {
	lib, err := luaFiles.ReadFile("lua/lib.lua")
	if err != nil {
		return nil, err
	}
	load := func(name string) (*redis.Script, error) {
		src, err := luaFiles.ReadFile("lua/" + name + ".lua")
		if err != nil {
			return nil, fmt.Errorf("queue script %s: %w", name, err)
		}
		var b strings.Builder
		b.Write(lib)
		b.WriteString("\n")
		b.Write(src)
		return redis.NewScript(b.String()), nil
	}
	s := &scripts{}
	for _, e := range []struct {
		name string
		dst  **redis.Script
	}{
		{"upsert_agent", &s.upsertAgent}, {"remove_agent", &s.removeAgent}, {"agent_state", &s.agentState},
		{"agent_instance", &s.agentInstance},
		{"enqueue", &s.enqueue}, {"dispatch", &s.dispatch}, {"accept", &s.accept},
		{"requeue", &s.requeue}, {"abandon", &s.abandon}, {"complete", &s.complete},
		{"leave", &s.leave}, {"callback", &s.callback}, {"snapshot", &s.snapshot},
		{"reconcile", &s.reconcile},
	} {
		sc, err := load(e.name)
		if err != nil {
			return nil, err
		}
		*e.dst = sc
	}
	return s, nil
}
