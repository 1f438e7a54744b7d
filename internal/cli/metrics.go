package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"channels/internal/config"
	"channels/internal/connlimit"
	"channels/internal/metrics"
)

// newMetrics returns the registry serve records into, or nil when
// -metrics-listen is empty: then no part of the app is instrumented and
// the hooks cost one comparison each.
func newMetrics(cfg config.Config) *metrics.Metrics {
	if cfg.MetricsListen == "" {
		return nil
	}
	return metrics.New()
}

// Caps of the metrics listener: a scraper or two, and an operator's curl.
const (
	metricsConnsPerAddr = 8
	metricsConns        = 32
)

// serveMetrics serves m at /metrics on a listener of its own,
// cfg.MetricsListen, until stop is called; the public listener never
// serves it. With m nil it does nothing.
func serveMetrics(ctx context.Context, cfg config.Config, m *metrics.Metrics, logger *slog.Logger) (stop func(), err error) {
	if m == nil {
		return func() {}, nil
	}
	ln, err := net.Listen("tcp", cfg.MetricsListen)
	if err != nil {
		return nil, fmt.Errorf("listen for metrics on %s: %w", cfg.MetricsListen, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler(logger.With("component", "metrics")))
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	ln = connlimit.New(ln, connlimit.Options{MaxPerAddr: metricsConnsPerAddr, MaxTotal: metricsConns, Logger: logger})
	go srv.Serve(ln) //nolint:errcheck // ends with ErrServerClosed when stopped
	addr := ln.Addr().String()
	logger.Info("serving metrics", "url", "http://"+addr+"/metrics")
	if ap, err := netip.ParseAddrPort(addr); err == nil && ap.Addr().IsUnspecified() {
		logger.Warn("metrics are served on every interface: whoever reaches " + addr +
			" reads them; bind a loopback or private address, or firewall the port")
	}
	return func() { srv.Close() }, nil
}
