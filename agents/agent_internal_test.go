package agents

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"ivrd/queue"
)

// nullConn is a connection whose client says nothing.
type nullConn struct{}

func (nullConn) Read(ctx context.Context) ([]byte, error) { <-ctx.Done(); return nil, ctx.Err() }
func (nullConn) Write(context.Context, []byte) error      { return nil }
func (nullConn) Close(string)                             {}

// Redis may make the agent available (a decline requeued the caller) and
// the dispatcher offer the next call before this agent's goroutine has
// processed the end of the first: the order of events is fixed here, so
// the test does not depend on winning that race. The second offer must
// wait for the end and then ring, not be refused as a lost agent.
func TestOfferBeforeTheEndOfThePreviousRingsAfterIt(t *testing.T) {
	rdb := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: []string{"127.0.0.1:6379"}})
	defer rdb.Close()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "ivrdagentint-" + hex.EncodeToString(b)
	defer func() {
		if keys, _ := rdb.Keys(context.Background(), prefix+":*").Result(); len(keys) > 0 {
			rdb.Del(context.Background(), keys...)
		}
	}()
	st, err := queue.NewStore(rdb, queue.StoreConfig{Prefix: prefix, Owner: "int"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.UpsertAgent(context.Background(), queue.Agent{ID: "a1", Skills: map[string]int{"billing": 1}}); err != nil {
		t.Fatal(err)
	}
	h, err := NewHub(Config{Store: st, NewPeer: func(string, *slog.Logger) (Peer, error) { return nil, errors.New("no audio in this test") }})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	a, err := h.attach(Identity{ID: "a1"})
	if err != nil {
		t.Fatal(err)
	}
	c := newConn(nullConn{}, a.log)
	a.send(evConn{c: c})
	first := &offer{info: CallInfo{CallID: "first"}, decided: make(chan decision, 1)}
	second := &offer{info: CallInfo{CallID: "second"}, decided: make(chan decision, 1)}
	a.send(evOffer{o: first})
	a.send(evOffer{o: second}) // before the end of the first is known
	a.send(evEnded{o: first, reason: EndDeclined})
	a.send(evMsg{c: c, m: ClientMessage{Type: MsgAccept, CallID: "second"}})
	select {
	case d := <-second.decided:
		if d.kind != "accept" {
			t.Fatalf("the second offer got %q, want it to ring and be accepted", d.kind)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the second offer never rang")
	}
}
