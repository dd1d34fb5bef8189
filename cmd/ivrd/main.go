// Command ivrd is the IVR and call-queue server: it answers SIP calls, runs
// the IVR flow and (in later releases) queues callers for agents.
//
//	ivrd -config configs/ivrd.yaml     run
//	ivrd -check-config FILE            validate a configuration and exit
//	ivrd user add|passwd|list|remove|hash …   manage users (ivrd user -h)
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"ivrd/configs"
	"ivrd/queue"
	"ivrd/sip"
	"ivrd/web"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "user" {
		return userCmd(args[1:], os.Stdin, stdout, stderr)
	}
	fs := flag.NewFlagSet("ivrd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "configs/ivrd.yaml", "configuration file")
	checkPath := fs.String("check-config", "", "validate this configuration file (flows, prompts, directory included) and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *checkPath != "" {
		cfg, err := configs.Load(*checkPath)
		if err == nil {
			_, err = loadApp(cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry(), nil)
		}
		if err != nil {
			fmt.Fprintf(stderr, "%s: invalid configuration:\n%v\n", *checkPath, err)
			return 1
		}
		fmt.Fprintf(stdout, "%s: configuration OK\n", *checkPath)
		return 0
	}

	cfg, err := configs.Load(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "ivrd: %v\n", err)
		return 1
	}
	log := newLogger(cfg, stderr)
	slog.SetDefault(log)
	log.Info("garbage collector target", "gogc", tuneGC(os.Getenv))
	if err := serve(cfg, log); err != nil {
		log.Error("ivrd stopped", "error", err)
		return 1
	}
	return 0
}

func newLogger(cfg *configs.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Log.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// serve runs ivrd until SIGTERM or SIGINT, then shuts down gracefully.
func serve(cfg *configs.Config, log *slog.Logger) error {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	registerPacing(reg)
	q, backend, err := openQueue(cfg, log, reg)
	if err != nil {
		return err
	}
	defer backend.Close()
	a, err := loadApp(cfg, log, reg, q)
	if err != nil {
		return err
	}
	if a.recordings, err = openRecordings(cfg, log); err != nil {
		return err
	}
	defer closeRecordings(a.recordings, log)
	hub, engine, err := openAgents(cfg, q, a.recordings, log, reg)
	if err != nil {
		return err
	}
	defer func() {
		hub.Close()
		engine.Close()
	}()
	log.Info("ivrd starting", cfg.Summary()...)
	qctx, stopQueue := context.WithCancel(context.Background())
	queueDone := make(chan struct{})
	go func() {
		defer close(queueDone)
		q.Run(qctx)
	}()
	defer func() {
		stopQueue()
		<-queueDone
	}()

	srv, err := sip.NewServer(sip.Config{
		Listen:      cfg.SIP.Listen,
		Transports:  cfg.SIP.Transports,
		PublicIP:    net.ParseIP(cfg.SIP.PublicIP),
		UserAgent:   cfg.SIP.UserAgent,
		RTPTimeout:  cfg.SIP.RTPTimeout,
		AckTimeout:  cfg.SIP.AckTimeout,
		AnswerDelay: cfg.SIP.AnswerDelay,
		MaxCalls:    cfg.SIP.MaxCalls,
		Ports:       a.ports,
		Handler:     a,
		Admit:       admit(queue.NewLimiter(q.Store()), cfg.Limits, log),
		Metrics:     sip.NewMetrics(reg),
		Logger:      log,
	})
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}

	users, err := newAccounts(cfg, q.Store())
	if err != nil {
		shutdownSIP(srv, 0, log)
		return err
	}
	httpDone := make(chan struct{}) // ends the wallboard's event streams at shutdown
	api, err := web.New(web.Config{Queue: q, Registry: reg, Logger: log, Accounts: users, TLS: cfg.HTTP.TLS(), Agents: hub,
		Recordings: a.recordings, Done: httpDone})
	if err != nil {
		shutdownSIP(srv, 0, log)
		return err
	}
	httpSrv, httpAddr, err := startHTTP(cfg.HTTP, api, log)
	if err != nil {
		shutdownSIP(srv, 0, log)
		return err
	}
	if cfg.HTTP.PprofListen != "" {
		pprofSrv, addr, err := startPprof(cfg.HTTP.PprofListen, log)
		if err != nil {
			shutdownSIP(srv, 0, log)
			return err
		}
		defer pprofSrv.Close()
		log.Warn("profiler served: keep it off public addresses", "pprof", "http://"+addr+"/debug/pprof/")
	}
	warnAccounts(cfg, log)
	log.Info("ivrd ready", "sip", srv.Addr("udp"), "http", httpAddr, "tls", cfg.HTTP.TLS(), "call", "sip:support@"+srv.Addr("udp"))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go releaseMemoryWhenIdle(ctx, srv.ActiveCalls, idleCheck, idleRelease, log)
	<-ctx.Done()
	stop()
	log.Info("signal received: shutting down", "grace", cfg.Shutdown.Grace)

	shutdownSIP(srv, cfg.Shutdown.Grace, log)
	close(httpDone)
	hctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := httpSrv.Shutdown(hctx); err != nil {
		log.Warn("http shutdown", "error", err)
	}
	log.Info("ivrd stopped")
	return nil
}

func shutdownSIP(srv *sip.Server, grace time.Duration, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		log.Warn("sip shutdown", "error", err)
	}
}

// startPprof serves net/http/pprof on its own listener (http.pprof_listen).
func startPprof(listen string, log *slog.Logger) (*http.Server, string, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return nil, "", fmt.Errorf("pprof: listen %s: %w", listen, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("pprof server", "error", err)
		}
	}()
	return srv, ln.Addr().String(), nil
}

// startHTTP serves the API, /healthz and /metrics; over TLS when a
// certificate is configured.
func startHTTP(cfg configs.HTTP, h http.Handler, log *slog.Logger) (*http.Server, string, error) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	if cfg.TLS() {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, "", fmt.Errorf("http: certificate %s, key %s: %w", cfg.TLSCert, cfg.TLSKey, err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, "", fmt.Errorf("http: listen %s: %w", cfg.Listen, err)
	}
	go func() {
		var err error
		if srv.TLSConfig != nil {
			err = srv.ServeTLS(ln, "", "")
		} else {
			err = srv.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("http server", "error", err)
		}
	}()
	return srv, ln.Addr().String(), nil
}
