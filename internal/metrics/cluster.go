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
	// Faults the cluster survived, each a count since start.
	Revived    uint64 // processes taken for dead heard again, their members given back
	Unreadable uint64 // messages in a wire version this process does not read
	Stalls     uint64 // times this process's own loop stalled past a heartbeat
	ReadyLate  uint64 // login or subscribe replies sent before NATS confirmed their interest
	ClockJumps uint64 // clock values heard implausibly far ahead, ignored
	LevelsLate uint64 // arrivals whose budget levels did not come from the other processes in time
	Unsent     uint64 // publishes dropped while NATS was unreachable (nothing is buffered)
}

// clusterCollector reads the cluster member's counters at each scrape.
type clusterCollector struct {
	stats func() ClusterStats

	connected, nodes                  *prometheus.Desc
	disconnects, reconnects, deadNode *prometheus.Desc
	messages, faults                  *prometheus.Desc
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
		faults:      desc("faults_total", "Faults the cluster survived: revived (a process wrongly taken for dead, healed), unreadable (a message in a wire version this process does not read: an upgrade under way), stall (this process's own loop stalled past a heartbeat), ready_late (a login or subscribe reply sent before NATS confirmed), clock_jump (an implausible clock value ignored), levels_late (a member's budget levels did not come from the other processes in time), unsent (a message to the other processes dropped while NATS was unreachable: nothing is buffered to arrive late).", "fault"),
	}
}

func (c *clusterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.connected, c.nodes, c.disconnects, c.reconnects, c.deadNode, c.messages, c.faults} {
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
	for _, f := range []struct {
		name string
		n    uint64
	}{{"revived", s.Revived}, {"unreadable", s.Unreadable}, {"stall", s.Stalls}, {"ready_late", s.ReadyLate}, {"clock_jump", s.ClockJumps}, {"levels_late", s.LevelsLate}, {"unsent", s.Unsent}} {
		ch <- prometheus.MustNewConstMetric(c.faults, prometheus.CounterValue, float64(f.n), f.name)
	}
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
