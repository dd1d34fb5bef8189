package web

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"ivrd/accounts"
	"ivrd/media"
	"ivrd/recordings"
)

// testRecording is one recording written into a library's directory.
type testRecording struct {
	meta recordings.Meta
	wav  []byte
}

// newRecordingID is a fresh recording id.
func newRecordingID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// toneWAV is secs seconds of 440 Hz at 8 kHz, 16-bit mono.
func toneWAV(secs float64) []byte {
	pcm := make([]int16, int(secs*media.SampleRate))
	for i := range pcm {
		pcm[i] = int16(8000 * math.Sin(2*math.Pi*440*float64(i)/media.SampleRate))
	}
	return media.EncodeWAV(pcm)
}

// openLibrary writes recs (complete, with their metadata) into a fresh
// directory and opens a library on it.
func openLibrary(t *testing.T, recs ...testRecording) (*recordings.Library, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "recordings")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		r.meta.Complete = true
		data, _ := json.Marshal(r.meta)
		if err := os.WriteFile(filepath.Join(dir, r.meta.ID+".json"), data, 0o640); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, r.meta.ID+".wav"), r.wav, 0o640); err != nil {
			t.Fatal(err)
		}
	}
	lib, err := recordings.Open(recordings.Config{Dir: dir, Disabled: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lib.Close(context.Background()) })
	return lib, dir
}

// recordingsServer serves the API with the three recordings below, an
// authorizer that lets everyone in as supervisor1, and the audit trail
// in the real Redis.
type recordingsFixture struct {
	srv  *httptest.Server
	s    *Server
	ids  [3]string
	wavs [3][]byte
	dir  string
}

func newRecordingsFixture(t *testing.T) *recordingsFixture {
	t.Helper()
	q := newQueue(t, realRedis(t))
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	f := &recordingsFixture{}
	var recs []testRecording
	for i, m := range []recordings.Meta{
		{Caller: recordings.Caller{Number: "+14155550100", Name: "Ada"}, Agent: "agent1", Skill: "billing", Disposition: "resolved", DurationS: 2,
			Segments: []recordings.Segment{{Kind: "ivr", StartS: 0, EndS: 0.5}, {Kind: "queue", StartS: 0.5, EndS: 1}, {Kind: "agent", StartS: 1, EndS: 2}}},
		{Caller: recordings.Caller{Number: "+14155550101"}, Agent: "agent2", Skill: "support", Disposition: "follow_up", DurationS: 1},
		{Caller: recordings.Caller{Number: "+4930123456"}, Agent: "agent1", Skill: "support", Disposition: "resolved", DurationS: 3},
	} {
		m.ID = newRecordingID()
		m.CallID = "call-" + m.ID[:6]
		m.Answered = t0.Add(time.Duration(i) * time.Hour)
		f.ids[i] = m.ID
		f.wavs[i] = toneWAV(m.DurationS)
		recs = append(recs, testRecording{meta: m, wav: f.wavs[i]})
	}
	lib, dir := openLibrary(t, recs...)
	f.dir = dir
	s, err := New(Config{Queue: q, Recordings: lib})
	if err != nil {
		t.Fatal(err)
	}
	f.s = s
	f.srv = httptest.NewServer(asSupervisor(s))
	t.Cleanup(f.srv.Close)
	return f
}

// asSupervisor lets every request in as supervisor1, as the session
// check would (so the audit trail has a name).
func asSupervisor(s *Server) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.ServeHTTP(w, r.WithContext(WithUser(r.Context(), accounts.User{Name: "supervisor1", Role: accounts.RoleSupervisor})))
	})
}

// do sends a request with header pairs and returns the answer and body.
func (f *recordingsFixture) do(t *testing.T, method, path string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, b
}

// TestRecordingsList: every filter of the design, newest first, pages
// with next_offset, and a clear 400 for a filter that cannot be read.
func TestRecordingsList(t *testing.T) {
	f := newRecordingsFixture(t)
	list := func(query string) ([]string, map[string]any) {
		t.Helper()
		res, body := f.do(t, "GET", "/api/v1/recordings?"+query)
		if res.StatusCode != 200 {
			t.Fatalf("?%s: %d %s", query, res.StatusCode, body)
		}
		var p struct {
			Recordings []recordings.Meta
		}
		var raw map[string]any
		_ = json.Unmarshal(body, &raw)
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, m := range p.Recordings {
			ids = append(ids, m.ID)
		}
		return ids, raw
	}
	a, b, c := f.ids[0], f.ids[1], f.ids[2]
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"", []string{c, b, a}},
		{"caller=555010", []string{b, a}},
		{"caller=%2B4930", []string{c}},
		{"agent=agent1", []string{c, a}},
		{"skill=support", []string{c, b}},
		{"disposition=resolved", []string{c, a}},
		{"min_duration_s=2", []string{c, a}},
		{"min_duration_s=2.5", []string{c}},
		{"from=2026-03-02T10:00:00Z", []string{c, b}},
		{"to=2026-03-02T10:00:00Z", []string{a}},
		{"from=2026-03-02T09:30:00%2B00:00&to=2026-03-02T10:30:00Z", []string{b}},
		{"agent=agent1&skill=billing&caller=0100", []string{a}},
		{"agent=nobody", nil},
	} {
		got, _ := list(tc.query)
		if strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("?%s: %v, want %v", tc.query, got, tc.want)
		}
	}
	got, raw := list("limit=2")
	if len(got) != 2 || raw["total"] != 3.0 || raw["next_offset"] != 2.0 {
		t.Errorf("first page: %v %v", got, raw)
	}
	got, raw = list("limit=2&offset=2")
	if len(got) != 1 || got[0] != a || raw["next_offset"] != nil {
		t.Errorf("last page: %v %v", got, raw)
	}
	if _, raw := list("agent=nobody"); raw["recordings"] == nil {
		t.Errorf("no match: recordings is null, want []")
	}
	for _, bad := range []string{"from=yesterday", "to=2026-03-02", "min_duration_s=-1", "min_duration_s=x", "limit=0", "limit=10000", "offset=-2",
		"from=2026-03-02T10:00:00Z&to=2026-03-02T09:00:00Z"} {
		res, body := f.do(t, "GET", "/api/v1/recordings?"+bad)
		if res.StatusCode != 400 || !bytes.Contains(body, []byte(`"error"`)) {
			t.Errorf("?%s: %d %s", bad, res.StatusCode, body)
		}
	}
}

// TestRecordingGetAndAudio: metadata; the WAV whole and by Range, with
// ETag and 304; download as an attachment; what the audit trail records.
func TestRecordingGetAndAudio(t *testing.T) {
	f := newRecordingsFixture(t)
	id, wav := f.ids[0], f.wavs[0]

	res, body := f.do(t, "GET", "/api/v1/recordings/"+id)
	if res.StatusCode != 200 {
		t.Fatalf("GET metadata: %d %s", res.StatusCode, body)
	}
	var m recordings.Meta
	if err := json.Unmarshal(body, &m); err != nil || m.ID != id || m.Caller.Number != "+14155550100" || len(m.Segments) != 3 || m.Segments[2].Kind != "agent" {
		t.Fatalf("metadata: %v %s", err, body)
	}

	path := "/api/v1/recordings/" + id + "/audio"
	res, body = f.do(t, "GET", path)
	if res.StatusCode != 200 || !bytes.Equal(body, wav) {
		t.Fatalf("GET audio: %d, %d bytes, want the file's %d", res.StatusCode, len(body), len(wav))
	}
	etag := res.Header.Get("ETag")
	for k, want := range map[string]string{
		"Content-Type": "audio/wav", "Accept-Ranges": "bytes", "X-Content-Type-Options": "nosniff",
		"Content-Disposition": `inline; filename="recording-` + id + `.wav"`,
	} {
		if got := res.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if !strings.HasPrefix(etag, `"`+id+"-") {
		t.Errorf("ETag %q", etag)
	}

	res, body = f.do(t, "GET", path, "Range", "bytes=100-199")
	if res.StatusCode != 206 || !bytes.Equal(body, wav[100:200]) || res.Header.Get("Content-Range") != "bytes 100-199/"+itoa(len(wav)) {
		t.Fatalf("Range 100-199: %d %q, %d bytes", res.StatusCode, res.Header.Get("Content-Range"), len(body))
	}
	res, body = f.do(t, "GET", path, "Range", "bytes=-44")
	if res.StatusCode != 206 || !bytes.Equal(body, wav[len(wav)-44:]) {
		t.Fatalf("suffix Range: %d, %d bytes", res.StatusCode, len(body))
	}
	res, _ = f.do(t, "GET", path, "Range", "bytes="+itoa(len(wav)+10)+"-")
	if res.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Fatalf("Range past the end: %d", res.StatusCode)
	}
	res, body = f.do(t, "GET", path, "If-None-Match", etag)
	if res.StatusCode != 304 || len(body) != 0 {
		t.Fatalf("If-None-Match: %d", res.StatusCode)
	}
	res, body = f.do(t, "GET", path, "Range", "bytes=0-99", "If-Range", etag)
	if res.StatusCode != 206 || !bytes.Equal(body, wav[:100]) {
		t.Fatalf("If-Range with the ETag: %d", res.StatusCode)
	}
	res, _ = f.do(t, "HEAD", path)
	if res.StatusCode != 200 || res.Header.Get("Content-Length") != itoa(len(wav)) {
		t.Fatalf("HEAD: %d %q", res.StatusCode, res.Header.Get("Content-Length"))
	}
	res, body = f.do(t, "GET", path+"?download=1")
	if res.StatusCode != 200 || !bytes.Equal(body, wav) || res.Header.Get("Content-Disposition") != `attachment; filename="recording-`+id+`.wav"` {
		t.Fatalf("download: %d %q", res.StatusCode, res.Header.Get("Content-Disposition"))
	}

	// The trail: one view, one listen (the later requests from byte 0
	// within the minute are the same playback; ranges further in are
	// seeking), one download; every line names the user and address.
	entries, total, err := f.s.auditLog().List(context.Background(), 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Action+" "+e.RecordingID+" "+e.User+" "+e.RemoteAddr)
	}
	want := []string{
		"download " + id + " supervisor1 127.0.0.1",
		"listen " + id + " supervisor1 127.0.0.1",
		"view " + id + " supervisor1 127.0.0.1",
	}
	if total != 3 || strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("audit trail (%d):\n%s\nwant:\n%s", total, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestRecordingIDs: ids that are not 32 lowercase hex digits, unknown
// ids, and tricks to reach other files all get 404, and nothing outside
// the recordings directory is served (not even through a symlink placed
// in it).
func TestRecordingIDs(t *testing.T) {
	f := newRecordingsFixture(t)
	secret := filepath.Join(filepath.Dir(f.dir), "secret.wav")
	if err := os.WriteFile(secret, []byte("RIFF not yours"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := newRecordingID()
	if err := os.Symlink(secret, filepath.Join(f.dir, link+".wav")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(f.dir, link+".json"), []byte(`{"id":"`+link+`","complete":true}`), 0o640); err != nil {
		t.Fatal(err)
	}
	// A library opened now sees the symlink: it must not index it.
	lib, err := recordings.Open(recordings.Config{Dir: f.dir, Disabled: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer lib.Close(context.Background())
	s, err := New(Config{Queue: f.s.cfg.Queue, Recordings: lib})
	if err != nil {
		t.Fatal(err)
	}
	f.s, f.srv = s, httptest.NewServer(asSupervisor(s))
	defer f.srv.Close()

	valid := f.ids[0]
	for _, id := range []string{
		strings.ToUpper(valid), valid[:31], valid + "0", valid[:31] + "g", "secret", "..", "%2e%2e",
		"..%2Fsecret", "..%2F..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", valid + "%00", valid + ".wav", valid[:30] + "..",
		newRecordingID(), link,
	} {
		for _, suffix := range []string{"", "/audio"} {
			res, body := f.do(t, "GET", "/api/v1/recordings/"+id+suffix)
			if res.StatusCode != 404 || bytes.Contains(body, []byte("not yours")) {
				t.Errorf("GET /api/v1/recordings/%s%s: %d %s", id, suffix, res.StatusCode, body)
			}
		}
	}
	if res, _ := f.do(t, "GET", "/api/v1/recordings/"+valid+"/audio"); res.StatusCode != 200 {
		t.Errorf("the valid id after all that: %d", res.StatusCode)
	}
}

// TestRecordingsRoles: anonymous callers get 401, agents 403 on every
// recordings route; without a library supervisors get 404 with a reason.
func TestRecordingsRoles(t *testing.T) {
	a := newAuthServer(t, realRedis(t), false, nil)
	agent := a.login(t, "agent1", "agent1-pw")
	sup := a.login(t, "supervisor1", "supervisor1-pw")
	id := newRecordingID()
	for _, path := range []string{"/api/v1/recordings", "/api/v1/recordings/" + id, "/api/v1/recordings/" + id + "/audio", "/api/v1/recordings/bad-id/audio"} {
		for _, c := range []struct {
			who  string
			hdr  []string
			want int
		}{
			{"anonymous", nil, 401}, {"agent", bearer(agent), 403}, {"supervisor", bearer(sup), 404},
		} {
			res, body := a.req(t, nil, "GET", path, "", c.hdr...)
			if res.StatusCode != c.want {
				t.Errorf("%s GET %s: %d %s, want %d", c.who, path, res.StatusCode, body, c.want)
			}
			if c.who == "supervisor" && !strings.Contains(body, "keeps no recordings") {
				t.Errorf("supervisor GET %s without recordings: %s", path, body)
			}
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
