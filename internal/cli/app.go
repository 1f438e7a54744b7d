package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"channels/internal/config"
	"channels/internal/directory"
	"channels/internal/forwarded"
	"channels/internal/fsapi"
	"channels/internal/hub"
	"channels/internal/metrics"
	"channels/internal/store"
	"channels/internal/vertoconf"
	"channels/internal/web"
	"channels/internal/webclient"
)

// Assemble wires the whole application over an open store: the web app
// with the browser client's files, the /fsapi gateway with its handlers in
// order, and the embedded Verto hub at /verto, which authenticates through
// the same handlers in-process. The returned function shuts down what
// outlives HTTP requests (the hub's WebSockets); call it after
// http.Server.Shutdown.
func Assemble(ctx context.Context, cfg config.Config, st *store.Store, logger *slog.Logger) (http.Handler, func(context.Context) error, error) {
	return assemble(ctx, cfg, st, logger, nil)
}

// assemble is Assemble with the metrics m records into (nil: none): every
// part gets its hooks here, and the whole handler is measured.
func assemble(ctx context.Context, cfg config.Config, st *store.Store, logger *slog.Logger, m *metrics.Metrics) (http.Handler, func(context.Context) error, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if err := m.WatchDB(string(st.Dialect()), st.PoolStats); err != nil {
		return nil, nil, err
	}
	assets, err := webclient.New()
	if err != nil {
		return nil, nil, fmt.Errorf("load browser client: %w", err)
	}
	// The hub is built below; only a request can call Kick or Unkick, and
	// requests come once assemble has returned.
	var verto *hub.Hub
	var kick, unkick func(context.Context, string)
	if cfg.VertoURL == "" {
		// The embedded hub closes a removed member's sockets at once;
		// FreeSWITCH's stay until they close (docs/FREESWITCH.md). An
		// unremove lifts the hub's own refusal that the kick began;
		// FreeSWITCH has none (only the directory's).
		kick = func(_ context.Context, clientID string) { verto.Remove(clientID) }
		unkick = func(_ context.Context, clientID string) { verto.Unremove(clientID) }
	}
	app, err := web.New(web.Options{
		Config: cfg,
		Store:  st,
		Assets: assets,
		Static: assets.Handler(),
		Logger: logger.With("component", "web"),

		MaxStoredClients: cfg.MaxStoredClients,
		MaxCallSize:      cfg.MaxCallSize,
		Metrics:          m.Web(),
		Kick:             kick,
		Unkick:           unkick,
	})
	if err != nil {
		return nil, nil, err
	}

	// The /fsapi handlers, in matching order: the first whose required
	// fields are all present answers.
	reg := fsapi.NewRegistry(logger.With("component", "fsapi"))
	// The embedded hub's reports, several to a transaction (RespondBatch).
	reg.SetBatcher(st.Batch)
	// The client limit is kept where the connections are: the embedded hub
	// counts live connections exactly; FreeSWITCH has only the directory's
	// count of reported logins.
	dirLimit, hubLimit := cfg.MaxClientsPerChannel, 0
	if cfg.VertoURL == "" {
		dirLimit, hubLimit = 0, cfg.MaxClientsPerChannel
	}
	if err := directory.Register(reg, directory.Options{
		Store:                st,
		Domain:               cfg.VertoDomain(),
		MaxClientsPerChannel: dirLimit,
		CacheTTL:             directoryCacheTTL(cfg),
		Logger:               logger.With("component", "directory"),
		Metrics:              m.Moderation(),
	}); err != nil {
		return nil, nil, fmt.Errorf("register directory handlers: %w", err)
	}
	if err := vertoconf.Register(reg, vertoconf.FromConfig(cfg)); err != nil {
		return nil, nil, fmt.Errorf("register verto.conf handler: %w", err)
	}
	gateway := fsapi.NewHandler(reg, fsapi.Options{
		User:     cfg.FSAPIUser,
		Password: cfg.FSAPIPassword,
		Networks: cfg.FSAPINetworks,
		Hostname: cfg.FreeSWITCHHostname,
		Logger:   logger.With("component", "fsapi"),
		Metrics:  m.FSAPI(),
	})

	// With -cluster-url the hub is one of several joined over NATS
	// (cluster.go); node's Stats are the cluster's counters.
	node, fabric, closeCluster, err := startCluster(cfg, logger)
	if err != nil {
		return nil, nil, err
	}
	if node != nil {
		if err := m.WatchCluster(func() metrics.ClusterStats { return clusterStats(node) }); err != nil {
			return nil, nil, errors.Join(err, closeCluster(ctx))
		}
	}
	verto = hub.New(hub.Options{
		Gateway:        reg,
		Domain:         cfg.VertoDomain(),
		Hostname:       cfg.FreeSWITCHHostname,
		AllowedOrigins: allowedOrigins(cfg),
		Logger:         logger.With("component", "hub"),

		MaxClientsPerChannel: hubLimit,
		AddressBytes:         hub.Budget{Rate: float64(cfg.HubBytesPerAddress) / 4, Burst: cfg.HubBytesPerAddress}, // 4 KiB units; 4 s
		// Half of the store's pool: -database-pool on PostgreSQL (serve
		// sets it before assembling), SQLite's own 8 connections there.
		ReportWorkers: hub.ReportWorkersFor(st.PoolStats().MaxOpenConnections),
		Metrics:       m.Hub(),
		Fabric:        fabric,
		LeaveParams:   presenceLeave,
		// A removal made on another process: this one's channel and
		// moderation caches must not let a reload here outrun it.
		Removed: func(id string) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := st.ForgetClient(ctx, id); err != nil {
				logger.Warn("forget a removed client's channel", "client", id, "err", err)
			}
		},
	})

	mux := http.NewServeMux()
	// /fsapi trusts only the real peer; the browser-facing parts see the
	// client address behind trusted reverse proxies.
	mux.Handle("/fsapi", gateway)
	mux.Handle("/fsapi/", gateway)
	mux.Handle("/verto", forwarded.Handler(cfg.TrustedProxies, verto))
	mux.Handle("/", forwarded.Handler(cfg.TrustedProxies, app))

	stopSweeper := startSweeper(ctx, st, cfg, logger.With("component", "sweeper"))
	stopReconciler := func() {}
	if node != nil {
		stopReconciler = startReconciler(ctx, node, st, cfg.VertoDomain(), cfg.ClusterExpiry, logger.With("component", "cluster"))
	}
	shutdown := func(ctx context.Context) error {
		stopSweeper()
		stopReconciler()
		if err := verto.Shutdown(ctx); err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("shut down hub: %w", err)
		}
		return closeCluster(ctx)
	}
	return m.HTTP().Middleware(mux), shutdown, nil
}

// Background sweeper: how often it runs, and how long a client that never
// logged in is kept (the time a page may stay open before it logs in; the
// browser's session can re-create the client afterwards).
const (
	sweepEvery         = 10 * time.Minute
	sweepNeverLoggedIn = time.Hour
)

// startSweeper runs the store's sweeper (expired sessions, unused clients,
// ended removals, SQLite WAL checkpoint) until ctx ends or the returned stop is called,
// which waits for it. Clients idle for a session lifetime go too.
func startSweeper(ctx context.Context, st *store.Store, cfg config.Config, logger *slog.Logger) (stop func()) {
	return inBackground(ctx, func(ctx context.Context) {
		st.RunSweeper(ctx, store.SweeperOptions{
			Every:         sweepEvery,
			NeverLoggedIn: sweepNeverLoggedIn,
			Idle:          cfg.SessionLifetime,
			Report: func(r store.SweepResult, err error) {
				if err != nil {
					logger.Warn("sweep", "err", err)
				}
				if r.Sessions > 0 || r.Clients > 0 || r.Devices > 0 || r.Removals > 0 {
					logger.Info("swept", "expired_sessions", r.Sessions, "unused_clients", r.Clients, "expired_devices", r.Devices,
						"ended_removals", r.Removals)
				}
				if !r.Checkpointed {
					logger.Debug("WAL checkpoint incomplete: readers kept it busy")
				}
			},
		})
	})
}

// inBackground runs fn in a goroutine until ctx ends or the returned stop
// is called, which ends fn's context and waits for fn to return.
func inBackground(ctx context.Context, fn func(context.Context)) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

// allowedOrigins are the origins whose pages may open /verto: the site's
// own and the configured extras.
func allowedOrigins(cfg config.Config) []string {
	var out []string
	if u, err := url.Parse(cfg.BaseURL); err == nil {
		out = append(out, u.Scheme+"://"+u.Host)
	}
	return append(out, cfg.AllowedOrigins...)
}

// seed prepares a fresh database: on the deployment's first start, a
// public "Lobby" channel when there are no channels, so a newcomer sees
// something; and a word to the operator while there is no administrator:
// the command that makes one, addAdmin.
func seed(ctx context.Context, st *store.Store, logger *slog.Logger, addAdmin string) error {
	// Only the first start of the deployment seeds, even when several
	// processes start together on a new database.
	first, err := st.Claim(ctx, "seed-lobby")
	if err != nil {
		return err
	}
	n, err := st.CountChannels(ctx)
	if err != nil {
		return fmt.Errorf("count channels: %w", err)
	}
	if first && n == 0 {
		ch, err := st.CreateChannel(ctx, "Lobby", true, 0)
		if err != nil {
			return fmt.Errorf("create the Lobby channel: %w", err)
		}
		logger.InfoContext(ctx, "created the public channel Lobby", "channel", ch.ID)
	}
	users, err := st.ListUsers(ctx)
	if err != nil {
		return fmt.Errorf("list users: %w", err)
	}
	for _, u := range users {
		if u.Admin {
			return nil
		}
	}
	logger.InfoContext(ctx, "there is no administrator yet; create one with: "+addAdmin)
	return nil
}
