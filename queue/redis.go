package queue

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// Backend is the Redis ivrd talks to: a real one (plain, Sentinel or
// Cluster) or the embedded in-process store.
type Backend struct {
	Client   redis.UniversalClient
	Embedded bool // state is neither shared with other instances nor persistent
	mini     *miniredis.Miniredis
}

// Close closes the client and stops the embedded store.
func (b *Backend) Close() error {
	err := b.Client.Close()
	if b.mini != nil {
		b.mini.Close()
	}
	return err
}

// Open connects to the Redis rawURL names, or starts the embedded store
// when rawURL is empty.
//
//	redis://[user:pass@]host:port/db                 one server
//	rediss://…                                       the same over TLS
//	redis://host1:port,host2:port/db?master=name     Sentinel (the hosts are sentinels)
//	redis://host1:port,host2:port?cluster=true       Cluster
func Open(rawURL string, log *slog.Logger) (*Backend, error) {
	if rawURL == "" {
		m := miniredis.NewMiniRedis()
		// Without ClockTTL, keys with a TTL (the rate limiter's) never expire.
		m.ClockTTL(true)
		if err := m.StartAddr("127.0.0.1:0"); err != nil {
			return nil, fmt.Errorf("start embedded redis: %w", err)
		}
		log.Warn("no redis.url configured: using an embedded in-process store; queue state is neither shared with other instances nor persistent",
			"addr", m.Addr())
		c := redis.NewUniversalClient(smallBuffers(&redis.UniversalOptions{Addrs: []string{m.Addr()}}))
		return &Backend{Client: c, Embedded: true, mini: m}, nil
	}
	opts, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	return &Backend{Client: redis.NewUniversalClient(opts)}, nil
}

// parseURL reads a redis:// URL into UniversalOptions. Several hosts
// separated by commas mean Sentinel (with ?master=) or Cluster
// (?cluster=true).
func parseURL(rawURL string) (*redis.UniversalOptions, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	if u.Scheme != "redis" && u.Scheme != "rediss" {
		return nil, fmt.Errorf("redis url %q: scheme must be redis or rediss", rawURL)
	}
	hosts := strings.Split(u.Host, ",")
	q := u.Query()
	// Parse the first host with go-redis's own parser for user, password,
	// db, TLS and timeouts.
	first := *u
	first.Host = hosts[0]
	first.RawQuery = ""
	one, err := redis.ParseURL(first.String())
	if err != nil {
		return nil, fmt.Errorf("redis url: %w", err)
	}
	opts := &redis.UniversalOptions{
		Addrs:        hosts,
		Username:     one.Username,
		Password:     one.Password,
		DB:           one.DB,
		TLSConfig:    one.TLSConfig,
		MasterName:   q.Get("master"),
		DialTimeout:  2 * time.Second,
		ReadTimeout:  2 * time.Second,
		WriteTimeout: 2 * time.Second,
	}
	smallBuffers(opts)
	if q.Get("cluster") == "true" {
		opts.IsClusterMode = true
		opts.DB = 0
	}
	return opts, nil
}

// redisBuffer is the size of each Redis connection's read and write
// buffers.
const redisBuffer = 4 << 10

// smallBuffers gives o's connections redisBuffer-sized buffers. Our
// commands and replies are small (a script's keys and a few arguments; a
// call, an agent, counters): go-redis's defaults, 32 KiB each way per
// connection and 128 KiB for the pipeline pool's, were most of what the
// connections opened at a busy moment keep for good. A longer reply still
// reads whole.
func smallBuffers(o *redis.UniversalOptions) *redis.UniversalOptions {
	o.ReadBufferSize, o.WriteBufferSize = redisBuffer, redisBuffer
	o.PipelineReadBufferSize, o.PipelineWriteBufferSize = redisBuffer, redisBuffer
	return o
}

// Ping checks that Redis answers.
func (b *Backend) Ping(ctx context.Context) error {
	return b.Client.Ping(ctx).Err()
}
