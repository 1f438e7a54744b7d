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
	"channels/internal/store"
)

// shutdownGrace bounds the graceful shutdown.
const shutdownGrace = 10 * time.Second

// warmConns is how many database connections serve opens before it takes
// requests: one per concurrent request of a typical burst.
const warmConns = 16

// serve runs the web service until ctx ends.
func serve(ctx context.Context, args []string, env Env) error {
	cfg, pos, err := loadConfig("channels serve", args, env, nil)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("serve takes no arguments, got %q", pos)
	}
	logger := newLogger(cfg, env.Stderr)
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := seed(ctx, st, logger); err != nil {
		return err
	}
	if cfg.VertoURL == "" {
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
	st.Warm(ctx, warmConns)
	handler, shutdownApp, err := Assemble(ctx, cfg, st, logger)
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}

	cleanCtx, stopClean := context.WithCancel(ctx)
	defer stopClean()
	go st.CleanSessions(cleanCtx, time.Hour, func(err error) {
		logger.Warn("delete expired sessions", "err", err)
	})

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	logger.Info("listening", "addr", ln.Addr().String(), "database", st.Dialect())
	fmt.Fprintf(env.Stdout, "Channels is running. Open %s/ in your browser.\n", strings.TrimSuffix(cfg.BaseURL, "/"))

	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	err = srv.Shutdown(sctx)
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

// migrate applies pending migrations (store.Open does) and reports.
func migrate(ctx context.Context, args []string, env Env) error {
	cfg, pos, err := loadConfig("channels migrate", args, env, nil)
	if err != nil {
		return err
	}
	if err := wantArgs("migrate", pos, 0, "[flags]"); err != nil {
		return err
	}
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	fmt.Fprintf(env.Stdout, "The %s database is up to date.\n", st.Dialect())
	return nil
}
