package cluster_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"channels/internal/cluster"
	"channels/internal/cluster/clustertest"
	"channels/internal/hub"
)

// quietLocal is a hub that ignores what the fabric hands it.
type quietLocal struct{}

func (quietLocal) Event(string, string, []byte)                        {}
func (quietLocal) Message(hub.Message)                                 {}
func (quietLocal) Busy(string) ([]string, bool)                        { return nil, false }
func (quietLocal) Punt(string, string, func(int64) bool) (int64, bool) { return 0, false }
func (quietLocal) Remove(string)                                       {}
func (quietLocal) Unremove(string)                                     {}
func (quietLocal) Charge(string, bool, int)                            {}
func (quietLocal) Gone(hub.Member, bool)                               {}
func (quietLocal) Back(hub.Member, map[string][]byte, bool)            {}
func (quietLocal) Level(string) (hub.Level, bool)                      { return hub.Level{}, false }
func (quietLocal) Adopt(string, hub.Level)                             {}
func (quietLocal) Hold(string, time.Duration)                          {}
func (quietLocal) Settle(string)                                       {}

// TestAloneNodeSendsNoDeltas: a node that knows no other publishes no
// membership change, and a node that comes later still learns its members
// (through the heartbeat's change number), then hears its changes.
func TestAloneNodeSendsNoDeltas(t *testing.T) {
	url := clustertest.NATS(t)
	prefix := clustertest.Prefix("alone")
	opts := cluster.Options{URL: url, Prefix: prefix, Heartbeat: 200 * time.Millisecond}

	watch, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close()
	var deltas, batches, heartbeats atomic.Int64
	if _, err := watch.Subscribe(prefix+".nodes", func(m *nats.Msg) {
		switch {
		case len(m.Data) > 1 && m.Data[1] == 'd':
			deltas.Add(1)
		case len(m.Data) > 1 && m.Data[1] == 'D':
			batches.Add(1)
		case len(m.Data) > 1 && m.Data[1] == 'h':
			heartbeats.Add(1)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := watch.Flush(); err != nil {
		t.Fatal(err)
	}

	start := func() *cluster.Node {
		n, err := cluster.New(opts)
		if err != nil {
			t.Fatal(err)
		}
		n.Start(quietLocal{})
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = n.Close(ctx)
		})
		return n
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		poll(t, what, 5*time.Second, ok)
	}

	a := start()
	a.UserChanged(hub.Member{UID: "one@" + domain, Homes: []string{"room"}, Conns: 1})
	a.UserChanged(hub.Member{UID: "two@" + domain, Conns: 1})
	a.UserLeft("two@" + domain)
	waitFor("two heartbeats of the lone node", func() bool { return heartbeats.Load() >= 2 })
	if n := deltas.Load(); n != 0 {
		t.Fatalf("a lone node published %d membership changes, want none", n)
	}

	b := start()
	waitFor("the newcomer to learn the lone node's member", func() bool { return b.RemoteConns("one@"+domain) == 1 })
	if n := b.RemoteConns("two@" + domain); n != 0 {
		t.Errorf("the newcomer counts %d connections of a member that left", n)
	}
	waitFor("each node to know the other", func() bool { return a.Stats().Nodes == 1 && b.Stats().Nodes == 1 })

	a.UserChanged(hub.Member{UID: "three@" + domain, Conns: 2})
	waitFor("the change to reach the peer", func() bool { return b.RemoteConns("three@"+domain) == 2 })
	if deltas.Load() == 0 {
		t.Error("with a peer, the change went out in no delta")
	}

	// A burst goes out in few messages, each member's latest change only.
	for i := range 20 {
		a.UserChanged(hub.Member{UID: fmt.Sprintf("burst%d@%s", i, domain), Conns: 1})
	}
	a.UserLeft("burst0@" + domain)
	waitFor("the burst to reach the peer", func() bool { return b.RemoteConns("burst19@"+domain) == 1 })
	for i := range 20 {
		want := 1
		if i == 0 {
			want = 0
		}
		if got := b.RemoteConns(fmt.Sprintf("burst%d@%s", i, domain)); got != want {
			t.Errorf("burst%d: the peer counts %d connections, want %d", i, got, want)
		}
	}
	if batches.Load() == 0 {
		t.Error("a burst of 21 changes went out in no batch")
	}
}
