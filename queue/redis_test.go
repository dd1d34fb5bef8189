package queue

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseURL(t *testing.T) {
	o, err := parseURL("redis://u:secret@10.0.0.1:6380/3")
	if err != nil || len(o.Addrs) != 1 || o.Addrs[0] != "10.0.0.1:6380" || o.Username != "u" || o.Password != "secret" || o.DB != 3 || o.MasterName != "" || o.IsClusterMode {
		t.Fatalf("single: %+v %v", o, err)
	}
	o, err = parseURL("redis://:pw@s1:26379,s2:26379/1?master=mymaster")
	if err != nil || len(o.Addrs) != 2 || o.MasterName != "mymaster" || o.DB != 1 || o.Password != "pw" {
		t.Fatalf("sentinel: %+v %v", o, err)
	}
	o, err = parseURL("redis://n1:7000,n2:7001?cluster=true")
	if err != nil || len(o.Addrs) != 2 || !o.IsClusterMode || o.DB != 0 {
		t.Fatalf("cluster: %+v %v", o, err)
	}
	o, err = parseURL("rediss://h:6379/0")
	if err != nil || o.TLSConfig == nil {
		t.Fatalf("tls: %+v %v", o, err)
	}
	for _, bad := range []string{"http://h:6379", "redis://h:6379/notadb", "::"} {
		if _, err := parseURL(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestOpenEmbedded(t *testing.T) {
	b, err := Open("", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if !b.Embedded {
		t.Fatal("empty URL did not give the embedded store")
	}
	if err := b.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Ping(context.Background()); err == nil {
		t.Fatal("embedded store still answers after Close")
	}
}

// TestSmallBuffers: connections get redisBuffer-sized buffers, and a reply
// many times that size (a long bulk string, a long status line, a long
// array) still reads whole over them, from a real Redis.
func TestSmallBuffers(t *testing.T) {
	o, err := parseURL("redis://127.0.0.1:6379/0")
	if err != nil {
		t.Fatal(err)
	}
	if o.ReadBufferSize != redisBuffer || o.WriteBufferSize != redisBuffer ||
		o.PipelineReadBufferSize != redisBuffer || o.PipelineWriteBufferSize != redisBuffer {
		t.Fatalf("buffers %d/%d, pipeline %d/%d; want %d", o.ReadBufferSize, o.WriteBufferSize,
			o.PipelineReadBufferSize, o.PipelineWriteBufferSize, redisBuffer)
	}
	b, err := Open("redis://127.0.0.1:6379/0", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := context.Background()
	if err := b.Ping(ctx); err != nil {
		t.Skipf("no Redis at 127.0.0.1:6379: %v", err)
	}
	key := "ivrd-test:smallbuffers:" + strconv.FormatInt(time.Now().UnixNano(), 36)
	defer b.Client.Del(ctx, key, key+":list")
	big := strings.Repeat("0123456789abcdef", 10*redisBuffer/16)
	if err := b.Client.Set(ctx, key, big, time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Client.Get(ctx, key).Result(); err != nil || got != big {
		t.Fatalf("a %d-byte value read back as %d bytes: %v", len(big), len(got), err)
	}
	// A status line longer than the buffer: EVAL returning a status reply.
	status, err := b.Client.Eval(ctx, "return {ok = ARGV[1]}", nil, big).Result()
	if err != nil || status != big {
		t.Fatalf("a %d-byte status line: %v", len(big), err)
	}
	items := make([]any, 2000)
	for i := range items {
		items[i] = "member-" + strconv.Itoa(i)
	}
	if err := b.Client.RPush(ctx, key+":list", items...).Err(); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Client.LRange(ctx, key+":list", 0, -1).Result(); err != nil || len(got) != len(items) || got[1999] != "member-1999" {
		t.Fatalf("a 2,000-item array: %d items, %v", len(got), err)
	}
}
