package metrics

import (
	"database/sql"

	"github.com/prometheus/client_golang/prometheus"
)

// dbCollector reads a database/sql pool's statistics at each scrape, so
// the pool pays nothing between scrapes. Both of the store's databases
// (SQLite and PostgreSQL through pgx's stdlib driver) are database/sql
// pools.
type dbCollector struct {
	stats func() sql.DBStats

	maxOpen, open, inUse, idle                    *prometheus.Desc
	waits, waitSeconds                            *prometheus.Desc
	closedMaxIdle, closedIdleTime, closedLifetime *prometheus.Desc
}

func newDBCollector(dialect string, stats func() sql.DBStats) *dbCollector {
	labels := prometheus.Labels{"dialect": dialect}
	desc := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "db", name), help, nil, labels)
	}
	return &dbCollector{
		stats:          stats,
		maxOpen:        desc("max_open_connections", "Most connections the pool may open."),
		open:           desc("open_connections", "Connections open, in use or idle."),
		inUse:          desc("in_use_connections", "Connections in use."),
		idle:           desc("idle_connections", "Idle connections."),
		waits:          desc("waits_total", "Times a query waited for a free connection."),
		waitSeconds:    desc("wait_seconds_total", "Time queries spent waiting for a free connection."),
		closedMaxIdle:  desc("closed_max_idle_total", "Connections closed because the pool had enough idle ones."),
		closedIdleTime: desc("closed_max_idle_time_total", "Connections closed after idling too long."),
		closedLifetime: desc("closed_max_lifetime_total", "Connections closed at the end of their lifetime."),
	}
}

func (c *dbCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.maxOpen, c.open, c.inUse, c.idle, c.waits, c.waitSeconds, c.closedMaxIdle, c.closedIdleTime, c.closedLifetime} {
		ch <- d
	}
}

func (c *dbCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	gauge := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	counter := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v)
	}
	gauge(c.maxOpen, float64(s.MaxOpenConnections))
	gauge(c.open, float64(s.OpenConnections))
	gauge(c.inUse, float64(s.InUse))
	gauge(c.idle, float64(s.Idle))
	counter(c.waits, float64(s.WaitCount))
	counter(c.waitSeconds, s.WaitDuration.Seconds())
	counter(c.closedMaxIdle, float64(s.MaxIdleClosed))
	counter(c.closedIdleTime, float64(s.MaxIdleTimeClosed))
	counter(c.closedLifetime, float64(s.MaxLifetimeClosed))
}
