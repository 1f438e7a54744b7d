package e2e

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"channels/internal/cli"
	"channels/internal/config"
	"channels/internal/password"
	"channels/internal/store"
)

// app is one running Channels process, in-process.
type app struct {
	t     testing.TB
	addr  string
	store *store.Store
	srv   *http.Server
	// shutdown closes what outlives requests (the hub's WebSockets).
	shutdown func(context.Context) error
	done     chan struct{}
}

// startApp serves Channels, assembled as the serve command does
// (cli.Assemble), on addr ("127.0.0.1:0" for any port) over the SQLite
// database at dbPath.
func startApp(t testing.TB, addr, dbPath string) *app {
	t.Helper()
	return startAppWith(t, addr, dbPath, nil)
}

// startAppWith is startApp over the database at dbURL (a SQLite file or a
// PostgreSQL URL), with the configuration changed by adjust when not nil.
func startAppWith(t testing.TB, addr, dbURL string, adjust func(*config.Config)) *app {
	t.Helper()
	ctx := t.Context()
	var ln net.Listener
	var err error
	for range 50 { // the address of a stopped app may take a moment to free
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	cfg := config.Default()
	cfg.Listen = ln.Addr().String()
	cfg.BaseURL = "http://" + ln.Addr().String()
	cfg.DatabaseURL = dbURL
	if adjust != nil {
		adjust(&cfg)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	st, err := store.Open(ctx, dbURL)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	handler, shutdown, err := cli.Assemble(ctx, cfg, st, log)
	if err != nil {
		t.Fatalf("assemble: %v", err)
	}
	a := &app{t: t, addr: ln.Addr().String(), store: st, shutdown: shutdown, done: make(chan struct{}),
		srv: &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}}
	go func() {
		defer close(a.done)
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	}()
	t.Cleanup(a.stop)
	return a
}

// stop shuts the app down: the hub's sockets, the HTTP server, the store.
func (a *app) stop() {
	select {
	case <-a.done:
		return
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.srv.Shutdown(ctx); err != nil {
		a.t.Errorf("http shutdown: %v", err)
	}
	if err := a.shutdown(ctx); err != nil {
		a.t.Errorf("app shutdown: %v", err)
	}
	<-a.done
	if err := a.store.Close(); err != nil {
		a.t.Errorf("close store: %v", err)
	}
}

// url is the absolute URL of path on this app.
func (a *app) url(path string) string { return "http://" + a.addr + path }

// mustUser adds a user who signs in with pw (hashed with cheap argon2id
// parameters: tests sign in often, and the parameters are not under test).
func (a *app) mustUser(name, pw string) store.User {
	a.t.Helper()
	hash, err := password.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}.Hash(pw)
	if err != nil {
		a.t.Fatal(err)
	}
	u, err := a.store.CreateUser(a.t.Context(), name, hash, false)
	if err != nil {
		a.t.Fatal(err)
	}
	return u
}
