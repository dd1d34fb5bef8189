package agents

import (
	"context"
	"encoding/json"
	"log/slog"
	"sync"
	"time"
)

// conn is one signalling connection of an agent. The agent's goroutine
// sends through it without blocking: a writer goroutine drains a bounded
// queue, and a client too slow to keep up is disconnected rather than
// allowed to stall the agent (or the calls waiting on it).
type conn struct {
	c      Conn
	log    *slog.Logger
	out    chan []byte
	once   sync.Once
	gone   chan struct{}
	reason string // for closeAfter; set before the nil is queued
}

const (
	outQueue     = 64
	writeTimeout = 10 * time.Second
)

func newConn(c Conn, log *slog.Logger) *conn {
	return &conn{c: c, log: log, out: make(chan []byte, outQueue), gone: make(chan struct{})}
}

// send queues a message; a full queue closes the connection.
func (c *conn) send(v any) {
	data, err := json.Marshal(v)
	if err != nil {
		c.log.Error("encode message", "error", err)
		return
	}
	select {
	case <-c.gone:
	case c.out <- data:
	default:
		c.log.Warn("agent connection too slow: closing it")
		c.close("too slow")
	}
}

func (c *conn) writeLoop(ctx context.Context) {
	for {
		select {
		case <-c.gone:
			return
		case <-ctx.Done():
			return
		case data := <-c.out:
			if data == nil { // closeAfter: everything before it is written
				c.close(c.reason)
				return
			}
			wctx, cancel := context.WithTimeout(ctx, writeTimeout)
			err := c.c.Write(wctx, data)
			cancel()
			if err != nil {
				c.close("")
				return
			}
		}
	}
}

// closeAfter closes the connection once the messages queued before are
// written.
func (c *conn) closeAfter(reason string) {
	c.reason = reason
	select {
	case c.out <- nil:
	default:
		c.close(reason)
	}
}

func (c *conn) close(reason string) {
	c.once.Do(func() {
		close(c.gone)
		go c.c.Close(reason) // a WebSocket close waits for the peer: never in the agent's goroutine
	})
}
