package web

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// TestPages: the softphone page and its files are served with their
// content types, revalidated on every use, under a policy that allows
// only ivrd itself; nothing else is served.
func TestPages(t *testing.T) {
	srv := httptest.NewServer(Pages())
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	get := func(path string, hdr ...string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { res.Body.Close() })
		return res
	}
	for _, c := range []struct{ path, ctype, contains string }{
		{"/agent", "text/html; charset=utf-8", `<script src="/static/agent.js"`},
		{"/static/agent.js", "text/javascript; charset=utf-8", "window.ivrdAgent"},
		{"/static/agent.css", "text/css; charset=utf-8", ":root"},
		{"/static/favicon.svg", "image/svg+xml", "<svg"},
	} {
		res := get(c.path)
		body, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", c.path, res.StatusCode)
		}
		if got := res.Header.Get("Content-Type"); got != c.ctype {
			t.Errorf("GET %s: Content-Type %q, want %q", c.path, got, c.ctype)
		}
		if got := res.Header.Get("Cache-Control"); got != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q", c.path, got)
		}
		if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q", c.path, got)
		}
		csp := res.Header.Get("Content-Security-Policy")
		for _, want := range []string{"default-src 'none'", "script-src 'self';", "style-src 'self';",
			"connect-src 'self' ws://" + host + " wss://" + host + ";", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("GET %s: policy %q lacks %q", c.path, csp, want)
			}
		}
		if !strings.Contains(string(body), c.contains) {
			t.Errorf("GET %s: body lacks %q", c.path, c.contains)
		}
		// Unchanged: 304 with the ETag.
		etag := res.Header.Get("ETag")
		if again := get(c.path, "If-None-Match", etag); etag == "" || again.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s with If-None-Match %s: %d, want 304", c.path, etag, again.StatusCode)
		}
	}
	for _, path := range []string{"/static/", "/static/nope.js", "/static/../pages.go", "/static/%2e%2e/pages.go", "/agent/x", "/static/agent.html.bak"} {
		if res := get(path); res.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, res.StatusCode)
		}
	}
	// A Host that could add a directive is left out of the policy.
	req := httptest.NewRequest(http.MethodGet, "/agent", nil)
	req.Host = "evil;script-src=*"
	if csp := contentSecurityPolicy(req); strings.Contains(csp, "evil") {
		t.Errorf("policy took the Host header: %q", csp)
	}
}

// TestPagesLoadNothingFromElsewhere: no file of the page names another
// origin to load from.
func TestPagesLoadNothingFromElsewhere(t *testing.T) {
	ext := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//|@import|url\(\s*["']?(https?:)?//`)
	for _, name := range []string{"static/agent.html", "static/agent.css", "static/agent.js"} {
		data, err := static.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if m := ext.Find(data); m != nil {
			t.Errorf("%s loads from elsewhere: %q", name, m)
		}
		if strings.Contains(string(data), "style=\"") || strings.Contains(string(data), "onclick=") {
			t.Errorf("%s has inline style or handlers, which the policy blocks", name)
		}
	}
}
