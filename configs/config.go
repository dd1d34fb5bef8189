// Package configs loads and validates ivrd's configuration: one YAML file,
// decoded strictly, with environment overrides, and errors that name the key
// and its line. The directory also holds the demo configuration (ivrd.yaml),
// its flow, caller directory and prompts.
package configs

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"
)

// Config is the whole server configuration.
type Config struct {
	SIP        SIP        `yaml:"sip"`
	Media      Media      `yaml:"media"`
	IVR        IVR        `yaml:"ivr"`
	HTTP       HTTP       `yaml:"http"`
	Redis      Redis      `yaml:"redis"`
	Queue      Queue      `yaml:"queue"`
	Limits     Limits     `yaml:"limits"`
	Users      []User     `yaml:"users"`
	Agents     Agents     `yaml:"agents"`
	WebRTC     WebRTC     `yaml:"webrtc"`
	Recordings Recordings `yaml:"recordings"`
	Shutdown   Shutdown   `yaml:"shutdown"`
	Log        Log        `yaml:"log"`

	file string
}

// SIP configures the SIP front end.
type SIP struct {
	Listen      string        `yaml:"listen"`       // host:port for UDP and TCP
	Transports  []string      `yaml:"transports"`   // udp, tcp
	PublicIP    string        `yaml:"public_ip"`    // written into SDP and Contact; default: the listen host
	UserAgent   string        `yaml:"user_agent"`   // User-Agent header
	RTPTimeout  time.Duration `yaml:"rtp_timeout"`  // no RTP this long → BYE
	AckTimeout  time.Duration `yaml:"ack_timeout"`  // no ACK for our 200 this long → BYE
	AnswerDelay time.Duration `yaml:"answer_delay"` // ring this long before answering
	MaxCalls    int           `yaml:"max_calls"`    // beyond: 503
}

// Media configures RTP.
type Media struct {
	RTPPorts PortRange `yaml:"rtp_ports"`
}

// IVR configures flows, prompts and caller identification.
type IVR struct {
	Flow           string            `yaml:"flow"`            // default flow file
	Numbers        map[string]string `yaml:"numbers"`         // dialled user → flow file
	Prompts        string            `yaml:"prompts"`         // directory of WAV prompts
	DefaultCountry string            `yaml:"default_country"` // ISO code for national numbers
	Directory      string            `yaml:"directory"`       // CSV of known callers; optional
	CRM            CRM               `yaml:"crm"`
}

// CRM configures caller lookups over HTTP.
type CRM struct {
	URL     string            `yaml:"url"` // contains {number}; empty: no CRM
	Timeout time.Duration     `yaml:"timeout"`
	Headers map[string]string `yaml:"headers"`
}

// HTTP configures the web server.
type HTTP struct {
	Listen     string        `yaml:"listen"`
	TLSCert    string        `yaml:"tls_cert"`    // PEM certificate (chain); with tls_key: serve https
	TLSKey     string        `yaml:"tls_key"`     // PEM private key of tls_cert
	SessionTTL time.Duration `yaml:"session_ttl"` // a login lasts this long
	// PprofListen, when set, serves Go's profiler (net/http/pprof) on its
	// own plain-http listener: keep it on loopback.
	PprofListen string `yaml:"pprof_listen"`
}

// TLS reports whether the web server serves https.
func (h HTTP) TLS() bool { return h.TLSCert != "" && h.TLSKey != "" }

// Agents configures how calls are offered to agents.
type Agents struct {
	RingTimeout     time.Duration `yaml:"ring_timeout"`      // no accept this long: missed, caller back at the head
	WrapUpTimeout   time.Duration `yaml:"wrap_up_timeout"`   // wrap-up ends by itself after this
	DeclineNotReady bool          `yaml:"decline_not_ready"` // a decline makes the agent not_ready
	ReconnectGrace  time.Duration `yaml:"reconnect_grace"`   // an idle agent whose connections dropped stays logged in this long
	CallGrace       time.Duration `yaml:"call_grace"`        // the same during a call; then the caller goes back to the queue
}

// WebRTC configures the agents' audio.
type WebRTC struct {
	UDPPort  int       `yaml:"udp_port"`  // one UDP port for every agent (muxed); 0: a port per agent from ports
	Ports    PortRange `yaml:"ports"`     // with udp_port 0
	ListenIP string    `yaml:"listen_ip"` // address ICE binds; default: the SIP listen host
}

// Redis configures shared state.
type Redis struct {
	URL    string `yaml:"url"`    // empty: embedded in-process store
	Prefix string `yaml:"prefix"` // key prefix; keys are "<prefix>:{q}:…"
}

// Queue configures skills and waiting.
type Queue struct {
	Skills            map[string]Skill `yaml:"skills"`
	ServiceLevel      time.Duration    `yaml:"service_level"`       // answered within this counts for the service level
	AnnounceEvery     time.Duration    `yaml:"announce_every"`      // position and estimate repeated this often
	Window            time.Duration    `yaml:"window"`              // throughput window of the estimate
	DefaultHandleTime time.Duration    `yaml:"default_handle_time"` // until handle times are measured
}

// Skill configures one skill's queue.
type Skill struct {
	Routing       string        `yaml:"routing"`        // idle (longest idle first) or proficiency
	AnnounceEvery time.Duration `yaml:"announce_every"` // overrides queue.announce_every
}

// User is an account defined in the file (more can be added to Redis with
// `ivrd user`). Agents are also created in the queue, offline until they
// log in.
type User struct {
	Name         string         `yaml:"name"`          // log-in name; an agent's id in the queue
	DisplayName  string         `yaml:"display_name"`  // shown to people
	Role         string         `yaml:"role"`          // agent, supervisor or admin
	Skills       map[string]int `yaml:"skills"`        // agents only: skill → proficiency 1..100
	PasswordHash string         `yaml:"password_hash"` // bcrypt; `ivrd user hash` makes one
}

// Limits configures admission rate limits, shared by every instance on the
// same Redis.
type Limits struct {
	InvitesPerSource Rate   `yaml:"invites_per_source"` // new INVITEs per source IP; beyond: 503 + Retry-After
	CallsPerNumber   Rate   `yaml:"calls_per_number"`   // new calls per caller number
	NumberAction     string `yaml:"number_action"`      // busy (486) or announce (a "call back later" prompt)
	LoginsPerUser    Rate   `yaml:"logins_per_user"`    // login attempts per user name; beyond: 429 + Retry-After
	LoginsPerAddress Rate   `yaml:"logins_per_address"` // login attempts per client IP address
}

// Rate is "N/unit" (e.g. "20/s", "5/m", "100/h"); "0" or "" turns the limit off.
type Rate struct {
	N   int
	Per time.Duration
}

// UnmarshalYAML reads "20/s".
func (r *Rate) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseRate(n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %v", n.Line, err)}}
	}
	*r = v
	return nil
}

// String writes "20/s".
func (r Rate) String() string {
	if r.N == 0 {
		return "off"
	}
	unit := map[time.Duration]string{time.Second: "s", time.Minute: "m", time.Hour: "h"}[r.Per]
	return fmt.Sprintf("%d/%s", r.N, unit)
}

// ParseRate reads "20/s", "5/m" or "100/h"; "0", "off" and "" mean no limit.
func ParseRate(s string) (Rate, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == "0" || s == "off" {
		return Rate{}, nil
	}
	num, unit, ok := strings.Cut(s, "/")
	n, err := strconv.Atoi(strings.TrimSpace(num))
	per := map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour}[strings.TrimSpace(unit)]
	if !ok || err != nil || n < 0 || per == 0 {
		return Rate{}, fmt.Errorf("%q is not a rate like 20/s, 5/m or 100/h", s)
	}
	return Rate{N: n, Per: per}, nil
}

// Recordings configures call recording.
type Recordings struct {
	Dir           string `yaml:"dir"`            // where recordings and their metadata are written
	Enabled       bool   `yaml:"enabled"`        // record answered calls
	RetentionDays int    `yaml:"retention_days"` // delete recordings older than this; 0: keep for ever
	Buffer        int    `yaml:"buffer"`         // a recording's window in memory, in 20 ms frames (default 28: 560 ms)
}

// Shutdown configures what SIGTERM does.
type Shutdown struct {
	Grace time.Duration `yaml:"grace"` // calls may finish for this long, then BYE
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`  // debug, info, warn, error
	Format string `yaml:"format"` // text, json
}

// PortRange is an inclusive port range written "30000-30999".
type PortRange struct {
	Min, Max int
}

// UnmarshalYAML reads "min-max". A bad range is a *yaml.TypeError carrying
// its line, so the error names the key and decoding goes on to report the
// other problems in the file.
func (r *PortRange) UnmarshalYAML(n *yaml.Node) error {
	pr, err := ParsePortRange(n.Value)
	if err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %v", n.Line, err)}}
	}
	*r = pr
	return nil
}

// String writes "min-max".
func (r PortRange) String() string { return fmt.Sprintf("%d-%d", r.Min, r.Max) }

// ParsePortRange reads "30000-30999".
func ParsePortRange(s string) (PortRange, error) {
	lo, hi, ok := strings.Cut(strings.TrimSpace(s), "-")
	a, err1 := strconv.Atoi(strings.TrimSpace(lo))
	b, err2 := strconv.Atoi(strings.TrimSpace(hi))
	switch {
	case !ok || err1 != nil || err2 != nil:
		return PortRange{}, fmt.Errorf("%q is not a port range like 30000-30999", s)
	case a < 1024 || b > 65535:
		return PortRange{}, fmt.Errorf("%q: ports must be within 1024-65535", s)
	case a > b:
		return PortRange{}, fmt.Errorf("%q: the first port is above the last", s)
	case b-(a+a%2) < 1:
		// RTP takes an even port and RTCP the next one (RFC 3550 §11).
		return PortRange{}, fmt.Errorf("%q: a range needs an even port and the next one (RTP and RTCP)", s)
	}
	return PortRange{Min: a, Max: b}, nil
}

// Defaults are what an empty file means.
func Defaults() Config {
	return Config{
		SIP: SIP{
			Listen:     "127.0.0.1:5060",
			Transports: []string{"udp", "tcp"},
			UserAgent:  "ivrd",
			RTPTimeout: 60 * time.Second,
			AckTimeout: 32 * time.Second,
			MaxCalls:   2000,
		},
		Media: Media{RTPPorts: PortRange{Min: 30000, Max: 30999}},
		IVR:   IVR{Prompts: "prompts", DefaultCountry: "US", CRM: CRM{Timeout: 500 * time.Millisecond}},
		HTTP:  HTTP{Listen: "127.0.0.1:8080", SessionTTL: 12 * time.Hour},
		Redis: Redis{Prefix: "ivrd"},
		Agents: Agents{
			RingTimeout: 15 * time.Second, WrapUpTimeout: 60 * time.Second,
			ReconnectGrace: 30 * time.Second, CallGrace: 10 * time.Second,
		},
		WebRTC: WebRTC{Ports: PortRange{Min: 31000, Max: 31999}},
		Queue: Queue{
			ServiceLevel: 20 * time.Second, AnnounceEvery: 45 * time.Second,
			Window: 30 * time.Minute, DefaultHandleTime: 3 * time.Minute,
		},
		Limits: Limits{
			InvitesPerSource: Rate{N: 50, Per: time.Second},
			CallsPerNumber:   Rate{N: 10, Per: time.Minute},
			NumberAction:     "announce",
			LoginsPerUser:    Rate{N: 5, Per: time.Minute},
			LoginsPerAddress: Rate{N: 20, Per: time.Minute},
		},
		Recordings: Recordings{Dir: "recordings", Enabled: true, RetentionDays: 90, Buffer: 28},
		Shutdown:   Shutdown{Grace: 30 * time.Second},
		Log:        Log{Level: "info", Format: "text"},
	}
}

// Load reads, checks and completes the configuration at path, with the
// process environment's overrides.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	return Parse(path, data, os.LookupEnv)
}

// Parse is Load on bytes, with the environment passed in. Relative paths
// in the file are taken relative to the file's directory.
func Parse(file string, data []byte, lookupEnv func(string) (string, bool)) (*Config, error) {
	cfg := Defaults()
	cfg.file = file
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, errors.Join(yamlErr(file, &root, err)...)
	}
	var errs, decodeErrs []error
	if len(bytes.TrimSpace(data)) > 0 {
		dec := yaml.NewDecoder(bytes.NewReader(data))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
			var te *yaml.TypeError
			if !errors.As(err, &te) {
				return nil, errors.Join(yamlErr(file, &root, err)...)
			}
			// Unknown keys and wrong types leave the rest decoded: go on,
			// so every problem in the file is reported at once.
			decodeErrs = yamlErr(file, &root, err)
			errs = append(errs, decodeErrs...)
		}
	}
	// Paths from the file are relative to the file; paths from the
	// environment are relative to the working directory, as on a command line.
	cfg.resolvePaths(filepath.Dir(file))
	errs = append(errs, cfg.applyEnv(lookupEnv)...)
	for _, e := range cfg.validate(&root) {
		if !sameKey(e, decodeErrs) { // already reported as unknown or mistyped
			errs = append(errs, e)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &cfg, nil
}

var yamlLine = regexp.MustCompile(`line (\d+): (.*)`)
var unknownField = regexp.MustCompile(`field (\S+) not found in type configs\.(\w+)`)

// yamlErr turns yaml.v3's messages ("line 3: field lisen not found in type
// configs.SIP") into KeyErrors naming the file, line and key path.
func yamlErr(file string, root *yaml.Node, err error) []error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			line, _ := strconv.Atoi(m[1])
			return []error{&KeyError{File: file, Line: line, Key: "(file)", Msg: m[2]}}
		}
		return []error{&KeyError{File: file, Key: "(file)", Msg: msg}}
	}
	var errs []error
	for _, e := range te.Errors {
		m := yamlLine.FindStringSubmatch(e)
		if m == nil {
			errs = append(errs, &KeyError{File: file, Key: "(file)", Msg: e})
			continue
		}
		line, _ := strconv.Atoi(m[1])
		key, msg := keyAtLine(root, line), m[2]
		if u := unknownField.FindStringSubmatch(msg); u != nil {
			msg = "unknown key " + strconv.Quote(u[1])
		}
		errs = append(errs, &KeyError{File: file, Line: line, Key: key, Msg: msg})
	}
	return errs
}

// sameKey reports whether e is about a key (or a key within, or around, a
// key) that one of reported already names.
func sameKey(e error, reported []error) bool {
	var ke *KeyError
	if !errors.As(e, &ke) {
		return false
	}
	for _, r := range reported {
		var rk *KeyError
		if errors.As(r, &rk) && rk.Key != "(file)" &&
			(rk.Key == ke.Key || strings.HasPrefix(ke.Key, rk.Key+".") || strings.HasPrefix(rk.Key, ke.Key+".")) {
			return true
		}
	}
	return false
}

// keyAtLine finds the dotted path of the key written on line.
func keyAtLine(root *yaml.Node, line int) string {
	var walk func(n *yaml.Node, path []string) []string
	walk = func(n *yaml.Node, path []string) []string {
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				if p := walk(c, path); p != nil {
					return p
				}
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := append(append([]string(nil), path...), k.Value)
				if k.Line == line {
					return p
				}
				if r := walk(v, p); r != nil {
					return r
				}
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := append(append([]string(nil), path...), strconv.Itoa(i))
				if c.Line == line && c.Kind == yaml.ScalarNode {
					return p
				}
				if r := walk(c, p); r != nil {
					return r
				}
			}
		}
		return nil
	}
	if p := walk(root, nil); p != nil {
		return strings.Join(p, ".")
	}
	return "(file)"
}

// The environment overrides of the design, so several instances and tests
// can share one machine. An invalid value is reported under the variable's
// name and not applied, so it is not blamed on the file as well.
func (c *Config) applyEnv(lookup func(string) (string, bool)) []error {
	var errs []error
	envErr := func(name, v, msg string) {
		errs = append(errs, &KeyError{Key: name, Msg: fmt.Sprintf("%q %s", v, msg)})
	}
	if v, ok := lookup("IVRD_SIP_LISTEN"); ok {
		if !isHostPort(v) {
			envErr("IVRD_SIP_LISTEN", v, "is not host:port")
		} else {
			c.SIP.Listen = v
		}
	}
	if v, ok := lookup("IVRD_HTTP_LISTEN"); ok {
		if !isHostPort(v) {
			envErr("IVRD_HTTP_LISTEN", v, "is not host:port")
		} else {
			c.HTTP.Listen = v
		}
	}
	if v, ok := lookup("IVRD_RTP_PORTS"); ok {
		pr, err := ParsePortRange(v)
		if err != nil {
			errs = append(errs, &KeyError{Key: "IVRD_RTP_PORTS", Msg: err.Error()})
		} else {
			c.Media.RTPPorts = pr
		}
	}
	if v, ok := lookup("IVRD_REDIS_URL"); ok {
		if v != "" && !isRedisURL(v) { // empty means the embedded store
			envErr("IVRD_REDIS_URL", redactURL(v), "is not a redis:// or rediss:// URL")
		} else {
			c.Redis.URL = v
		}
	}
	if v, ok := lookup("IVRD_RECORDINGS_DIR"); ok {
		if v == "" {
			envErr("IVRD_RECORDINGS_DIR", v, "is empty")
		} else {
			c.Recordings.Dir = v
		}
	}
	if v, ok := lookup("IVRD_PUBLIC_IP"); ok {
		if net.ParseIP(v) == nil {
			envErr("IVRD_PUBLIC_IP", v, "is not an IP address")
		} else {
			c.SIP.PublicIP = v
		}
	}
	return errs
}

// isHostPort accepts "host:port" with a numeric port (0: any free port);
// the host may be empty (every interface).
func isHostPort(s string) bool {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return false
	}
	p, err := strconv.Atoi(port)
	return err == nil && p >= 0 && p <= 65535
}

func isRedisURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "redis" || u.Scheme == "rediss")
}

func (c *Config) resolvePaths(dir string) {
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	c.IVR.Flow = abs(c.IVR.Flow)
	for k, v := range c.IVR.Numbers {
		c.IVR.Numbers[k] = abs(v)
	}
	c.IVR.Prompts = abs(c.IVR.Prompts)
	c.IVR.Directory = abs(c.IVR.Directory)
	c.Recordings.Dir = abs(c.Recordings.Dir)
	c.HTTP.TLSCert = abs(c.HTTP.TLSCert)
	c.HTTP.TLSKey = abs(c.HTTP.TLSKey)
}

// validate checks everything in one place; all problems are reported.
func (c *Config) validate(root *yaml.Node) []error {
	var errs []error
	bad := func(path string, format string, args ...any) {
		errs = append(errs, Errorf(c.file, root, strings.Split(path, "."), format, args...))
	}
	host, _, err := net.SplitHostPort(c.SIP.Listen)
	if !isHostPort(c.SIP.Listen) {
		bad("sip.listen", "%q is not host:port", c.SIP.Listen)
	}
	if len(c.SIP.Transports) == 0 {
		bad("sip.transports", "needs at least one of udp, tcp")
	}
	for i, t := range c.SIP.Transports {
		if t != "udp" && t != "tcp" {
			bad("sip.transports."+strconv.Itoa(i), "unknown transport %q (udp, tcp)", t)
		}
	}
	if c.SIP.PublicIP != "" && net.ParseIP(c.SIP.PublicIP) == nil {
		bad("sip.public_ip", "%q is not an IP address", c.SIP.PublicIP)
	}
	if ip := net.ParseIP(host); err == nil && c.SIP.PublicIP == "" && (ip == nil || ip.IsUnspecified()) {
		bad("sip.public_ip", "required when sip.listen is %q: callers need an address to send media to", c.SIP.Listen)
	}
	if c.SIP.RTPTimeout < 0 {
		bad("sip.rtp_timeout", "must not be negative (0 disables it)")
	}
	if c.SIP.AckTimeout <= 0 {
		bad("sip.ack_timeout", "must be positive")
	}
	if c.SIP.AnswerDelay < 0 {
		bad("sip.answer_delay", "must not be negative")
	}
	if c.SIP.MaxCalls < 0 {
		bad("sip.max_calls", "must not be negative (0: no limit)")
	}
	if c.HTTP.PprofListen != "" && !isHostPort(c.HTTP.PprofListen) {
		bad("http.pprof_listen", "%q is not host:port", c.HTTP.PprofListen)
	}
	if !isHostPort(c.HTTP.Listen) {
		bad("http.listen", "%q is not host:port", c.HTTP.Listen)
	}
	c.validateTLS(bad)
	if c.HTTP.SessionTTL < time.Minute {
		bad("http.session_ttl", "must be at least 1m")
	}
	if c.IVR.Flow == "" {
		bad("ivr.flow", "is required")
	} else if err := fileExists(c.IVR.Flow); err != nil {
		bad("ivr.flow", "%v", err)
	}
	for _, k := range slices.Sorted(maps.Keys(c.IVR.Numbers)) {
		if err := fileExists(c.IVR.Numbers[k]); err != nil {
			bad("ivr.numbers."+k, "%v", err)
		}
	}
	if st, err := os.Stat(c.IVR.Prompts); err != nil || !st.IsDir() {
		bad("ivr.prompts", "%q is not a directory", c.IVR.Prompts)
	}
	if c.IVR.DefaultCountry == "" {
		bad("ivr.default_country", "is required (an ISO code such as US or GB)")
	}
	if c.IVR.Directory != "" {
		if err := fileExists(c.IVR.Directory); err != nil {
			bad("ivr.directory", "%v", err)
		}
	}
	if c.IVR.CRM.URL != "" {
		u, err := url.Parse(c.IVR.CRM.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("ivr.crm.url", "%q is not an http(s) URL", c.IVR.CRM.URL)
		} else if !strings.Contains(c.IVR.CRM.URL, "{number}") {
			bad("ivr.crm.url", "must contain {number}")
		}
	}
	if c.IVR.CRM.Timeout <= 0 {
		bad("ivr.crm.timeout", "must be positive")
	}
	if c.Redis.URL != "" && !isRedisURL(c.Redis.URL) {
		bad("redis.url", "%q is not a redis:// or rediss:// URL", redactURL(c.Redis.URL))
	}
	if c.Redis.Prefix == "" || strings.ContainsAny(c.Redis.Prefix, "{}: ") {
		bad("redis.prefix", "%q: letters, digits, - and _ (the hash tag is added)", c.Redis.Prefix)
	}
	c.validateQueue(bad)
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"agents.ring_timeout", c.Agents.RingTimeout}, {"agents.wrap_up_timeout", c.Agents.WrapUpTimeout},
		{"agents.reconnect_grace", c.Agents.ReconnectGrace}, {"agents.call_grace", c.Agents.CallGrace}} {
		if d.v <= 0 {
			bad(d.key, "must be positive")
		}
	}
	if c.WebRTC.UDPPort < 0 || c.WebRTC.UDPPort > 65535 {
		bad("webrtc.udp_port", "%d is not a port (0: a port per agent from webrtc.ports)", c.WebRTC.UDPPort)
	}
	if c.WebRTC.ListenIP != "" && net.ParseIP(c.WebRTC.ListenIP) == nil {
		bad("webrtc.listen_ip", "%q is not an IP address", c.WebRTC.ListenIP)
	}
	c.validateUsers(bad)
	switch c.Limits.NumberAction {
	case "busy", "announce":
	default:
		bad("limits.number_action", "%q is not one of busy, announce", c.Limits.NumberAction)
	}
	if c.Recordings.Dir == "" {
		bad("recordings.dir", "is required")
	}
	if c.Recordings.RetentionDays < 0 {
		bad("recordings.retention_days", "must not be negative (0 keeps recordings for ever)")
	}
	if c.Recordings.Buffer < 28 || c.Recordings.Buffer > 30000 {
		bad("recordings.buffer", "%d frames: must be within 28-30000 (560 ms to 10 min of audio)", c.Recordings.Buffer)
	}
	if c.Shutdown.Grace < 0 {
		bad("shutdown.grace", "must not be negative")
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "%q is not one of text, json", c.Log.Format)
	}
	return errs
}

// skillName is what a skill may be called (it becomes part of Redis keys).
var skillName = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func (c *Config) validateQueue(bad func(path, format string, args ...any)) {
	q := c.Queue
	for _, name := range slices.Sorted(maps.Keys(q.Skills)) {
		sk := q.Skills[name]
		if !skillName.MatchString(name) {
			bad("queue.skills."+name, "skill name %q: letters, digits, - and _ only", name)
		}
		switch sk.Routing {
		case "", "idle", "proficiency":
		default:
			bad("queue.skills."+name+".routing", "%q is not one of idle, proficiency", sk.Routing)
		}
		if sk.AnnounceEvery < 0 {
			bad("queue.skills."+name+".announce_every", "must not be negative")
		}
	}
	if q.ServiceLevel <= 0 {
		bad("queue.service_level", "must be positive")
	}
	if q.AnnounceEvery <= 0 {
		bad("queue.announce_every", "must be positive")
	}
	if q.Window < time.Minute {
		bad("queue.window", "must be at least 1m")
	}
	if q.DefaultHandleTime <= 0 {
		bad("queue.default_handle_time", "must be positive")
	}
}

func (c *Config) validateTLS(bad func(path, format string, args ...any)) {
	h := c.HTTP
	switch {
	case h.TLSCert == "" && h.TLSKey == "":
		return
	case h.TLSCert == "":
		bad("http.tls_cert", "is required with http.tls_key (both or neither)")
		return
	case h.TLSKey == "":
		bad("http.tls_key", "is required with http.tls_cert (both or neither)")
		return
	}
	certErr, keyErr := fileExists(h.TLSCert), fileExists(h.TLSKey)
	if certErr != nil {
		bad("http.tls_cert", "%v", certErr)
	}
	if keyErr != nil {
		bad("http.tls_key", "%v", keyErr)
	}
	if certErr == nil && keyErr == nil {
		if _, err := tls.LoadX509KeyPair(h.TLSCert, h.TLSKey); err != nil {
			bad("http.tls_cert", "cannot use %s with the key %s: %v", h.TLSCert, h.TLSKey, err)
		}
	}
}

// userName is what a user may be called: it becomes part of Redis keys and
// is an agent's id in the queue (the rule of accounts.ValidName).
var userName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$`)

func (c *Config) validateUsers(bad func(path, format string, args ...any)) {
	seen := map[string]bool{}
	for i, u := range c.Users {
		path := "users." + strconv.Itoa(i)
		switch {
		case !userName.MatchString(u.Name):
			bad(path+".name", "%q: 1 to 64 letters, digits, _ . @ - (not first)", u.Name)
		case seen[u.Name]:
			bad(path+".name", "user %q is listed twice", u.Name)
		}
		seen[u.Name] = true
		if strings.ContainsAny(u.DisplayName, "\r\n") || len(u.DisplayName) > 200 {
			bad(path+".display_name", "one line of at most 200 bytes")
		}
		switch u.Role {
		case "agent":
			if len(u.Skills) == 0 {
				bad(path+".skills", "an agent needs at least one skill")
			}
		case "supervisor", "admin":
			if len(u.Skills) > 0 {
				bad(path+".skills", "only agents have skills (this user is a %s)", u.Role)
			}
		default:
			bad(path+".role", "%q is not one of agent, supervisor, admin", u.Role)
		}
		for _, sk := range slices.Sorted(maps.Keys(u.Skills)) {
			if _, ok := c.Queue.Skills[sk]; !ok {
				bad(path+".skills."+sk, "unknown skill %q (not in queue.skills)", sk)
			}
			if lvl := u.Skills[sk]; lvl < 1 || lvl > 100 {
				bad(path+".skills."+sk, "proficiency %d is not in 1..100", lvl)
			}
		}
		// The hash itself is not repeated in errors.
		if u.PasswordHash == "" {
			bad(path+".password_hash", "is required (a bcrypt hash: `ivrd user hash` makes one)")
		} else if _, err := bcrypt.Cost([]byte(u.PasswordHash)); err != nil {
			bad(path+".password_hash", "is not a bcrypt hash ($2a$/$2b$/$2y$…; `ivrd user hash` makes one)")
		}
	}
}

// SkillNames lists the configured skills, sorted.
func (c *Config) SkillNames() []string { return slices.Sorted(maps.Keys(c.Queue.Skills)) }

func fileExists(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("cannot read %s: %w", path, errors.Unwrap(err))
	}
	if st.IsDir() {
		return fmt.Errorf("%s is a directory", path)
	}
	return nil
}

// redactURL hides a password in a URL.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// Summary is what to log at start: no secrets.
func (c *Config) Summary() []any {
	crm := "off"
	if c.IVR.CRM.URL != "" {
		crm = c.IVR.CRM.URL
	}
	return []any{
		"config", c.file, "sip", c.SIP.Listen, "transports", strings.Join(c.SIP.Transports, ","),
		"rtp_ports", c.Media.RTPPorts.String(), "http", c.HTTP.Listen, "tls", c.HTTP.TLS(), "users", len(c.Users),
		"flow", c.IVR.Flow, "prompts", c.IVR.Prompts, "crm", crm, "recordings", c.Recordings.Dir,
	}
}
