// Package queue keeps callers waiting by skill and agents with their states
// in Redis, matches them atomically (one Lua script per transition, every
// key under one hash tag so the scripts also run on Redis Cluster), and
// estimates each caller's wait from what the queue has measured.
//
// Store is the Redis state; Queue runs the waiting side of a call (the IVR's
// queue node); Dispatcher pairs callers with agents; the reconciler repairs
// Redis after a start or a reconnect; Limiter guards admissions. The key
// layout is documented in docs/queue.md.
package queue
