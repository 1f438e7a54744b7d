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

	"channels/internal/config"
	"channels/internal/directory"
	"channels/internal/fsapi"
	"channels/internal/hub"
	"channels/internal/store"
	"channels/internal/web"
	"channels/internal/webclient"
)

// app is one running Channels process, in-process.
type app struct {
	t     *testing.T
	addr  string
	store *store.Store
	srv   *http.Server
	hub   *hub.Hub
	done  chan struct{}
}

// startApp serves Channels on addr ("127.0.0.1:0" for any port) over the
// SQLite database at dbPath.
func startApp(t *testing.T, addr, dbPath string) *app {
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
	cfg.DatabaseURL = dbPath
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

	st, err := store.Open(ctx, dbPath)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	assets, err := webclient.New()
	if err != nil {
		t.Fatal(err)
	}
	reg := fsapi.NewRegistry(log)
	if err := directory.Register(reg, directory.Options{Store: st, Domain: cfg.VertoDomain(), Logger: log}); err != nil {
		t.Fatal(err)
	}
	h := hub.New(hub.Options{Gateway: reg, Domain: cfg.VertoDomain(), Logger: log})
	site, err := web.New(web.Options{Config: cfg, Store: st, Assets: assets, Static: assets.Handler(), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/verto", h)
	mux.Handle("/", site)
	a := &app{t: t, addr: ln.Addr().String(), store: st, hub: h, done: make(chan struct{}),
		srv: &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}}
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
	if err := a.hub.Shutdown(ctx); err != nil {
		a.t.Errorf("hub shutdown: %v", err)
	}
	if err := a.srv.Shutdown(ctx); err != nil {
		a.t.Errorf("http shutdown: %v", err)
	}
	<-a.done
	if err := a.store.Close(); err != nil {
		a.t.Errorf("close store: %v", err)
	}
}

// url is the absolute URL of path on this app.
func (a *app) url(path string) string { return "http://" + a.addr + path }
