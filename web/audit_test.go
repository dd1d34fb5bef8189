package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"ivrd/accounts"
)

// TestRedisAudit: entries come back newest first, paged, and the list
// keeps only the newest cap entries.
func TestRedisAudit(t *testing.T) {
	rdb := realRedis(t)
	q := newQueue(t, rdb)
	a := NewRedisAudit(q.Store(), 5)
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)
	for i := range 7 {
		if err := a.Append(ctx, AuditEntry{At: t0.Add(time.Duration(i) * time.Minute), User: "sup", Action: AuditListen, RecordingID: fmt.Sprintf("r%d", i), RemoteAddr: "10.0.0.1"}); err != nil {
			t.Fatal(err)
		}
	}
	es, total, err := a.List(ctx, 0, 3)
	if err != nil {
		t.Fatal(err)
	}
	if total != 5 || len(es) != 3 || es[0].RecordingID != "r6" || es[2].RecordingID != "r4" || !es[0].At.Equal(t0.Add(6*time.Minute)) || es[0].User != "sup" || es[0].RemoteAddr != "10.0.0.1" {
		t.Fatalf("first page: total %d %+v", total, es)
	}
	es, _, _ = a.List(ctx, 3, 3)
	if len(es) != 2 || es[0].RecordingID != "r3" || es[1].RecordingID != "r2" {
		t.Fatalf("second page: %+v", es)
	}
	if n, _ := rdb.LLen(ctx, q.Store().Key("audit")).Result(); n != 5 {
		t.Fatalf("the list holds %d entries, want the cap 5", n)
	}
}

// TestAuditEndpoint: GET /api/v1/audit pages through the trail with
// next_offset; bad parameters get 400; what Server.audit records names
// the user and the address.
func TestAuditEndpoint(t *testing.T) {
	q := newQueue(t, realRedis(t))
	s, err := New(Config{Queue: q})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		r := httptest.NewRequest(http.MethodGet, "/api/v1/recordings/x", nil)
		r.RemoteAddr = "192.0.2.7:4711"
		r = r.WithContext(WithUser(r.Context(), accounts.User{Name: "supervisor1", Role: accounts.RoleSupervisor}))
		s.audit(r, []string{AuditView, AuditListen, AuditDownload}[i], fmt.Sprintf("%032x", i))
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	code, body := get(t, srv, "/api/v1/audit?limit=2")
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	var p struct {
		Entries    []AuditEntry
		Total      int
		NextOffset *int `json:"next_offset"`
	}
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatal(err)
	}
	if p.Total != 3 || len(p.Entries) != 2 || p.NextOffset == nil || *p.NextOffset != 2 {
		t.Fatalf("first page: %s", body)
	}
	e := p.Entries[0]
	if e.Action != AuditDownload || e.User != "supervisor1" || e.RemoteAddr != "192.0.2.7" || e.RecordingID != fmt.Sprintf("%032x", 2) || time.Since(e.At) > time.Minute {
		t.Fatalf("newest entry: %+v", e)
	}
	for _, f := range []string{`"at"`, `"user"`, `"action"`, `"recording_id"`, `"remote_addr"`} {
		if !strings.Contains(body, f) {
			t.Errorf("entry lacks %s: %s", f, body)
		}
	}
	code, body = get(t, srv, "/api/v1/audit?offset=2&limit=2")
	if code != 200 || !strings.Contains(body, `"next_offset": null`) || !strings.Contains(body, `"action": "view"`) {
		t.Fatalf("last page: %d %s", code, body)
	}
	for _, bad := range []string{"limit=0", "limit=501", "offset=-1", "offset=x"} {
		if code, body := get(t, srv, "/api/v1/audit?"+bad); code != 400 || !strings.Contains(body, `"error"`) {
			t.Errorf("?%s: %d %s", bad, code, body)
		}
	}
}
