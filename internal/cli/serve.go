package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"channels/internal/config"
	"channels/internal/connlimit"
	"channels/internal/store"
)

// shutdownGrace bounds the graceful shutdown.
const shutdownGrace = 10 * time.Second

// httpLimits bound what one connection may hold: how long its request may
// take to arrive, how long the response may take to leave, how long it may
// idle, and (Conns) how many connections may be open per address and in
// all. Together they bound the descriptors a client can keep busy: at most
// Conns.MaxPerAddr connections from one address, each closed within
// ReadTimeout unless its requests arrive whole in time.
type httpLimits struct {
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, body included, from its
	// first byte; a client trickling a body is cut off after it. Requests
	// here are small (forms of at most 16 KiB; /verto's upgrade has no
	// body), and net/http clears the deadlines of a hijacked connection,
	// so WebSockets outlive it.
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a response, so a client that never reads
	// a large one (a script file) does not hold its connection either.
	WriteTimeout time.Duration
	IdleTimeout  time.Duration
	Conns        connlimit.Options
}

// defaultHTTPLimits are serve's limits; trusted proxies are exempt from the
// per-address cap, which would otherwise count the proxy.
func defaultHTTPLimits(cfg config.Config, logger *slog.Logger) httpLimits {
	return httpLimits{
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		Conns: connlimit.Options{
			MaxPerAddr: connlimit.DefaultMaxPerAddr,
			MaxTotal:   connlimit.DefaultMaxTotal(),
			Exempt:     cfg.TrustedProxies,
			Logger:     logger,
		},
	}
}

// newHTTPServer is the HTTP server of serve, its listener capped by lim.
func newHTTPServer(ctx context.Context, ln net.Listener, handler http.Handler, lim httpLimits, logger *slog.Logger) (*http.Server, net.Listener) {
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		ReadTimeout:       lim.ReadTimeout,
		WriteTimeout:      lim.WriteTimeout,
		IdleTimeout:       lim.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	return srv, connlimit.New(ln, lim.Conns)
}

// warmConns is how many database connections serve opens before it takes
// requests: one per concurrent request of a typical burst.
const warmConns = 16

// serve runs the web service until ctx ends.
func serve(ctx context.Context, c call) (err error) {
	cfg, env := c.cfg, c.env
	if err := wantArgs(c.args, 0, ""); err != nil {
		return err
	}
	logger := newLogger(cfg, env.Stderr)
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := seed(ctx, st, logger, commandLine(env.Program, cfg, "user add", "--admin NAME")); err != nil {
		return err
	}
	if cfg.VertoURL == "" && cfg.ClusterURL == "" {
		// (In a cluster, other processes may have live connections.)
		// The embedded hub signals, and it has just started: nobody is
		// connected, whatever a process that died without a graceful
		// shutdown left behind (it would count against
		// -max-clients-per-channel).
		n, err := st.ClearAllConnected(ctx)
		if err != nil {
			return err
		}
		if n > 0 {
			logger.Info("cleared connected times left by an earlier run", "clients", n)
		}
	}
	st.SetPoolSize(cfg.DatabasePool)
	st.Warm(ctx, warmConns)
	m := newMetrics(cfg) // nil without -metrics-listen
	handler, shutdownApp, err := assemble(ctx, cfg, st, logger, m)
	if err != nil {
		return err
	}
	// The app runs from here on (hub, sweeper, cluster connection): a
	// return on an error path shuts it down too, or it would outlive
	// serve; the graceful path below does so after the HTTP server.
	appRunning := true
	defer func() {
		if appRunning {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
			defer cancel()
			if aerr := shutdownApp(sctx); aerr != nil {
				err = errors.Join(err, fmt.Errorf("shut down: %w", aerr))
			}
		}
	}()

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	lim := defaultHTTPLimits(cfg, logger)
	srv, ln := newHTTPServer(ctx, ln, handler, lim, logger)
	stopMetrics, err := serveMetrics(ctx, cfg, m, logger) // its own listener, never the public one
	if err != nil {
		ln.Close()
		return err
	}
	defer stopMetrics()

	// Expired sessions are deleted by the sweeper Assemble starts.

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	logger.Info("listening", "addr", ln.Addr().String(), "database", st.Dialect(),
		"max_conns_per_addr", lim.Conns.MaxPerAddr, "max_conns", lim.Conns.MaxTotal)
	fmt.Fprintf(env.Stdout, "Channels is running. Open %s/ in your browser.\n", strings.TrimSuffix(cfg.BaseURL, "/"))

	select {
	case err := <-served:
		srv.Close() // connections its Serve left open
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	err = srv.Shutdown(sctx)
	appRunning = false
	if aerr := shutdownApp(sctx); aerr != nil {
		err = errors.Join(err, aerr)
	}
	if err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	logger.Info("stopped")
	return nil
}

// openStore opens (and migrates) the configured database, creating the data
// directory for the default SQLite file.
func openStore(ctx context.Context, cfg config.Config) (*store.Store, error) {
	if cfg.DatabaseURL == "" {
		if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
			return nil, fmt.Errorf("create data directory: %w", err)
		}
	}
	st, err := store.Open(ctx, cfg.Database())
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	return st, nil
}

// withStore is a command that takes no arguments and runs run over the
// opened (and so migrated) database.
func withStore(run func(context.Context, call, *store.Store) error) func(context.Context, call) error {
	return func(ctx context.Context, c call) error {
		if err := wantArgs(c.args, 0, ""); err != nil {
			return err
		}
		st, err := openStore(ctx, c.cfg)
		if err != nil {
			return err
		}
		defer st.Close()
		return run(ctx, c, st)
	}
}

// migrate reports on the database withStore migrated.
func migrate(_ context.Context, c call, st *store.Store) error {
	fmt.Fprintf(c.env.Stdout, "The %s database is up to date.\n", st.Dialect())
	return nil
}
