package cli

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"os"
	"time"

	"channels/internal/cluster"
	"channels/internal/config"
	"channels/internal/hub"
	"channels/internal/metrics"
	"channels/internal/store"
	"channels/internal/verto"
)

// clusterCacheTTL is how long a process keeps a client's directory entry
// when several processes share the database: a channel deleted through
// one process stops its clients' logins on every other within it.
const clusterCacheTTL = time.Second

// startCluster joins the embedded hub to the others of -cluster-url; nil
// and a no-op without it. The returned node (nil without a cluster) has
// the counters (Stats) that metrics can export.
func startCluster(cfg config.Config, logger *slog.Logger) (*cluster.Node, hub.Fabric, func(context.Context) error, error) {
	none := func(context.Context) error { return nil }
	if cfg.ClusterURL == "" {
		return nil, nil, none, nil
	}
	if cfg.VertoURL != "" {
		logger.Warn("-cluster-url joins embedded hubs; with -verto-url FreeSWITCH signals, so it is ignored")
		return nil, nil, none, nil
	}
	host, _ := os.Hostname()
	node, err := cluster.New(cluster.Options{
		URL:      cfg.ClusterURL,
		Prefix:   cfg.ClusterPrefix,
		Name:     "channels " + host,
		Logger:   logger.With("component", "cluster"),
		Expiry:   cfg.ClusterExpiry,
		Places:   cfg.MaxClientsPerChannel > 0,
		Presence: presenceOf,
	})
	if err != nil {
		return nil, nil, nil, err
	}
	return node, node, node.Close, nil
}

// directoryCacheTTL is the directory cache's lifetime: the default for
// one process, clusterCacheTTL for a cluster.
func directoryCacheTTL(cfg config.Config) time.Duration {
	if cfg.ClusterURL != "" {
		return clusterCacheTTL
	}
	return 0
}

// presenceLeave is the broadcast a browser sends when it leaves a channel
// (see internal/webclient/static/controller.js: {t: "unavailable"},
// base64 of its JSON), which the hub delivers for members whose last
// connection closed without it and for members that vanished with a dead
// process.
func presenceLeave(channel string) []byte {
	return verto.Object(
		"eventChannel", channel,
		"eventData", base64.StdEncoding.EncodeToString([]byte(`{"t":"unavailable"}`)),
		"localBroadcast", true,
	)
}

// presenceOf reads a member's broadcast as the browser client writes its
// presence (controller.js): eventData is base64 of a JSON object whose t
// is "available" (an announcement, kept by the cluster to give again to a
// process that wrongly took this one for dead) or "unavailable" (a
// goodbye).
func presenceOf(params []byte) cluster.Presence {
	p, ok := verto.ParseParams(params)
	if !ok {
		return cluster.NotPresence
	}
	data, _ := p.String("eventData")
	raw, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		return cluster.NotPresence
	}
	var a struct {
		T string `json:"t"`
	}
	if json.Unmarshal(raw, &a) != nil {
		return cluster.NotPresence
	}
	switch a.T {
	case "available":
		return cluster.Announce
	case "unavailable":
		return cluster.Goodbye
	}
	return cluster.NotPresence
}

// clusterStats is what metrics export of the cluster's counters.
func clusterStats(node *cluster.Node) metrics.ClusterStats {
	s := node.Stats()
	return metrics.ClusterStats{
		Connected:   s.Connected,
		Disconnects: s.Disconnects,
		Reconnects:  s.Reconnects,
		InMsgs:      s.InMsgs,
		OutMsgs:     s.OutMsgs,
		DeadNodes:   s.DeadNodes,
		Nodes:       s.Nodes,
		Revived:     s.Revived,
		Unreadable:  s.Unreadable,
		Stalls:      s.Stalls,
		ReadyLate:   s.ReadyLate,
		ClockJumps:  s.ClockJumps,
		LevelsLate:  s.LevelsLate,
		Unsent:      s.Unsent,
	}
}

// How the leader clears connected times that no process holds: it looks
// as soon as it can vouch for the cluster's membership (Node.Present:
// an expiry after it started), again a margin later, then every
// reconcileEvery. Rows connected within the margin (the cluster's expiry,
// at least reconcileMargin) are left for the next pass: their member may
// still be on its way to the leader, or stamped by a host whose clock is
// ahead. (Rows a crash left are older: the margin does not delay them.)
const (
	reconcilePoll   = time.Second
	reconcileEvery  = 5 * time.Minute
	reconcileMargin = 2 * time.Second
)

// startReconciler keeps the connected times of a cluster's clients true:
// a process that died (a whole cluster killed and restarted, say) left
// its clients marked connected, and no disconnect report will come for
// them. stop waits for it.
func startReconciler(ctx context.Context, node *cluster.Node, st *store.Store, domain string, expiry time.Duration, logger *slog.Logger) (stop func()) {
	return inBackground(ctx, func(ctx context.Context) {
		reconcile(ctx, node, st, domain, max(reconcileMargin, expiry), logger)
	})
}

// reconcile is startReconciler's loop, until ctx ends.
func reconcile(ctx context.Context, node *cluster.Node, st *store.Store, domain string, margin time.Duration, logger *slog.Logger) {
	t := time.NewTicker(reconcilePoll)
	defer t.Stop()
	var next time.Time
	passes := 0
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if now.Before(next) {
				continue
			}
			users, ok := node.Present()
			if !ok {
				next, passes = time.Time{}, 0 // a new leader looks at once
				continue
			}
			passes++
			next = now.Add(reconcileEvery)
			if passes == 1 {
				next = now.Add(margin)
			}
			n, err := st.ClearConnectedExcept(ctx, func(id string) bool { return users[id+"@"+domain] }, now.Add(-margin))
			if err != nil && ctx.Err() == nil {
				logger.Warn("clear connected times nobody holds", "err", err)
			}
			if n > 0 {
				logger.Info("cleared connected times of clients no process holds", "clients", n)
			}
		}
	}
}
