// Package metrics is Channels' Prometheus instrumentation. A Metrics value
// owns its registry (never the client library's global one) and every
// metric, and hands each part of the application a small value of typed
// hooks: HTTP (a middleware), Web (sign-ins, rate limits), FSAPI (/fsapi
// outcomes), Hub (the embedded Verto hub) and Moderation (channel
// managers' removals and locks, and the refusals they cause). Every hook is a method that
// does nothing on a nil receiver, so a part built without metrics pays one
// comparison per hook and its code needs no branches.
//
// Handler serves the registry; the service mounts it on a listener of its
// own (-metrics-listen), never on the public site.
//
// Label values come from fixed sets named here or from the code (route
// patterns, handler types), never from what a client sends: a stranger
// cannot make the number of series grow.
package metrics

import (
	"database/sql"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// namespace prefixes every metric of the application's own.
const namespace = "channels"

// Other is the label value of anything outside a hook's fixed set.
const Other = "other"

// Metrics is the registry of one Channels process and its hooks.
type Metrics struct {
	reg   *prometheus.Registry
	http  *HTTP
	web   *Web
	fsapi *FSAPI
	hub   *Hub
	mod   *Moderation
}

// New returns a registry holding the Go runtime and process collectors,
// the build information and every Channels metric, at zero.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(),
	)
	f := promauto.With(reg)
	m := &Metrics{
		reg:   reg,
		http:  newHTTP(f),
		web:   newWeb(f),
		fsapi: newFSAPI(f),
		hub:   newHub(f),
		mod:   newModeration(f),
	}
	m.web.mod = m.mod
	return m
}

// The hooks of each part; nil when m is nil, so wiring code can pass them
// on without asking whether metrics are on.

// HTTP returns the HTTP middleware's hooks.
func (m *Metrics) HTTP() *HTTP {
	if m == nil {
		return nil
	}
	return m.http
}

// Web returns the web application's hooks.
func (m *Metrics) Web() *Web {
	if m == nil {
		return nil
	}
	return m.web
}

// FSAPI returns the /fsapi endpoint's hooks.
func (m *Metrics) FSAPI() *FSAPI {
	if m == nil {
		return nil
	}
	return m.fsapi
}

// Hub returns the embedded Verto hub's hooks.
func (m *Metrics) Hub() *Hub {
	if m == nil {
		return nil
	}
	return m.hub
}

// Moderation returns channel moderation's hooks.
func (m *Metrics) Moderation() *Moderation {
	if m == nil {
		return nil
	}
	return m.mod
}

// Registry is the registry itself, for tests and for collectors of other
// parts.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text format. At most a few
// scrapes run at once and each is cut after 10 s: the listener is private,
// but a misconfigured scraper must not pile up work. Collection errors are
// logged to logger (nil: not at all) and the rest is still served.
func (m *Metrics) Handler(logger *slog.Logger) http.Handler {
	opts := promhttp.HandlerOpts{
		Registry:            m.reg, // counts its own failures (promhttp_metric_handler_errors_total)
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	}
	if logger != nil {
		opts.ErrorLog = slog.NewLogLogger(logger.Handler(), slog.LevelError)
	}
	return promhttp.HandlerFor(m.reg, opts)
}

// WatchDB adds the statistics of a database/sql connection pool, read at
// each scrape by stats (store.Store.PoolStats), labelled with the dialect.
// It does nothing on a nil Metrics.
func (m *Metrics) WatchDB(dialect string, stats func() sql.DBStats) error {
	if m == nil {
		return nil
	}
	if err := m.reg.Register(newDBCollector(dialect, stats)); err != nil {
		return fmt.Errorf("metrics: watch database pool: %w", err)
	}
	return nil
}

// counters is a counter per label value of a fixed set, made up front so
// that every series exists (at 0) from the start and a hook costs one map
// read, not a label hash.
type counters map[string]prometheus.Counter

func newCounters(vec *prometheus.CounterVec, values ...string) counters {
	c := make(counters, len(values)+1)
	for _, v := range append(values, Other) {
		c[v] = vec.WithLabelValues(v)
	}
	return c
}

// inc counts one for v, or for Other when v is not in the set.
func (c counters) inc(v string) {
	if x, ok := c[v]; ok {
		x.Inc()
		return
	}
	c[Other].Inc()
}
