package callerid

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// crmServer serves a fake CRM: handler answers for the number in the path.
func crmServer(t *testing.T, handler http.HandlerFunc) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	return srv
}

func newTestIdentifier(t *testing.T, crmURL string, timeout time.Duration, dir *Directory) (*Identifier, *prometheus.Registry, *bytes.Buffer) {
	t.Helper()
	crm, err := NewCRM(CRMConfig{
		URL:     crmURL + "/callers/{number}?src=ivr",
		Headers: map[string]string{"Authorization": "Bearer s3cret"},
		Timeout: timeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	var logs bytes.Buffer
	id, err := NewIdentifier(IdentifierConfig{
		DefaultCountry: "US",
		Directory:      dir,
		CRM:            crm,
		Logger:         slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registerer:     reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	return id, reg, &logs
}

func count(t *testing.T, id *Identifier, result string) float64 {
	t.Helper()
	return testutil.ToFloat64(id.CRMLookups().WithLabelValues(result))
}

func TestCRMFound(t *testing.T) {
	var gotPath, gotQuery, gotAuth string
	srv := crmServer(t, func(w http.ResponseWriter, r *http.Request) {
		gotPath, gotQuery, gotAuth = r.URL.Path, r.URL.RawQuery, r.Header.Get("Authorization")
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"name":"Ada Lovelace","customer_id":"C-1001","tier":"vip","extra":[1,2]}`))
	})
	id, reg, _ := newTestIdentifier(t, srv.URL, 0, nil)

	c := id.Identify(context.Background(), "call-1", "sip:4155550100@carrier")
	want := Caller{Number: "+14155550100", Name: "Ada Lovelace", CustomerID: "C-1001", Tier: "vip", Identified: true, Source: SourceCRM}
	if c != want {
		t.Errorf("Identify = %+v, want %+v", c, want)
	}
	if gotPath != "/callers/+14155550100" || gotQuery != "src=ivr" {
		t.Errorf("CRM got path %q query %q; want the escaped E.164 number in place of {number}", gotPath, gotQuery)
	}
	if gotAuth != "Bearer s3cret" {
		t.Errorf("Authorization header = %q", gotAuth)
	}
	if got := count(t, id, CRMFound); got != 1 {
		t.Errorf("found counter = %v, want 1", got)
	}
	if n, err := testutil.GatherAndCount(reg, "ivrd_crm_lookups_total"); err != nil || n != 4 {
		t.Errorf("registered series = %d, %v; want the 4 results", n, err)
	}
}

func TestCRMNotFound(t *testing.T) {
	srv := crmServer(t, func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) })
	id, _, _ := newTestIdentifier(t, srv.URL, 0, nil)
	c := id.Identify(context.Background(), "call-2", "+14155550199")
	if c.Identified || c.Number != "+14155550199" {
		t.Errorf("Identify = %+v; want unidentified with the number", c)
	}
	if got := count(t, id, CRMNotFound); got != 1 {
		t.Errorf("not_found counter = %v, want 1", got)
	}
	if got := count(t, id, CRMError); got != 0 {
		t.Errorf("error counter = %v, want 0: 404 is not an error", got)
	}
}

func TestCRMFailures(t *testing.T) {
	tests := []struct {
		name    string
		handler http.HandlerFunc
		result  string
	}{
		{"status 500", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "boom", http.StatusInternalServerError)
		}, CRMError},
		{"bad json", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"name": "Ada"`))
		}, CRMError},
		{"oversized body", func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"name":"`))
			w.Write(bytes.Repeat([]byte("a"), MaxCRMBody))
			w.Write([]byte(`"}`))
		}, CRMError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := crmServer(t, tt.handler)
			id, _, logs := newTestIdentifier(t, srv.URL, 0, nil)
			c := id.Identify(context.Background(), "call-3", "+14155550100")
			if c.Identified || c.Number != "+14155550100" {
				t.Errorf("Identify = %+v; want unidentified", c)
			}
			if got := count(t, id, tt.result); got != 1 {
				t.Errorf("%s counter = %v, want 1", tt.result, got)
			}
			if !strings.Contains(logs.String(), `"call_id":"call-3"`) || !strings.Contains(logs.String(), "crm lookup failed") {
				t.Errorf("failure not logged with call_id: %s", logs)
			}
		})
	}
}

func TestCRMTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := crmServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.Write([]byte(`{"name":`)) // headers and half a body, then stall
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	defer close(release)
	const timeout = 100 * time.Millisecond
	id, _, logs := newTestIdentifier(t, srv.URL, timeout, nil)

	start := time.Now()
	c := id.Identify(context.Background(), "call-4", "+14155550100")
	took := time.Since(start)
	if took > timeout+400*time.Millisecond {
		t.Errorf("lookup took %s with a %s timeout", took, timeout)
	}
	if c.Identified {
		t.Errorf("Identify = %+v; want unidentified", c)
	}
	if got := count(t, id, CRMTimeout); got != 1 {
		t.Errorf("timeout counter = %v, want 1", got)
	}
	if !strings.Contains(logs.String(), `"call_id":"call-4"`) || !strings.Contains(logs.String(), "timed out") {
		t.Errorf("timeout not logged with call_id: %s", logs)
	}
}

func TestCRMSlowHeaders(t *testing.T) {
	srv := crmServer(t, func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
	const timeout = 50 * time.Millisecond
	id, _, _ := newTestIdentifier(t, srv.URL, timeout, nil)
	start := time.Now()
	if c := id.Identify(context.Background(), "call-5", "+14155550100"); c.Identified {
		t.Errorf("Identify = %+v; want unidentified", c)
	}
	if took := time.Since(start); took > timeout+400*time.Millisecond {
		t.Errorf("lookup took %s with a %s timeout", took, timeout)
	}
	if got := count(t, id, CRMTimeout); got != 1 {
		t.Errorf("timeout counter = %v, want 1", got)
	}
}

func TestIdentifyDirectoryFirst(t *testing.T) {
	var crmCalls atomic.Int32
	srv := crmServer(t, func(w http.ResponseWriter, r *http.Request) {
		crmCalls.Add(1)
		w.Write([]byte(`{"name":"From CRM","tier":"standard"}`))
	})
	dir, err := ParseDirectory("d.csv", strings.NewReader("number,name,customer_id,tier\n+14155550100,Ada Lovelace,C-1001,vip\n"), "US")
	if err != nil {
		t.Fatal(err)
	}
	id, _, _ := newTestIdentifier(t, srv.URL, 0, dir)
	if c := id.Identify(context.Background(), "c", "4155550100"); c.Source != SourceDirectory || c.Tier != "vip" {
		t.Errorf("directory entry: %+v", c)
	}
	if crmCalls.Load() != 0 {
		t.Errorf("CRM asked %d times for a number in the directory", crmCalls.Load())
	}
	if c := id.Identify(context.Background(), "c", "4155550101"); c.Source != SourceCRM || c.Name != "From CRM" {
		t.Errorf("CRM entry: %+v", c)
	}
	if c := id.Identify(context.Background(), "c", "anonymous"); c != (Caller{}) {
		t.Errorf("anonymous: %+v, want zero Caller", c)
	}
	if crmCalls.Load() != 1 {
		t.Errorf("CRM asked %d times, want 1 (not for anonymous)", crmCalls.Load())
	}
}

func TestIdentifyCallerGoneNotCounted(t *testing.T) {
	srv := crmServer(t, func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	id, _, _ := newTestIdentifier(t, srv.URL, 5*time.Second, nil)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	start := time.Now()
	id.Identify(ctx, "c", "+14155550100")
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("lookup ignored the call's context: took %s", took)
	}
	for _, r := range []string{CRMError, CRMTimeout} {
		if got := count(t, id, r); got != 0 {
			t.Errorf("%s counter = %v after the caller hung up; want 0", r, got)
		}
	}
}

func TestNewCRMAndIdentifierErrors(t *testing.T) {
	for _, u := range []string{"http://crm/callers", "ftp://crm/{number}", "://bad/{number}"} {
		if _, err := NewCRM(CRMConfig{URL: u}); err == nil {
			t.Errorf("NewCRM(%q): no error", u)
		}
	}
	if _, err := NewIdentifier(IdentifierConfig{DefaultCountry: "Narnia"}); err == nil {
		t.Error("NewIdentifier with an unknown country: no error")
	}
	reg := prometheus.NewRegistry()
	if _, err := NewIdentifier(IdentifierConfig{DefaultCountry: "US", Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := NewIdentifier(IdentifierConfig{DefaultCountry: "US", Registerer: reg}); err == nil {
		t.Error("registering the counter twice: no error")
	}
}
