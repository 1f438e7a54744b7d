package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
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
	reqs := new(requests)
	srv, ln := newHTTPServer(ctx, ln, reqs.track(handler), lim, logger)
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
	appRunning = false
	return stopServing(srv, reqs, shutdownApp, shutdownGrace, logger)
}

// stopServing is serve's graceful stop. The app (the hub first: every
// WebSocket is closed with 1001, going away) and the HTTP server (no new
// connections; the requests under way may finish) stop side by side, each
// within a grace of its own, so a slow request cannot spend the time the
// hub needs, nor the hub the requests'. Requests still under way when the
// grace ends are cut and logged (WARN): that is no failure of the stop,
// which returns nil. Only the app's failure to stop within its grace
// (WebSockets cut without a close frame, reports not posted) or another
// error is returned.
func stopServing(srv *http.Server, reqs *requests, shutdownApp func(context.Context) error, grace time.Duration, logger *slog.Logger) error {
	logger.Info("shutting down", "grace", grace)
	start := time.Now()
	appDone := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), grace)
		defer cancel()
		appDone <- shutdownApp(ctx)
	}()
	hctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	herr := srv.Shutdown(hctx)
	aerr := <-appDone
	var err error
	switch {
	case herr == nil:
	case errors.Is(herr, context.DeadlineExceeded):
		n, oldest := reqs.underWay(10)
		logger.Warn("shutdown grace ended: cutting the requests still under way", "grace", grace,
			"requests", n, "oldest", strings.Join(oldest, "; "))
		srv.Close()
	default:
		srv.Close()
		err = fmt.Errorf("stop the HTTP server: %w", herr)
	}
	if aerr != nil {
		err = errors.Join(err, aerr)
	}
	if err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	logger.Info("stopped", "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// requests are the HTTP requests under way, but for WebSockets (the
// hub's), so that a stop can name those it cuts. Every request passes
// through it, /fsapi's thousands a second among them: it is a few
// mutex-guarded lists (requests spread round-robin, so concurrent ones
// rarely share a lock) of pooled entries, which cost no allocation.
// The zero value is ready to use.
type requests struct {
	next   atomic.Uint32
	shards [trackShards]trackShard
}

// trackShards spreads the requests under way over this many lists.
const trackShards = 16

type trackShard struct {
	mu   sync.Mutex
	head *request // a doubly linked list
	_    [48]byte // 64 bytes a shard: neighbours share a cache line at most
}

type request struct {
	method, path, addr string
	start              time.Time
	shard              *trackShard
	prev, next         *request
}

var trackedRequests = sync.Pool{New: func() any { return new(request) }}

// track counts h's requests in rs while they run.
func (rs *requests) track(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if up := r.Header["Upgrade"]; len(up) > 0 && up[0] != "" {
			h.ServeHTTP(w, r)
			return
		}
		q := trackedRequests.Get().(*request)
		q.method, q.path, q.addr, q.start = r.Method, r.URL.Path, r.RemoteAddr, time.Now()
		rs.add(q)
		defer rs.remove(q)
		h.ServeHTTP(w, r)
	})
}

func (rs *requests) add(q *request) {
	sh := &rs.shards[rs.next.Add(1)%trackShards]
	sh.mu.Lock()
	q.shard, q.prev, q.next = sh, nil, sh.head
	if sh.head != nil {
		sh.head.prev = q
	}
	sh.head = q
	sh.mu.Unlock()
}

// remove takes q off its list and returns it to the pool.
func (rs *requests) remove(q *request) {
	sh := q.shard
	sh.mu.Lock()
	if q.prev != nil {
		q.prev.next = q.next
	} else {
		sh.head = q.next
	}
	if q.next != nil {
		q.next.prev = q.prev
	}
	sh.mu.Unlock()
	*q = request{}
	trackedRequests.Put(q)
}

// underWay counts the requests under way and names the oldest, at most
// max of them.
func (rs *requests) underWay(max int) (n int, oldest []string) {
	type under struct {
		method, path, addr string
		start              time.Time
	}
	var all []under
	for i := range rs.shards {
		sh := &rs.shards[i]
		sh.mu.Lock()
		for q := sh.head; q != nil; q = q.next {
			all = append(all, under{q.method, q.path, q.addr, q.start})
		}
		sh.mu.Unlock()
	}
	slices.SortFunc(all, func(a, b under) int { return a.start.Compare(b.start) })
	for _, q := range all[:min(len(all), max)] {
		oldest = append(oldest, fmt.Sprintf("%s %s from %s for %v", q.method, q.path, q.addr, time.Since(q.start).Round(time.Millisecond)))
	}
	return len(all), oldest
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
