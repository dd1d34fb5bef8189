package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// server is the ivrd under test: a child process with a configuration
// written for the bench, its own key prefix on the shared Redis and its
// own recordings directory.
type server struct {
	cmd      *exec.Cmd
	pid      int
	dir      string
	sipAddr  string
	httpAddr string
	pprof    string
	redisURL string
	prefix   string
	agents   int // bench agents configured: bench0001…
	exited   chan struct{}
	waitErr  error
}

// serverConfig is what the bench needs from ivrd.
type serverConfig struct {
	Binary   string // the ivrd binary
	Repo     string // the repository root: configs/ holds the demo flow and prompts
	RedisURL string
	Agents   int // agent accounts bench0001…benchNNNN, passwords = names
	Dir      string
}

// agentName is the bench's i-th agent (from 1).
func agentName(i int) string { return fmt.Sprintf("bench%04d", i) }

// startServer writes the bench configuration and starts ivrd on it.
func startServer(ctx context.Context, sc serverConfig) (*server, error) {
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	udp, err := freeUDPPort()
	if err != nil {
		return nil, err
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	s := &server{
		dir:      sc.Dir,
		sipAddr:  fmt.Sprintf("127.0.0.1:%d", ports[0]),
		httpAddr: fmt.Sprintf("127.0.0.1:%d", ports[1]),
		pprof:    fmt.Sprintf("127.0.0.1:%d", ports[2]),
		redisURL: sc.RedisURL,
		prefix:   "ivrdbench" + hex.EncodeToString(rnd[:]),
		agents:   sc.Agents,
		exited:   make(chan struct{}),
	}
	cfgPath := filepath.Join(sc.Dir, "ivrd.yaml")
	if err := s.writeConfig(cfgPath, sc.Repo, udp); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(sc.Dir, "ivrd.log"))
	if err != nil {
		return nil, err
	}
	s.cmd = exec.Command(sc.Binary, "-config", cfgPath)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", sc.Binary, err)
	}
	s.pid = s.cmd.Process.Pid
	go func() {
		s.waitErr = s.cmd.Wait()
		logf.Close()
		close(s.exited)
	}()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, err := http.Get("http://" + s.httpAddr + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("ivrd exited at start (%v); its log: %s", s.waitErr, tail(filepath.Join(sc.Dir, "ivrd.log"), 20))
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("ivrd not healthy within 30 s; its log: %s", tail(filepath.Join(sc.Dir, "ivrd.log"), 20))
		}
	}
}

// writeConfig writes a configuration like the demo's, sized for load: the
// demo flow and prompts, limits out of the way, room for thousands of
// calls, and the bench's agents (bcrypt cost 4, so 2,000 logins do not
// cost minutes of CPU; production hashes use cost 10).
func (s *server) writeConfig(path, repo string, webrtcPort int) error {
	var users strings.Builder
	for i := 1; i <= s.agents; i++ {
		name := agentName(i)
		hash, err := bcrypt.GenerateFromPassword([]byte(name), bcrypt.MinCost)
		if err != nil {
			return err
		}
		fmt.Fprintf(&users, "  - {name: %s, role: agent, skills: {billing: 5, support: 5, general: 1}, password_hash: '%s'}\n", name, hash)
	}
	if s.agents == 0 {
		users.WriteString("  []\n")
	}
	cfgDir := filepath.Join(repo, "configs")
	cfg := fmt.Sprintf(`# written by loadbench
sip:
  listen: %s
  transports: [udp]
  rtp_timeout: 60s
  max_calls: 6000
media:
  rtp_ports: 10000-19999    # below the ports the other tests take (20000-32000) and the ephemeral range
ivr:
  flow: %s
  prompts: %s
  directory: %s
http:
  listen: %s
  pprof_listen: %s
redis:
  url: %s
  prefix: %s
queue:
  skills:
    billing: {}
    support: {}
    general: {routing: idle}
agents:
  ring_timeout: 15s
  wrap_up_timeout: 60s
  reconnect_grace: 5s     # agents the bench logged out leave within the quiet wait
  call_grace: 10s
webrtc:
  udp_port: %d
limits:
  invites_per_source: 100000/s
  calls_per_number: 100000/m
  logins_per_user: 1000/m
  logins_per_address: 100000/m
recordings:
  dir: %s
shutdown:
  grace: 5s
log:
  level: info
  format: text
users:
%s`, s.sipAddr, filepath.Join(cfgDir, "flows", "main.yaml"), filepath.Join(cfgDir, "prompts"),
		filepath.Join(cfgDir, "directory.csv"), s.httpAddr, s.pprof, s.redisURL, s.prefix, webrtcPort,
		filepath.Join(s.dir, "recordings"), users.String())
	return os.WriteFile(path, []byte(cfg), 0o600)
}

func (s *server) logPath() string { return filepath.Join(s.dir, "ivrd.log") }

// stop ends ivrd with SIGTERM (SIGKILL after 15 s).
func (s *server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-s.pid, syscall.SIGKILL)
		<-s.exited
	}
}

// alive reports an error when ivrd has exited.
func (s *server) alive() error {
	select {
	case <-s.exited:
		return fmt.Errorf("ivrd exited (%v); its log: %s", s.waitErr, tail(filepath.Join(s.dir, "ivrd.log"), 30))
	default:
		return nil
	}
}

// procSample is what /proc says about a process at one moment.
type procSample struct {
	At      time.Time
	CPU     time.Duration // user + system since start
	RSS     int64         // bytes
	PeakRSS int64         // VmHWM: the high-water mark since start or the last resetPeak
	Threads int
	FDs     int
	Sockets int // of FDs, sockets
	UDP     int // of the sockets, UDP: SIP, RTP and WebRTC, one or two per call
}

// clockTick is USER_HZ, the unit of /proc/<pid>/stat's times: 100 on
// every Linux this runs on.
const clockTick = 100

// readProc samples a process.
func readProc(pid int) (procSample, error) {
	ps := procSample{At: time.Now()}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ps, err
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: state is field 3, utime 14, stime 15.
	rest := string(stat)
	if i := strings.LastIndexByte(rest, ')'); i >= 0 {
		rest = rest[i+2:]
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return ps, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	ps.CPU = time.Duration(ut+st) * time.Second / clockTick

	status, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ps, err
	}
	defer status.Close()
	sc := bufio.NewScanner(status)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fs := strings.Fields(v)
		if len(fs) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(fs[0], 10, 64)
		switch k {
		case "VmRSS":
			ps.RSS = n * 1024
		case "VmHWM":
			ps.PeakRSS = n * 1024
		case "Threads":
			ps.Threads = int(n)
		}
	}
	udp := udpInodes(pid)
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err == nil {
		ps.FDs = len(fds)
		for _, fd := range fds {
			l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
			if err != nil || !strings.HasPrefix(l, "socket:[") {
				continue
			}
			ps.Sockets++
			if udp[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] {
				ps.UDP++
			}
		}
	}
	return ps, nil
}

// udpInodes are the inodes of the UDP sockets in the process's network
// namespace (/proc/<pid>/net/udp and udp6, tenth field).
func udpInodes(pid int) map[string]bool {
	inodes := map[string]bool{}
	for _, name := range []string{"udp", "udp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, name))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			if f := strings.Fields(line); len(f) >= 10 {
				inodes[f[9]] = true
			}
		}
	}
	return inodes
}

// resetPeak restarts the process's RSS high-water mark (VmHWM) from its
// current RSS, so each step's peak is its own.
func resetPeak(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// pacing reads ivrd's pacing counters: frames paced, late, skipped.
func (s *server) pacing() [3]float64 {
	m, err := s.metrics()
	if err != nil {
		return [3]float64{}
	}
	return [3]float64{m["ivrd_rtp_paced_frames_total"], m["ivrd_rtp_paced_late_total"], m["ivrd_rtp_paced_skipped_total"]}
}

// profile saves a CPU profile of d seconds from ivrd's pprof listener.
func (s *server) profile(ctx context.Context, d time.Duration, path string) error {
	return fetchToFile(ctx, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", s.pprof, int(d.Seconds())), path)
}

// saveHeapProfile saves ivrd's heap profile (what is live, by where it
// was allocated) from its pprof listener.
func (s *server) saveHeapProfile(ctx context.Context, path string) error {
	return fetchToFile(ctx, "http://"+s.pprof+"/debug/pprof/heap", path)
}

// fetchToFile saves what url answers to path.
func fetchToFile(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		port := l.Addr().(*net.TCPAddr).Port
		// SIP listens on UDP too: the port must be free for both.
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		u.Close()
		ports = append(ports, port)
	}
	if len(ports) < n {
		return nil, errors.New("no free ports")
	}
	return ports, nil
}

func freeUDPPort() (int, error) {
	u, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer u.Close()
	return u.LocalAddr().(*net.UDPAddr).Port, nil
}

// tail is the last n lines of a file, for error messages.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "\n" + strings.Join(lines, "\n")
}
