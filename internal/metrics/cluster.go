package metrics

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// ClusterStats is what a clustered hub's NATS member reports: the
// package's own copy, so that metrics need not import the cluster.
type ClusterStats struct {
	Connected   bool
	Disconnects uint64 // connections to NATS lost
	Reconnects  uint64 // and found again
	InMsgs      uint64 // messages received from NATS
	OutMsgs     uint64 // messages sent to NATS
	DeadNodes   uint64 // other processes taken for dead
	Nodes       int    // other live processes known
}

// clusterCollector reads the cluster member's counters at each scrape.
type clusterCollector struct {
	stats func() ClusterStats

	connected, nodes                  *prometheus.Desc
	disconnects, reconnects, deadNode *prometheus.Desc
	messages                          *prometheus.Desc
}

func newClusterCollector(stats func() ClusterStats) *clusterCollector {
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, "cluster", name), help, labels, nil)
	}
	return &clusterCollector{
		stats:       stats,
		connected:   desc("nats_connected", "1 while the connection to NATS is up."),
		nodes:       desc("peers", "Other live processes of the cluster this one knows."),
		disconnects: desc("nats_disconnects_total", "Connections to NATS lost."),
		reconnects:  desc("nats_reconnects_total", "Connections to NATS found again after a loss."),
		deadNode:    desc("peers_dead_total", "Other processes taken for dead after missing heartbeats."),
		messages:    desc("nats_messages_total", "Messages exchanged with NATS.", "direction"),
	}
}

func (c *clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.connected, c.nodes, c.disconnects, c.reconnects, c.deadNode, c.messages} {
		ch <- d
	}
}

func (c *clusterCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	up := 0.0
	if s.Connected {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(c.connected, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(c.nodes, prometheus.GaugeValue, float64(s.Nodes))
	ch <- prometheus.MustNewConstMetric(c.disconnects, prometheus.CounterValue, float64(s.Disconnects))
	ch <- prometheus.MustNewConstMetric(c.reconnects, prometheus.CounterValue, float64(s.Reconnects))
	ch <- prometheus.MustNewConstMetric(c.deadNode, prometheus.CounterValue, float64(s.DeadNodes))
	ch <- prometheus.MustNewConstMetric(c.messages, prometheus.CounterValue, float64(s.InMsgs), "in")
	ch <- prometheus.MustNewConstMetric(c.messages, prometheus.CounterValue, float64(s.OutMsgs), "out")
}

// WatchCluster exports a clustered hub's NATS counters, read by stats at
// each scrape. A nil Metrics does nothing.
func (m *Metrics) WatchCluster(stats func() ClusterStats) error {
	if m == nil {
		return nil
	}
	if err := m.reg.Register(newClusterCollector(stats)); err != nil {
		return fmt.Errorf("metrics: watch cluster: %w", err)
	}
	return nil
}
