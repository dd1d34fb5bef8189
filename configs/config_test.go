package configs_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"

	"ivrd/configs"
)

// envVars are the environment overrides of the design.
var envVars = []string{
	"IVRD_SIP_LISTEN", "IVRD_HTTP_LISTEN", "IVRD_RTP_PORTS",
	"IVRD_REDIS_URL", "IVRD_RECORDINGS_DIR", "IVRD_PUBLIC_IP",
}

// clearEnv unsets every override for the test (restored afterwards), so a
// developer's or CI's environment cannot change what Load returns.
func clearEnv(t *testing.T) {
	t.Helper()
	for _, k := range envVars {
		t.Setenv(k, "") // registers the restore
		os.Unsetenv(k)
	}
}

// writeConfig writes text as ivrd.yaml into a fresh directory that also
// holds flows/main.yaml, flows/support.yaml, prompts/ and directory.csv,
// and returns the file's path.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"flows", "prompts"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		"flows/main.yaml":    "start: welcome\n",
		"flows/support.yaml": "start: welcome\n",
		"directory.csv":      "number,name,customer_id,tier\n",
		"ivrd.yaml":          text,
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "ivrd.yaml")
}

// testHash is a bcrypt hash (of "test-password", at the lowest cost).
const testHash = "$2a$04$M9MOuyUFpQFNmw0j0RAdieTk/ixa6J2GkwWFaokGir7MykI2UNKG2"

// minimal is the smallest valid file: the flow is the only required key.
const minimal = "ivr:\n  flow: flows/main.yaml\n"

// keyErrors flattens the (possibly nested) joined errors of Load into
// KeyErrors, failing the test on any error that is not one.
func keyErrors(t *testing.T, err error) []*configs.KeyError {
	t.Helper()
	var out []*configs.KeyError
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var ke *configs.KeyError
		if !errors.As(e, &ke) {
			t.Errorf("not a *KeyError: %T %v", e, e)
			return
		}
		out = append(out, ke)
	}
	walk(err)
	return out
}

func mustLoad(t *testing.T, path string) *configs.Config {
	t.Helper()
	cfg, err := configs.Load(path)
	if err != nil {
		t.Fatalf("Load(%s): %v", path, err)
	}
	return cfg
}

// The demo configuration loads as `make run` loads it (from the repository
// root), every relative path taken against the file's directory.
func TestLoadDemo(t *testing.T) {
	clearEnv(t)
	t.Chdir("..")
	cfg := mustLoad(t, "configs/ivrd.yaml")

	wantSIP := configs.SIP{
		Listen: "127.0.0.1:5060", Transports: []string{"udp", "tcp"}, UserAgent: "ivrd",
		RTPTimeout: 60 * time.Second, AckTimeout: 32 * time.Second, MaxCalls: 2000,
	}
	if !reflect.DeepEqual(cfg.SIP, wantSIP) {
		t.Errorf("sip = %+v, want %+v", cfg.SIP, wantSIP)
	}
	if got := cfg.Media.RTPPorts; got != (configs.PortRange{Min: 30000, Max: 30999}) {
		t.Errorf("media.rtp_ports = %v", got)
	}
	wantIVR := configs.IVR{
		Flow:           filepath.Join("configs", "flows", "main.yaml"),
		Numbers:        map[string]string{},
		Prompts:        filepath.Join("configs", "prompts"),
		DefaultCountry: "US",
		Directory:      filepath.Join("configs", "directory.csv"),
		CRM:            configs.CRM{Timeout: 500 * time.Millisecond, Headers: map[string]string{}},
	}
	if !reflect.DeepEqual(cfg.IVR, wantIVR) {
		t.Errorf("ivr = %+v, want %+v", cfg.IVR, wantIVR)
	}
	if cfg.HTTP.Listen != "127.0.0.1:8080" {
		t.Errorf("http.listen = %q", cfg.HTTP.Listen)
	}
	if cfg.Redis.URL != "" {
		t.Errorf("redis.url = %q", cfg.Redis.URL)
	}
	// "../var/recordings" next to configs/: the repository's var/recordings/
	// (ignored by git; recordings/ is the package).
	if cfg.Recordings.Dir != filepath.Join("var", "recordings") {
		t.Errorf("recordings.dir = %q, want var/recordings", cfg.Recordings.Dir)
	}
	if cfg.Shutdown.Grace != 30*time.Second {
		t.Errorf("shutdown.grace = %v", cfg.Shutdown.Grace)
	}
	if cfg.Log != (configs.Log{Level: "info", Format: "text"}) {
		t.Errorf("log = %+v", cfg.Log)
	}
	if cfg.HTTP.TLS() || cfg.HTTP.SessionTTL != 12*time.Hour {
		t.Errorf("http = %+v; want no TLS, sessions of 12h", cfg.HTTP)
	}
	if cfg.Limits.LoginsPerUser != (configs.Rate{N: 5, Per: time.Minute}) || cfg.Limits.LoginsPerAddress != (configs.Rate{N: 20, Per: time.Minute}) {
		t.Errorf("login limits = %v, %v", cfg.Limits.LoginsPerUser, cfg.Limits.LoginsPerAddress)
	}
	// The demo accounts the README documents, each with its name as password.
	skills := map[string]int{"billing": 5, "support": 5, "general": 1}
	want := []configs.User{
		{Name: "agent1", DisplayName: "Alice Agent", Role: "agent", Skills: skills},
		{Name: "agent2", DisplayName: "Bob Agent", Role: "agent", Skills: skills},
		{Name: "supervisor1", DisplayName: "Sam Supervisor", Role: "supervisor"},
	}
	if len(cfg.Users) != len(want) {
		t.Fatalf("users = %+v", cfg.Users)
	}
	for i, u := range cfg.Users {
		hash := u.PasswordHash
		u.PasswordHash = ""
		if !reflect.DeepEqual(u, want[i]) {
			t.Errorf("users.%d = %+v, want %+v", i, u, want[i])
		}
		if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(u.Name)); err != nil {
			t.Errorf("users.%d (%s): the demo password is not %q: %v", i, u.Name, u.Name, err)
		}
		if c, _ := bcrypt.Cost([]byte(hash)); c < bcrypt.DefaultCost {
			t.Errorf("users.%d (%s): bcrypt cost %d; want at least %d", i, u.Name, c, bcrypt.DefaultCost)
		}
	}
}

// The demo also loads by absolute path from anywhere: paths do not depend on
// the working directory.
func TestLoadDemoFromElsewhere(t *testing.T) {
	clearEnv(t)
	file, err := filepath.Abs("ivrd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(file)
	t.Chdir(t.TempDir())
	cfg := mustLoad(t, file)
	for key, got := range map[string]string{
		"ivr.flow": cfg.IVR.Flow, "ivr.prompts": cfg.IVR.Prompts,
		"ivr.directory": cfg.IVR.Directory, "recordings.dir": cfg.Recordings.Dir,
	} {
		if !filepath.IsAbs(got) || !strings.HasPrefix(got, filepath.Dir(dir)) {
			t.Errorf("%s = %q, want an absolute path under %s", key, got, filepath.Dir(dir))
		}
	}
}

// What an (almost) empty file means: the defaults documented in
// docs/configuration.md.
func TestDefaults(t *testing.T) {
	clearEnv(t)
	path := writeConfig(t, minimal)
	dir := filepath.Dir(path)
	cfg := mustLoad(t, path)

	want := configs.Defaults()
	want.IVR.Flow = filepath.Join(dir, "flows", "main.yaml")
	want.IVR.Prompts = filepath.Join(dir, "prompts")
	want.Recordings.Dir = filepath.Join(dir, "recordings")
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"sip", cfg.SIP, want.SIP},
		{"media", cfg.Media, want.Media},
		{"ivr", cfg.IVR, want.IVR},
		{"http", cfg.HTTP, want.HTTP},
		{"redis", cfg.Redis, want.Redis},
		{"recordings", cfg.Recordings, want.Recordings},
		{"shutdown", cfg.Shutdown, want.Shutdown},
		{"log", cfg.Log, want.Log},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %+v, want %+v", c.name, c.got, c.want)
		}
	}

	// The values docs/configuration.md promises.
	d := configs.Defaults()
	checks := map[string][2]any{
		"sip.listen":                {d.SIP.Listen, "127.0.0.1:5060"},
		"sip.transports":            {strings.Join(d.SIP.Transports, ","), "udp,tcp"},
		"sip.public_ip":             {d.SIP.PublicIP, ""},
		"sip.user_agent":            {d.SIP.UserAgent, "ivrd"},
		"sip.rtp_timeout":           {d.SIP.RTPTimeout, 60 * time.Second},
		"sip.ack_timeout":           {d.SIP.AckTimeout, 32 * time.Second},
		"sip.answer_delay":          {d.SIP.AnswerDelay, time.Duration(0)},
		"sip.max_calls":             {d.SIP.MaxCalls, 2000},
		"media.rtp_ports":           {d.Media.RTPPorts.String(), "30000-30999"},
		"ivr.flow":                  {d.IVR.Flow, ""},
		"ivr.prompts":               {d.IVR.Prompts, "prompts"},
		"ivr.default_country":       {d.IVR.DefaultCountry, "US"},
		"ivr.directory":             {d.IVR.Directory, ""},
		"ivr.crm.url":               {d.IVR.CRM.URL, ""},
		"ivr.crm.timeout":           {d.IVR.CRM.Timeout, 500 * time.Millisecond},
		"http.listen":               {d.HTTP.Listen, "127.0.0.1:8080"},
		"http.tls_cert":             {d.HTTP.TLSCert, ""},
		"http.tls_key":              {d.HTTP.TLSKey, ""},
		"http.session_ttl":          {d.HTTP.SessionTTL, 12 * time.Hour},
		"http.pprof_listen":         {d.HTTP.PprofListen, ""},
		"limits.logins_per_user":    {d.Limits.LoginsPerUser.String(), "5/m"},
		"limits.logins_per_address": {d.Limits.LoginsPerAddress.String(), "20/m"},
		"users":                     {len(d.Users), 0},
		"redis.url":                 {d.Redis.URL, ""},
		"recordings.dir":            {d.Recordings.Dir, "recordings"},
		"recordings.enabled":        {d.Recordings.Enabled, true},
		"recordings.retention_days": {d.Recordings.RetentionDays, 90},
		"recordings.buffer":         {d.Recordings.Buffer, 28},
		"shutdown.grace":            {d.Shutdown.Grace, 30 * time.Second},
		"log.level":                 {d.Log.Level, "info"},
		"log.format":                {d.Log.Format, "text"},
	}
	for key, c := range checks {
		if c[0] != c[1] {
			t.Errorf("default %s = %v, want %v", key, c[0], c[1])
		}
	}
}

// Every key written in a file is read into its field, paths resolved.
func TestLoadEveryKey(t *testing.T) {
	clearEnv(t)
	path := writeConfig(t, `sip:
  listen: 0.0.0.0:5080
  transports: [tcp]
  public_ip: 203.0.113.7
  user_agent: acme-ivr
  rtp_timeout: 0s
  ack_timeout: 10s
  answer_delay: 1500ms
  max_calls: 0
media:
  rtp_ports: 40000-40099
ivr:
  flow: flows/main.yaml
  numbers:
    support: flows/support.yaml
    sales: /dev/null
  prompts: prompts
  default_country: GB
  directory: directory.csv
  crm:
    url: https://crm.example.com/callers/{number}?v=2
    timeout: 2s
    headers: {Authorization: Bearer abc}
http:
  listen: ":9090"
  session_ttl: 8h
  pprof_listen: 127.0.0.1:6060
redis:
  url: rediss://:pw@redis.example.com:6380/2
  prefix: acme
queue:
  skills:
    billing: {routing: proficiency, announce_every: 30s}
    general: {}
  service_level: 30s
  announce_every: 60s
  window: 15m
  default_handle_time: 4m
limits:
  invites_per_source: 20/s
  calls_per_number: 3/h
  number_action: busy
  logins_per_user: 3/m
  logins_per_address: 100/h
users:
  - {name: a1, display_name: Ann, role: agent, skills: {billing: 7, general: 1}, password_hash: $2a$04$M9MOuyUFpQFNmw0j0RAdieTk/ixa6J2GkwWFaokGir7MykI2UNKG2}
  - {name: boss, role: admin, password_hash: $2a$04$M9MOuyUFpQFNmw0j0RAdieTk/ixa6J2GkwWFaokGir7MykI2UNKG2}
recordings:
  dir: /var/spool/ivrd
  enabled: false
  retention_days: 0
  buffer: 1000
shutdown:
  grace: 0s
log:
  level: debug
  format: json
`)
	dir := filepath.Dir(path)
	cfg := mustLoad(t, path)
	want := configs.Config{
		SIP: configs.SIP{
			Listen: "0.0.0.0:5080", Transports: []string{"tcp"}, PublicIP: "203.0.113.7", UserAgent: "acme-ivr",
			AckTimeout: 10 * time.Second, AnswerDelay: 1500 * time.Millisecond,
		},
		Media: configs.Media{RTPPorts: configs.PortRange{Min: 40000, Max: 40099}},
		IVR: configs.IVR{
			Flow:           filepath.Join(dir, "flows/main.yaml"),
			Numbers:        map[string]string{"support": filepath.Join(dir, "flows/support.yaml"), "sales": "/dev/null"},
			Prompts:        filepath.Join(dir, "prompts"),
			DefaultCountry: "GB",
			Directory:      filepath.Join(dir, "directory.csv"),
			CRM: configs.CRM{
				URL: "https://crm.example.com/callers/{number}?v=2", Timeout: 2 * time.Second,
				Headers: map[string]string{"Authorization": "Bearer abc"},
			},
		},
		HTTP:  configs.HTTP{Listen: ":9090", SessionTTL: 8 * time.Hour, PprofListen: "127.0.0.1:6060"},
		Redis: configs.Redis{URL: "rediss://:pw@redis.example.com:6380/2", Prefix: "acme"},
		Queue: configs.Queue{
			Skills: map[string]configs.Skill{
				"billing": {Routing: "proficiency", AnnounceEvery: 30 * time.Second}, "general": {},
			},
			ServiceLevel: 30 * time.Second, AnnounceEvery: time.Minute, Window: 15 * time.Minute,
			DefaultHandleTime: 4 * time.Minute,
		},
		Limits: configs.Limits{
			InvitesPerSource: configs.Rate{N: 20, Per: time.Second}, CallsPerNumber: configs.Rate{N: 3, Per: time.Hour},
			NumberAction: "busy", LoginsPerUser: configs.Rate{N: 3, Per: time.Minute}, LoginsPerAddress: configs.Rate{N: 100, Per: time.Hour},
		},
		Users: []configs.User{
			{Name: "a1", DisplayName: "Ann", Role: "agent", Skills: map[string]int{"billing": 7, "general": 1}, PasswordHash: testHash},
			{Name: "boss", Role: "admin", PasswordHash: testHash},
		},
		Recordings: configs.Recordings{Dir: "/var/spool/ivrd", Enabled: false, RetentionDays: 0, Buffer: 1000},
		Log:        configs.Log{Level: "debug", Format: "json"},
	}
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"sip", cfg.SIP, want.SIP}, {"media", cfg.Media, want.Media}, {"ivr", cfg.IVR, want.IVR},
		{"http", cfg.HTTP, want.HTTP}, {"redis", cfg.Redis, want.Redis}, {"recordings", cfg.Recordings, want.Recordings},
		{"shutdown", cfg.Shutdown, want.Shutdown}, {"log", cfg.Log, want.Log},
		{"queue", cfg.Queue, want.Queue}, {"limits", cfg.Limits, want.Limits}, {"users", cfg.Users, want.Users},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %+v, want %+v", c.name, c.got, c.want)
		}
	}
	// The start-up summary never carries the Redis password or CRM headers.
	for _, v := range cfg.Summary() {
		if s, ok := v.(string); ok && (strings.Contains(s, "pw") || strings.Contains(s, "Bearer")) {
			t.Errorf("Summary leaks a secret: %q", s)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	clearEnv(t)
	_, err := configs.Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("err = %v, want ErrNotExist", err)
	}
}

// A misspelt key is an error naming it and its line, never a silent default.
func TestUnknownKeys(t *testing.T) {
	clearEnv(t)
	path := writeConfig(t, `sip:
  listen: 127.0.0.1:5060
  lisen: 127.0.0.1:5070
ivr:
  flow: flows/main.yaml
  crm:
    timout: 1s
loggging:
  level: debug
`)
	_, err := configs.Load(path)
	want := path + `:3: sip.lisen: unknown key "lisen"` + "\n" +
		path + `:7: ivr.crm.timout: unknown key "timout"` + "\n" +
		path + `:8: loggging: unknown key "loggging"`
	if err == nil || err.Error() != want {
		t.Fatalf("err =\n%v\nwant\n%s", err, want)
	}
	for _, ke := range keyErrors(t, err) {
		if ke.File != path || ke.Line == 0 {
			t.Errorf("%#v: want file and line", ke)
		}
	}
}

// A value of the wrong type names the key and its line.
func TestWrongTypes(t *testing.T) {
	cases := []struct {
		name, yaml string
		line       int
		key, msg   string
	}{
		{"int", "sip:\n  max_calls: lots\n", 2, "sip.max_calls", "`lots` into int"},
		{"duration word", "sip:\n  rtp_timeout: soon\n", 2, "sip.rtp_timeout", "`soon` into time.Duration"},
		{"duration without unit", "shutdown:\n  grace: 30\n", 2, "shutdown.grace", "`30` into time.Duration"},
		{"list as string", "sip:\n  transports: udp\n", 2, "sip.transports", "into []string"},
		{"section as scalar", "http: 8080\n", 1, "http", "into configs.HTTP"},
		{"map as list", "ivr:\n  flow: flows/main.yaml\n  crm:\n    headers: [a, b]\n", 4, "ivr.crm.headers", "into map[string]string"},
		{"port range", "media:\n  rtp_ports: abc\n", 2, "media.rtp_ports", `"abc" is not a port range`},
		{"port range list", "media:\n  rtp_ports: [30000, 30999]\n", 2, "media.rtp_ports", "is not a port range"},
		{"duplicate key", "sip:\n  listen: 127.0.0.1:5060\n  listen: 127.0.0.1:5070\n", 3, "sip.listen", "already defined at line"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			expectOneKeyError(t, c.yaml, c.line, c.key, c.msg)
		})
	}
}

// A file that is not YAML at all is reported with its line.
func TestSyntaxError(t *testing.T) {
	clearEnv(t)
	path := writeConfig(t, minimal+"sip:\n  listen: [127.0.0.1:5060\n")
	_, err := configs.Load(path)
	kes := keyErrors(t, err)
	if len(kes) != 1 || kes[0].File != path || kes[0].Line == 0 || kes[0].Key != "(file)" {
		t.Fatalf("err = %v, want one (file) error with a line", err)
	}
}

// Values of the right type that make no sense name the key and its line.
func TestInvalidValues(t *testing.T) {
	cases := []struct {
		name, yaml string
		line       int // of the key, counting from the first line of yaml
		key, msg   string
	}{
		{"listen without port", "sip:\n  listen: 127.0.0.1\n", 2, "sip.listen", `"127.0.0.1" is not host:port`},
		{"listen port not a number", "sip:\n  listen: 127.0.0.1:sip\n", 2, "sip.listen", "is not host:port"},
		{"listen port too big", "sip:\n  listen: 127.0.0.1:70000\n", 2, "sip.listen", "is not host:port"},
		{"http listen", "http:\n  listen: localhost\n", 2, "http.listen", `"localhost" is not host:port`},
		{"no transport", "sip:\n  transports: []\n", 2, "sip.transports", "needs at least one"},
		{"unknown transport", "sip:\n  transports:\n    - udp\n    - sctp\n", 4, "sip.transports.1", `unknown transport "sctp"`},
		{"public ip", "sip:\n  public_ip: example.com\n", 2, "sip.public_ip", "is not an IP address"},
		{"wildcard listen needs public ip", "sip:\n  listen: 0.0.0.0:5060\n", 1, "sip.public_ip", "required when sip.listen is"},
		{"negative rtp timeout", "sip:\n  rtp_timeout: -1s\n", 2, "sip.rtp_timeout", "must not be negative"},
		{"zero ack timeout", "sip:\n  ack_timeout: 0s\n", 2, "sip.ack_timeout", "must be positive"},
		{"negative answer delay", "sip:\n  answer_delay: -100ms\n", 2, "sip.answer_delay", "must not be negative"},
		{"negative max calls", "sip:\n  max_calls: -1\n", 2, "sip.max_calls", "must not be negative"},
		{"negative grace", "shutdown:\n  grace: -5s\n", 2, "shutdown.grace", "must not be negative"},
		{"zero crm timeout", "ivr:\n  flow: flows/main.yaml\n  crm:\n    timeout: 0s\n", 4, "ivr.crm.timeout", "must be positive"},
		{"port range reversed", "media:\n  rtp_ports: 30001-30000\n", 2, "media.rtp_ports", "the first port is above the last"},
		{"port range privileged", "media:\n  rtp_ports: 80-90\n", 2, "media.rtp_ports", "within 1024-65535"},
		{"port range too high", "media:\n  rtp_ports: 65000-65536\n", 2, "media.rtp_ports", "within 1024-65535"},
		{"port range single", "media:\n  rtp_ports: 30000-30000\n", 2, "media.rtp_ports", "an even port and the next"},
		{"port range no pair", "media:\n  rtp_ports: 30001-30002\n", 2, "media.rtp_ports", "an even port and the next"},
		{"redis prefix", "redis:\n  prefix: \"a{b}\"\n", 2, "redis.prefix", "letters, digits"},
		{"skill name", "queue:\n  skills:\n    \"bad skill\": {}\n", 3, "queue.skills.bad skill", "letters, digits, - and _ only"},
		{"skill routing", "queue:\n  skills:\n    billing: {routing: random}\n", 3, "queue.skills.billing.routing", `"random" is not one of idle, proficiency`},
		{"service level", "queue:\n  service_level: 0s\n", 2, "queue.service_level", "must be positive"},
		{"announce every", "queue:\n  announce_every: -1s\n", 2, "queue.announce_every", "must be positive"},
		{"window", "queue:\n  window: 10s\n", 2, "queue.window", "at least 1m"},
		{"user unknown skill", "queue:\n  skills: {billing: {}}\nusers:\n  - {name: a1, role: agent, skills: {sales: 3}, password_hash: $2a$04$M9MOuyUFpQFNmw0j0RAdieTk/ixa6J2GkwWFaokGir7MykI2UNKG2}\n", 4, "users.0.skills.sales", `unknown skill "sales"`},
		{"user proficiency", "queue:\n  skills: {billing: {}}\nusers:\n  - {name: a1, role: agent, skills: {billing: 0}, password_hash: $2a$04$M9MOuyUFpQFNmw0j0RAdieTk/ixa6J2GkwWFaokGir7MykI2UNKG2}\n", 4, "users.0.skills.billing", "proficiency 0 is not in 1..100"},
		{"user twice", "users:\n  - {name: s1, role: supervisor, password_hash: $2a$04$M9MOuyUFpQFNmw0j0RAdieTk/ixa6J2GkwWFaokGir7MykI2UNKG2}\n  - {name: s1, role: admin, password_hash: $2a$04$M9MOuyUFpQFNmw0j0RAdieTk/ixa6J2GkwWFaokGir7MykI2UNKG2}\n", 3, "users.1.name", `user "s1" is listed twice`},
		{"agent without skills", "users:\n  - {name: a1, role: agent, password_hash: $2a$04$M9MOuyUFpQFNmw0j0RAdieTk/ixa6J2GkwWFaokGir7MykI2UNKG2}\n", 2, "users.0.skills", "at least one skill"},
		{"supervisor with skills", "queue:\n  skills: {billing: {}}\nusers:\n  - {name: s1, role: supervisor, skills: {billing: 3}, password_hash: $2a$04$M9MOuyUFpQFNmw0j0RAdieTk/ixa6J2GkwWFaokGir7MykI2UNKG2}\n", 4, "users.0.skills", "only agents have skills"},
		{"user role", "users:\n  - {name: r, role: root, password_hash: $2a$04$M9MOuyUFpQFNmw0j0RAdieTk/ixa6J2GkwWFaokGir7MykI2UNKG2}\n", 2, "users.0.role", `"root" is not one of agent, supervisor, admin`},
		{"user name", "users:\n  - {name: \"a:b\", role: admin, password_hash: $2a$04$M9MOuyUFpQFNmw0j0RAdieTk/ixa6J2GkwWFaokGir7MykI2UNKG2}\n", 2, "users.0.name", `"a:b": 1 to 64 letters`},
		{"user without hash", "users:\n  - {name: boss, role: admin}\n", 2, "users.0.password_hash", "is required"},
		{"user plain password", "users:\n  - {name: boss, role: admin, password_hash: secret}\n", 2, "users.0.password_hash", "is not a bcrypt hash"},
		{"user password key", "users:\n  - name: boss\n    role: admin\n    password: secret\n    password_hash: $2a$04$M9MOuyUFpQFNmw0j0RAdieTk/ixa6J2GkwWFaokGir7MykI2UNKG2\n", 4, "users.0.password", `unknown key "password"`},
		{"session ttl", "http:\n  session_ttl: 30s\n", 2, "http.session_ttl", "at least 1m"},
		{"pprof listen", "http:\n  pprof_listen: \"6060\"\n", 2, "http.pprof_listen", `"6060" is not host:port`},
		{"login rate", "limits:\n  logins_per_user: many\n", 2, "limits.logins_per_user", `"many" is not a rate`},
		{"tls cert alone", "http:\n  tls_cert: directory.csv\n", 1, "http.tls_key", "is required with http.tls_cert"},
		{"tls key alone", "http:\n  tls_key: directory.csv\n", 1, "http.tls_cert", "is required with http.tls_key"},
		{"tls cert missing", "http:\n  tls_cert: nope.pem\n  tls_key: directory.csv\n", 2, "http.tls_cert", "cannot read"},
		{"tls not a pair", "http:\n  tls_cert: directory.csv\n  tls_key: directory.csv\n", 2, "http.tls_cert", "cannot use"},
		{"rate", "limits:\n  invites_per_source: lots\n", 2, "limits.invites_per_source", `"lots" is not a rate like 20/s`},
		{"number action", "limits:\n  number_action: shout\n", 2, "limits.number_action", `"shout" is not one of busy, announce`},
		{"ring timeout", "agents:\n  ring_timeout: 0s\n", 2, "agents.ring_timeout", "must be positive"},
		{"webrtc port", "webrtc:\n  udp_port: 70000\n", 2, "webrtc.udp_port", "is not a port"},
		{"webrtc ip", "webrtc:\n  listen_ip: here\n", 2, "webrtc.listen_ip", "is not an IP address"},
		{"log level", "log:\n  level: loud\n", 2, "log.level", `"loud" is not one of debug, info, warn, error`},
		{"log format", "log:\n  format: xml\n", 2, "log.format", `"xml" is not one of text, json`},
		{"redis scheme", "redis:\n  url: http://u:secret@h:6379\n", 2, "redis.url", `"http://u:xxxxx@h:6379" is not a redis://`},
		{"recordings empty", "recordings:\n  dir: \"\"\n", 2, "recordings.dir", "is required"},
		{"recordings retention negative", "recordings:\n  retention_days: -1\n", 2, "recordings.retention_days", "must not be negative"},
		{"recordings buffer small", "recordings:\n  buffer: 10\n", 2, "recordings.buffer", "must be within 28-30000"},
		{"crm url scheme", "ivr:\n  flow: flows/main.yaml\n  crm:\n    url: ftp://crm/{number}\n", 4, "ivr.crm.url", "is not an http(s) URL"},
		{"crm url without number", "ivr:\n  flow: flows/main.yaml\n  crm:\n    url: https://crm/callers\n", 4, "ivr.crm.url", "must contain {number}"},
		{"no country", "ivr:\n  flow: flows/main.yaml\n  default_country: \"\"\n", 3, "ivr.default_country", "is required"},
		{"no flow", "ivr:\n  prompts: prompts\n", 1, "ivr.flow", "is required"},
		{"flow missing", "ivr:\n  flow: flows/nope.yaml\n", 2, "ivr.flow", "cannot read"},
		{"flow is a directory", "ivr:\n  flow: flows\n", 2, "ivr.flow", "is a directory"},
		{"number flow missing", "ivr:\n  flow: flows/main.yaml\n  numbers:\n    sales: flows/sales.yaml\n", 4, "ivr.numbers.sales", "cannot read"},
		{"prompts not a directory", "ivr:\n  flow: flows/main.yaml\n  prompts: directory.csv\n", 3, "ivr.prompts", "is not a directory"},
		{"directory missing", "ivr:\n  flow: flows/main.yaml\n  directory: callers.csv\n", 3, "ivr.directory", "cannot read"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := expectOneKeyError(t, c.yaml, c.line, c.key, c.msg)
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error shows a password: %v", err)
			}
		})
	}
}

// An empty file still names the file: the flow is missing.
func TestEmptyFile(t *testing.T) {
	clearEnv(t)
	path := writeConfig(t, "# nothing yet\n")
	_, err := configs.Load(path)
	if want := path + ": ivr.flow: is required"; err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %s", err, want)
	}
}

// Every problem is reported at once, in file order per kind: unknown keys
// and wrong types first, then bad environment values, then invalid values.
// A key with the wrong type is not reported a second time as missing.
func TestAllErrorsReported(t *testing.T) {
	clearEnv(t)
	t.Setenv("IVRD_PUBLIC_IP", "nowhere")
	path := writeConfig(t, `sip:
  listen: 127.0.0.1
  max_calls: lots
  rtp_timeout: soon
  lisen: x
media:
  rtp_ports: abc
ivr:
  flow: [flows/main.yaml]
  prompts: nowhere
log:
  level: loud
  format: xml
shutdown:
  grace: -1s
`)
	_, err := configs.Load(path)
	dir := filepath.Dir(path)
	want := []string{
		path + ":3: sip.max_calls: cannot unmarshal !!str `lots` into int",
		path + ":4: sip.rtp_timeout: cannot unmarshal !!str `soon` into time.Duration",
		path + `:5: sip.lisen: unknown key "lisen"`,
		path + `:7: media.rtp_ports: "abc" is not a port range like 30000-30999`,
		path + ":9: ivr.flow: cannot unmarshal !!seq into string",
		`IVRD_PUBLIC_IP: "nowhere" is not an IP address`,
		path + `:2: sip.listen: "127.0.0.1" is not host:port`,
		path + `:10: ivr.prompts: "` + filepath.Join(dir, "nowhere") + `" is not a directory`,
		path + ":15: shutdown.grace: must not be negative",
		path + `:12: log.level: "loud" is not one of debug, info, warn, error`,
		path + `:13: log.format: "xml" is not one of text, json`,
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Fatalf("err =\n%v\nwant\n%s", err, strings.Join(want, "\n"))
	}
}

// Each override wins over the file.
func TestEnvOverrides(t *testing.T) {
	clearEnv(t)
	path := writeConfig(t, minimal+`sip:
  listen: 127.0.0.1:5060
  public_ip: 127.0.0.1
media:
  rtp_ports: 30000-30999
http:
  listen: 127.0.0.1:8080
redis:
  url: redis://file-host:6379
recordings:
  dir: from-file
`)
	recDir := t.TempDir()
	t.Setenv("IVRD_SIP_LISTEN", "0.0.0.0:5070")
	t.Setenv("IVRD_HTTP_LISTEN", "127.0.0.1:0")
	t.Setenv("IVRD_RTP_PORTS", "20000-20199")
	t.Setenv("IVRD_REDIS_URL", "redis://env-host:6380/1")
	t.Setenv("IVRD_RECORDINGS_DIR", recDir)
	t.Setenv("IVRD_PUBLIC_IP", "198.51.100.4")
	cfg := mustLoad(t, path)
	for _, c := range []struct{ name, got, want string }{
		{"IVRD_SIP_LISTEN", cfg.SIP.Listen, "0.0.0.0:5070"},
		{"IVRD_HTTP_LISTEN", cfg.HTTP.Listen, "127.0.0.1:0"},
		{"IVRD_RTP_PORTS", cfg.Media.RTPPorts.String(), "20000-20199"},
		{"IVRD_REDIS_URL", cfg.Redis.URL, "redis://env-host:6380/1"},
		{"IVRD_RECORDINGS_DIR", cfg.Recordings.Dir, recDir},
		{"IVRD_PUBLIC_IP", cfg.SIP.PublicIP, "198.51.100.4"},
	} {
		if c.got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, c.got, c.want)
		}
	}
}

// One override at a time, each against the default it replaces; a relative
// IVRD_RECORDINGS_DIR is relative to the working directory, like a command
// line argument, not to the configuration file.
func TestEnvOverrideEach(t *testing.T) {
	cases := []struct {
		env, value string
		get        func(*configs.Config) string
		want       string
	}{
		{"IVRD_SIP_LISTEN", "127.0.0.2:5099", func(c *configs.Config) string { return c.SIP.Listen }, "127.0.0.2:5099"},
		{"IVRD_SIP_LISTEN", "[::1]:5060", func(c *configs.Config) string { return c.SIP.Listen }, "[::1]:5060"},
		{"IVRD_HTTP_LISTEN", ":8181", func(c *configs.Config) string { return c.HTTP.Listen }, ":8181"},
		{"IVRD_RTP_PORTS", " 40000 - 40001 ", func(c *configs.Config) string { return c.Media.RTPPorts.String() }, "40000-40001"},
		{"IVRD_REDIS_URL", "rediss://u:p@r:6380", func(c *configs.Config) string { return c.Redis.URL }, "rediss://u:p@r:6380"},
		{"IVRD_REDIS_URL", "", func(c *configs.Config) string { return c.Redis.URL }, ""},
		{"IVRD_RECORDINGS_DIR", "rec", func(c *configs.Config) string { return c.Recordings.Dir }, "rec"},
		{"IVRD_PUBLIC_IP", "2001:db8::1", func(c *configs.Config) string { return c.SIP.PublicIP }, "2001:db8::1"},
	}
	for _, c := range cases {
		t.Run(c.env+"="+c.value, func(t *testing.T) {
			clearEnv(t)
			path := writeConfig(t, minimal+"redis:\n  url: redis://file:6379\n")
			t.Setenv(c.env, c.value)
			cfg := mustLoad(t, path)
			if got := c.get(cfg); got != c.want {
				t.Errorf("got %q, want %q", got, c.want)
			}
		})
	}
}

// IVRD_PUBLIC_IP satisfies the public address a wildcard listen needs, and
// a wildcard IVRD_SIP_LISTEN without one is refused.
func TestEnvWildcardListen(t *testing.T) {
	clearEnv(t)
	path := writeConfig(t, minimal)
	t.Setenv("IVRD_SIP_LISTEN", "0.0.0.0:5060")
	_, err := configs.Load(path)
	if err == nil || !strings.Contains(err.Error(), `sip.public_ip: required when sip.listen is "0.0.0.0:5060"`) {
		t.Fatalf("err = %v", err)
	}
	t.Setenv("IVRD_PUBLIC_IP", "192.0.2.10")
	mustLoad(t, path)
}

// A bad environment value is reported under the variable's name, and only
// there: the file, which holds a valid value, is not blamed.
func TestEnvInvalid(t *testing.T) {
	cases := []struct{ env, value, want string }{
		{"IVRD_SIP_LISTEN", "nope", `IVRD_SIP_LISTEN: "nope" is not host:port`},
		{"IVRD_SIP_LISTEN", "127.0.0.1:99999", `IVRD_SIP_LISTEN: "127.0.0.1:99999" is not host:port`},
		{"IVRD_SIP_LISTEN", "", `IVRD_SIP_LISTEN: "" is not host:port`},
		{"IVRD_HTTP_LISTEN", "8080", `IVRD_HTTP_LISTEN: "8080" is not host:port`},
		{"IVRD_RTP_PORTS", "30001-30000", `IVRD_RTP_PORTS: "30001-30000": the first port is above the last`},
		{"IVRD_RTP_PORTS", "abc", `IVRD_RTP_PORTS: "abc" is not a port range like 30000-30999`},
		{"IVRD_REDIS_URL", "http://u:secret@host", `IVRD_REDIS_URL: "http://u:xxxxx@host" is not a redis:// or rediss:// URL`},
		{"IVRD_RECORDINGS_DIR", "", `IVRD_RECORDINGS_DIR: "" is empty`},
		{"IVRD_PUBLIC_IP", "nope", `IVRD_PUBLIC_IP: "nope" is not an IP address`},
		{"IVRD_PUBLIC_IP", "", `IVRD_PUBLIC_IP: "" is not an IP address`},
	}
	for _, c := range cases {
		t.Run(c.env+"="+c.value, func(t *testing.T) {
			clearEnv(t)
			path := writeConfig(t, minimal+"sip:\n  public_ip: 127.0.0.1\nredis:\n  url: redis://h:6379\n")
			t.Setenv(c.env, c.value)
			_, err := configs.Load(path)
			if err == nil || err.Error() != c.want {
				t.Fatalf("err = %v, want %s", err, c.want)
			}
			kes := keyErrors(t, err)
			if len(kes) != 1 || kes[0].Key != c.env || kes[0].File != "" || kes[0].Line != 0 {
				t.Errorf("got %#v", kes)
			}
		})
	}
}

// Parse takes the environment as a function, for callers that build one.
func TestParseLookup(t *testing.T) {
	clearEnv(t)
	path := writeConfig(t, minimal)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"IVRD_HTTP_LISTEN": "127.0.0.1:9999"}
	cfg, err := configs.Parse(path, data, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.Listen != "127.0.0.1:9999" {
		t.Errorf("http.listen = %q", cfg.HTTP.Listen)
	}
}

func TestKeyErrorFormat(t *testing.T) {
	cases := []struct {
		err  configs.KeyError
		want string
	}{
		{configs.KeyError{File: "ivrd.yaml", Line: 12, Key: "sip.listen", Msg: "bad"}, "ivrd.yaml:12: sip.listen: bad"},
		{configs.KeyError{File: "ivrd.yaml", Key: "ivr.flow", Msg: "is required"}, "ivrd.yaml: ivr.flow: is required"},
		{configs.KeyError{Line: 3, Key: "a.b", Msg: "m"}, "3: a.b: m"},
		{configs.KeyError{Key: "IVRD_PUBLIC_IP", Msg: `"x" is not an IP address`}, `IVRD_PUBLIC_IP: "x" is not an IP address`},
	}
	for _, c := range cases {
		if got := c.err.Error(); got != c.want {
			t.Errorf("%#v.Error() = %q, want %q", c.err, got, c.want)
		}
	}
}

// Errorf and Locate find the line of a nested key, including through
// sequences and aliases, and fall back to the deepest parent written.
func TestErrorfNested(t *testing.T) {
	const doc = `start: welcome
defaults: &defaults
  timeout: 5s
nodes:
  main_menu:
    type: menu
    options:
      "1": billing
      "2": support
    prompts:
      - main_menu
      - invalid
  other: *defaults
`
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(doc), &root); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		path []string
		line int
	}{
		{[]string{"start"}, 1},
		{[]string{"nodes", "main_menu", "options", "2"}, 9},
		{[]string{"nodes", "main_menu", "prompts", "1"}, 12},
		{[]string{"nodes", "other", "timeout"}, 3},           // through the alias
		{[]string{"nodes", "main_menu", "next"}, 5},          // missing: its parent
		{[]string{"nodes", "main_menu", "prompts", "7"}, 10}, // index out of range
		{[]string{"nodes", "main_menu", "prompts", "x"}, 10}, // not an index
		{[]string{"schedules", "support_hours", "open"}, 1},  // missing at the top
		{nil, 1}, // the document itself
		{[]string{"nodes", "main_menu", "type", "deeper"}, 6}, // below a scalar
	}
	for _, c := range cases {
		e := configs.Errorf("flows/main.yaml", &root, c.path, "bad %s", "thing")
		if e.Line != c.line || e.Key != strings.Join(c.path, ".") || e.File != "flows/main.yaml" || e.Msg != "bad thing" {
			t.Errorf("Errorf(%v) = %#v, want line %d", c.path, e, c.line)
		}
		if got := configs.Locate(&root, c.path...); got != c.line {
			t.Errorf("Locate(%v) = %d, want %d", c.path, got, c.line)
		}
	}
	e := configs.Errorf("flows/main.yaml", &root, []string{"nodes", "main_menu", "options", "2"}, "unknown node %q", "suport")
	if want := `flows/main.yaml:9: nodes.main_menu.options.2: unknown node "suport"`; e.Error() != want {
		t.Errorf("Error() = %q, want %q", e.Error(), want)
	}
	// A mapping node works as root too, and no root means no line.
	if got := configs.Locate(root.Content[0], "nodes", "main_menu"); got != 5 {
		t.Errorf("Locate(mapping) = %d, want 5", got)
	}
	if got := configs.Locate(nil, "a"); got != 0 {
		t.Errorf("Locate(nil) = %d, want 0", got)
	}
	if e := configs.Errorf("", nil, []string{"a", "b"}, "m"); e.Error() != "a.b: m" {
		t.Errorf("Errorf without file = %q", e.Error())
	}
}

func TestParseRate(t *testing.T) {
	for in, want := range map[string]configs.Rate{
		"20/s": {N: 20, Per: time.Second}, " 5 / m ": {N: 5, Per: time.Minute}, "100/h": {N: 100, Per: time.Hour},
		"0": {}, "off": {}, "": {},
	} {
		got, err := configs.ParseRate(in)
		if err != nil || got != want {
			t.Errorf("ParseRate(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"5", "5/d", "-1/s", "x/s", "5/"} {
		if _, err := configs.ParseRate(bad); err == nil {
			t.Errorf("ParseRate(%q) accepted", bad)
		}
	}
	if s := (configs.Rate{N: 5, Per: time.Minute}).String(); s != "5/m" {
		t.Errorf("String = %q", s)
	}
}

func TestParsePortRange(t *testing.T) {
	good := map[string]configs.PortRange{
		"30000-30999":   {30000, 30999},
		" 1024 - 1025 ": {1024, 1025},
		"65534-65535":   {65534, 65535},
		"30001-30003":   {30001, 30003}, // 30002/30003
	}
	for s, want := range good {
		got, err := configs.ParsePortRange(s)
		if err != nil || got != want {
			t.Errorf("ParsePortRange(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	for _, s := range []string{"", "abc", "30000", "30000-", "-30000", "30000-abc", "1023-2000", "30000-65536",
		"30001-30000", "30000-30000", "30001-30002", "65535-65535"} {
		if got, err := configs.ParsePortRange(s); err == nil {
			t.Errorf("ParsePortRange(%q) = %v, want an error", s, got)
		}
	}
	if s := (configs.PortRange{Min: 20000, Max: 20199}).String(); s != "20000-20199" {
		t.Errorf("String() = %q", s)
	}
}

// expectOneKeyError loads yaml (after the minimal ivr section unless it
// starts with its own) and wants exactly one error, at line (counted from
// the first line of yaml), naming key, with msg in its message. It returns
// the error.
func expectOneKeyError(t *testing.T, yaml string, line int, key, msg string) error {
	t.Helper()
	clearEnv(t)
	text, offset := yaml, 0
	if !strings.HasPrefix(text, "ivr:") {
		text, offset = minimal+text, 2
	}
	path := writeConfig(t, text)
	_, err := configs.Load(path)
	if err == nil {
		t.Fatal("no error")
	}
	kes := keyErrors(t, err)
	if len(kes) != 1 {
		t.Fatalf("want exactly one error, got:\n%v", err)
	}
	ke := kes[0]
	if ke.File != path || ke.Line != line+offset || ke.Key != key || !strings.Contains(ke.Msg, msg) {
		t.Errorf("got %s:%d: %s: %s\nwant line %d, key %s, message containing %q",
			ke.File, ke.Line, ke.Key, ke.Msg, line+offset, key, msg)
	}
	return err
}

// A certificate and key named in the file are found next to it and must
// be a pair.
func TestTLSFiles(t *testing.T) {
	clearEnv(t)
	path := writeConfig(t, minimal+"http:\n  tls_cert: tls/cert.pem\n  tls_key: tls/key.pem\n")
	dir := filepath.Dir(path)
	if err := os.Mkdir(filepath.Join(dir, "tls"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeSelfSigned(t, filepath.Join(dir, "tls", "cert.pem"), filepath.Join(dir, "tls", "key.pem"))
	cfg := mustLoad(t, path)
	if !cfg.HTTP.TLS() || cfg.HTTP.TLSCert != filepath.Join(dir, "tls", "cert.pem") || cfg.HTTP.TLSKey != filepath.Join(dir, "tls", "key.pem") {
		t.Fatalf("http = %+v; want TLS with the files next to the configuration", cfg.HTTP)
	}
	// Another key than the certificate's is refused.
	other := filepath.Join(t.TempDir(), "other")
	writeSelfSigned(t, other+".crt", other+".key")
	if err := os.Rename(other+".key", filepath.Join(dir, "tls", "key.pem")); err != nil {
		t.Fatal(err)
	}
	_, err := configs.Load(path)
	if err == nil || !strings.Contains(err.Error(), "http.tls_cert: cannot use") {
		t.Fatalf("mismatched key: %v", err)
	}
}

// writeSelfSigned writes a fresh self-signed certificate for 127.0.0.1 and
// its key as PEM.
func writeSelfSigned(t *testing.T, certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ivrd test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
}
