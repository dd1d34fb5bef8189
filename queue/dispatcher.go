package queue

import (
	"context"
	"fmt"
	"runtime/debug"
	"strings"
	"sync"
	"time"
)

// Loop timings. The dispatcher also runs on every kick (a caller arrived,
// an agent became available); the tick is the safety net.
const (
	dispatchTick   = 500 * time.Millisecond
	dispatchBatch  = 50
	healthTick     = time.Second
	heartbeatEvery = 5 * time.Second
	reconcileEvery = 30 * time.Second
	// staleAfter: an instance silent this long is taken for crashed and its
	// calls are cleaned up by the others.
	staleAfter   = 30 * time.Second
	snapshotTTL  = time.Second
	redisTimeout = 2 * time.Second
)

// Run runs the queue's background work until ctx ends: the dispatcher
// (when a Connector is configured), the subscription to offers made by
// other instances, and the health loop that heartbeats, notices Redis going
// and coming back, and reconciles. Each loop restarts itself after a panic.
func (q *Queue) Run(ctx context.Context) {
	var wg sync.WaitGroup
	loops := []struct {
		name string
		fn   func(context.Context)
	}{{"health", q.healthLoop}, {"offers", q.offerLoop}}
	if q.cfg.Connector != nil {
		loops = append(loops, struct {
			name string
			fn   func(context.Context)
		}{"dispatch", q.dispatchLoop})
	} else {
		q.log.Warn("no agent connector: callers queue and hear announcements, but this instance matches nobody")
	}
	for _, l := range loops {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q.supervise(ctx, l.name, l.fn)
		}()
	}
	wg.Wait()
}

// supervise runs fn until ctx ends, restarting it after a panic: a bug in
// one round must not stop the queue until a restart.
func (q *Queue) supervise(ctx context.Context, name string, fn func(context.Context)) {
	for ctx.Err() == nil {
		func() {
			defer func() {
				if r := recover(); r != nil {
					q.log.Error("queue loop panicked; restarting it", "loop", name, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
					q.cfg.Metrics.loopRestart(name)
				}
			}()
			fn(ctx)
		}()
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (q *Queue) dispatchLoop(ctx context.Context) {
	t := time.NewTicker(dispatchTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-q.kick:
		case <-t.C:
		}
		q.dispatchOnce(ctx)
	}
}

// dispatchOnce matches until no pair is left and hands each match to the
// instance holding the caller.
func (q *Queue) dispatchOnce(ctx context.Context) {
	skills := q.Skills()
	for ctx.Err() == nil {
		rctx, cancel := context.WithTimeout(ctx, redisTimeout)
		ms, err := q.st.Dispatch(rctx, skills, dispatchBatch)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				q.log.Warn("dispatch failed; retrying", "error", err)
				q.cfg.Metrics.dispatchError()
			}
			return
		}
		for _, m := range ms {
			q.cfg.Metrics.matched(m.Skill)
			q.route(ctx, m)
		}
		if len(ms) < dispatchBatch {
			return
		}
	}
}

// route delivers a match locally or publishes it to the owning instance.
func (q *Queue) route(ctx context.Context, m Match) {
	log := q.log.With("call_id", m.Call, "agent", m.Agent, "skill", m.Skill)
	if m.Owner == q.st.Owner() {
		if q.deliver(m) {
			return
		}
		// A caller being enqueued is in Redis before it is in calls: let
		// the joins in progress register (see joins), then look again.
		q.joins.Lock()
		delivered := q.deliver(m)
		q.joins.Unlock()
		if delivered {
			return
		}
		// We own the call but no longer hold it: it ended as it was
		// matched. Free the agent (abandon handles an offered call).
		log.Info("matched call already gone: releasing the agent")
		rctx, cancel := context.WithTimeout(ctx, redisTimeout)
		defer cancel()
		if _, err := q.st.Abandon(rctx, m.Call); err != nil {
			log.Warn("release agent of a gone call", "error", err)
		}
		return
	}
	rctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	msg := m.Call + " " + m.Agent + " " + m.Skill
	if err := q.st.rdb.Publish(rctx, q.st.Key("offers", m.Owner), msg).Err(); err != nil {
		// The owner's poll finds the offer in the call's entry anyway.
		log.Warn("publish offer to the owning instance", "owner", m.Owner, "error", err)
	}
}

// offerLoop receives offers other instances made for our callers.
func (q *Queue) offerLoop(ctx context.Context) {
	sub := q.st.rdb.Subscribe(ctx, q.st.Key("offers", q.st.Owner()))
	defer sub.Close()
	ch := sub.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case msg, ok := <-ch:
			if !ok {
				return
			}
			f := strings.Fields(msg.Payload)
			if len(f) != 3 {
				q.log.Warn("malformed offer message", "payload", msg.Payload)
				continue
			}
			q.route(ctx, Match{Call: f[0], Agent: f[1], Skill: f[2], Owner: q.st.Owner()})
		}
	}
}

// healthLoop pings Redis every second, heartbeats, and reconciles on
// start, after every reconnect and every reconcileEvery.
func (q *Queue) healthLoop(ctx context.Context) {
	t := time.NewTicker(healthTick)
	defer t.Stop()
	up := false
	var lastBeat, lastReconcile time.Time
	for {
		// The epoch key is written by every reconciliation: when it is
		// missing, Redis lost its data (a restart without persistence,
		// perhaps between two pings) and must be reconciled at once.
		rctx, cancel := context.WithTimeout(ctx, redisTimeout)
		n, err := q.st.rdb.Exists(rctx, q.st.Key("epoch")).Result()
		cancel()
		if err == nil && n == 0 && up {
			q.log.Warn("Redis lost its data: reconciling")
			up = false
		}
		switch {
		case ctx.Err() != nil:
			return
		case err != nil && up:
			up = false
			q.cfg.Metrics.redisUp(false)
			q.log.Error("Redis unreachable: waiting callers keep their music, new callers are told we cannot take the call", "error", err)
		case err == nil:
			if !up {
				q.cfg.Metrics.redisUp(true)
				if !lastReconcile.IsZero() {
					q.log.Info("Redis reachable again: reconciling")
				}
				if q.reconcileNow(ctx) == nil {
					up, lastReconcile, lastBeat = true, time.Now(), time.Now()
				}
				break
			}
			if time.Since(lastBeat) >= heartbeatEvery {
				rctx, cancel := context.WithTimeout(ctx, redisTimeout)
				if err := q.st.Heartbeat(rctx); err == nil {
					lastBeat = time.Now()
				}
				cancel()
			}
			if time.Since(lastReconcile) >= reconcileEvery {
				if q.reconcileNow(ctx) == nil {
					lastReconcile = time.Now()
				}
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Healthy reports whether Redis answers now.
func (q *Queue) Healthy(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	if err := q.st.rdb.Ping(rctx).Err(); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}

// OnReconcile sets what is called before every reconciliation (e.g. to
// create the configured agents again after Redis lost them). It may be
// called while Run runs.
func (q *Queue) OnReconcile(fn func(context.Context) error) { q.onReconcile.Store(&fn) }

// Reconcile repairs what this instance owns in Redis now: callers who left
// while Redis was unreachable are removed (counted abandoned), calls Redis
// lost are put back with their original place, stale reservations are
// freed. It runs by itself on start, on reconnect and periodically.
func (q *Queue) Reconcile(ctx context.Context) (ReconcileReport, error) {
	if fn := q.onReconcile.Load(); fn != nil && *fn != nil {
		if err := (*fn)(ctx); err != nil {
			return ReconcileReport{}, fmt.Errorf("before reconcile: %w", err)
		}
	}
	q.mu.Lock()
	gone := make([]string, 0, len(q.gone))
	for id := range q.gone {
		gone = append(gone, id)
	}
	q.mu.Unlock()
	for _, id := range gone {
		if _, err := q.st.Abandon(ctx, id); err != nil {
			return ReconcileReport{}, err
		}
		q.mu.Lock()
		delete(q.gone, id)
		q.mu.Unlock()
	}
	q.joins.Lock() // no caller between Redis and calls (see joins)
	live := q.live()
	ids := make([]string, 0, len(live))
	for id := range live {
		ids = append(ids, id)
	}
	rep, err := q.st.Reconcile(ctx, ids, q.st.now().Add(-staleAfter))
	q.joins.Unlock()
	if err != nil {
		return rep, err
	}
	for _, id := range rep.Missing {
		if _, err := q.st.Restore(ctx, live[id]); err != nil {
			return rep, err
		}
	}
	rep.Abandoned = len(gone)
	return rep, nil
}

func (q *Queue) reconcileNow(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	rep, err := q.Reconcile(rctx)
	if err != nil {
		q.log.Warn("reconcile failed; will retry", "error", err)
		return err
	}
	q.cfg.Metrics.reconciled(rep)
	if rep.Lost+rep.Removed+rep.Repaired+len(rep.Missing)+rep.Abandoned > 0 {
		q.log.Info("reconciled queue state", "abandoned", rep.Abandoned, "lost", rep.Lost,
			"stale_entries", rep.Removed, "agents_freed", rep.Repaired, "restored", len(rep.Missing))
	}
	q.Kick()
	return nil
}

// snapshot returns a skill's snapshot, shared by this instance's callers
// for up to a second.
func (q *Queue) snapshot(ctx context.Context, skill string) (Snapshot, error) {
	q.snapMu.Lock()
	c, ok := q.snaps[skill]
	q.snapMu.Unlock()
	if ok && time.Since(c.at) < snapshotTTL {
		return c.snap, nil
	}
	rctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	s, err := q.st.Snapshot(rctx, skill)
	if err != nil {
		return Snapshot{}, err
	}
	q.snapMu.Lock()
	q.snaps[skill] = cachedSnap{snap: s, at: time.Now()}
	q.snapMu.Unlock()
	return s, nil
}

type cachedSnap struct {
	snap Snapshot
	at   time.Time
}
