package cli

import (
	"context"
	"encoding/base64"
	"log/slog"
	"os"
	"time"

	"channels/internal/cluster"
	"channels/internal/config"
	"channels/internal/hub"
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
		URL:    cfg.ClusterURL,
		Prefix: cfg.ClusterPrefix,
		Name:   "channels " + host,
		Logger: logger.With("component", "cluster"),
		Places: cfg.MaxClientsPerChannel > 0,
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
