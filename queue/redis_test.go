package queue

import (
	"context"
	"log/slog"
	"testing"
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
