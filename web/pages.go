package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"regexp"
	"strings"
	"time"
)

// static holds the browser pages: plain HTML, CSS and JavaScript, no build
// step and nothing loaded from anywhere but ivrd.
//
//go:embed static
var static embed.FS

// asset is one embedded file, read once.
type asset struct {
	data  []byte
	ctype string
	etag  string
}

// pageTypes are the content types of what static holds; anything else is
// not served.
var pageTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".svg":  "image/svg+xml",
}

// pageRoutes maps a page's path to its file in static.
var pageRoutes = map[string]string{
	"/agent":      "agent.html",
	"/supervisor": "supervisor.html",
}

// Pages serves the browser pages: GET /agent (the agent softphone), GET
// /supervisor (the supervisor console) and GET /static/* (their styles
// and scripts). Mount it on each pattern.
func Pages() http.Handler {
	assets := make(map[string]asset)
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ctype, ok := pageTypes[path.Ext(p)]
		if !ok {
			return nil
		}
		data, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(data)
		assets[strings.TrimPrefix(p, "static/")] = asset{data: data, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		return nil
	})
	if err != nil {
		// The files are compiled in: this cannot fail at run time.
		panic("web: embedded pages: " + err.Error())
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, ok := pageRoutes[r.URL.Path]
		if !ok {
			rest, found := strings.CutPrefix(r.URL.Path, "/static/")
			if !found || rest == "" || strings.Contains(rest, "..") {
				http.NotFound(w, r)
				return
			}
			name = rest
		}
		a, ok := assets[name]
		if !ok {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", a.ctype)
		h.Set("ETag", a.etag)
		// The files change with every release and are small: always
		// revalidate (a 304 costs nothing), so a new page never runs an old
		// script.
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Content-Security-Policy", contentSecurityPolicy(r))
		h.Set("Permissions-Policy", "microphone=(self), camera=(), geolocation=()")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(a.data))
	})
}

// plainHost is a Host header fit to be written into a policy: a name or
// address and a port, nothing that could end or add a directive.
var plainHost = regexp.MustCompile(`^[A-Za-z0-9.\-]+(:[0-9]+)?$|^\[[0-9A-Fa-f:.]+\](:[0-9]+)?$`)

// contentSecurityPolicy allows only ivrd itself: scripts, styles, images,
// fetches and the signalling WebSocket of the host the page came from.
// Chromium counts ws:// and wss:// of the page's own host as 'self', older
// browsers do not: name them too.
func contentSecurityPolicy(r *http.Request) string {
	connect := "'self'"
	if plainHost.MatchString(r.Host) {
		connect += " ws://" + r.Host + " wss://" + r.Host
	}
	return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
		"media-src 'self' blob: mediastream:; connect-src " + connect + "; " +
		"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
}
