package cluster_test

import (
	"context"
	"fmt"
	"net/url"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"channels/internal/cluster"
	"channels/internal/cluster/clustertest"
	"channels/internal/hub"
	"channels/internal/hub/hubtest"
)

// The benchmarks run hubs in this process, each joined to the others by
// its own cluster.Node (its own NATS connection), and compare them, in the
// same run, with one hub on its own. Budgets and per-address limits are
// lifted, as in internal/hub's benchmarks, so that the figures are the
// hubs' and NATS's; the directory is in memory.

// memGateway answers every directory lookup with a user of password "pw"
// allowed the channel "room".
type memGateway struct{}

func (memGateway) Respond(_ context.Context, form url.Values) []byte {
	if form.Get("action") != "jsonrpc-authenticate" {
		return []byte(`<document type="freeswitch/xml"><section name="result"><result status="ok"/></section></document>`)
	}
	return fmt.Appendf(nil, `<document type="freeswitch/xml"><section name="directory"><domain name=%q><user id=%q><params>`+
		`<param name="password" value="pw"/><param name="jsonrpc-allowed-methods" value="echo,verto.subscribe,verto.broadcast,verto.info"/>`+
		`<param name="jsonrpc-allowed-event-channels" value="room"/></params></user></domain></section></document>`, domain, form.Get("user"))
}

// benchHubs starts n hubs; clustered joins them over NATS.
func benchHubs(b *testing.B, n int, clustered bool) []string {
	b.Helper()
	nats := ""
	if clustered {
		nats = clustertest.NATS(b)
	}
	prefix := clustertest.Prefix("bench")
	var urls []string
	var nodes []*cluster.Node
	for range n {
		o := hub.Options{
			Gateway: memGateway{}, Domain: domain,
			MaxConnsPerAddress: 1 << 20, MaxConnsPerClient: 1 << 20,
			RequestRate: 1e9, RequestBurst: 1 << 30,
			AddressBytes:    hub.Budget{Rate: 1e9, Burst: 1 << 30},
			BroadcastBudget: hub.Budget{Rate: 1e9, Burst: 1 << 30},
			MessageBudget:   hub.Budget{Rate: 1e9, Burst: 1 << 30},
		}
		var node *cluster.Node
		if clustered {
			var err error
			node, err = cluster.New(cluster.Options{URL: nats, Prefix: prefix})
			if err != nil {
				b.Fatal(err)
			}
			o.Fabric = node
			nodes = append(nodes, node)
		}
		h := hub.New(o)
		urls = append(urls, serveHub(b, h, node))
	}
	// Ready when every hub knows the others (their first heartbeats).
	deadline := time.Now().Add(10 * time.Second)
	for _, node := range nodes {
		for node.Stats().Nodes != n-1 {
			if time.Now().After(deadline) {
				b.Fatalf("a hub knows %d others of %d", node.Stats().Nodes, n-1)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return urls
}

// raw is hubtest's lean client, its set-up failures fatal to the benchmark.
type raw struct{ *hubtest.Raw }

func dialRaw(b *testing.B, wsURL string) raw {
	b.Helper()
	c, err := hubtest.DialRaw(wsURL)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	return raw{c}
}

// login logs in user, subscribed to "room" when subscribe, and waits for
// the replies.
func (r raw) login(b *testing.B, user string, subscribe bool) {
	b.Helper()
	channel := ""
	if subscribe {
		channel = "room"
	}
	if err := r.Login(user, "pw", "s-"+user, channel); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkClusterBroadcast: time from a localBroadcast until the last of
// the subscribers, spread evenly over the hubs, has the event.
func BenchmarkClusterBroadcast(b *testing.B) {
	for _, c := range []struct {
		subs, hubs int
		clustered  bool
	}{{500, 1, false}, {500, 1, true}, {1500, 1, false}, {1500, 3, true}} {
		name := fmt.Sprintf("%dsubs-%dhubs", c.subs, c.hubs)
		if !c.clustered {
			name += "-alone"
		}
		b.Run(name, func(b *testing.B) { benchBroadcast(b, c.subs, benchHubs(b, c.hubs, c.clustered)) })
	}
}

func benchBroadcast(b *testing.B, n int, urls []string) {
	var pending atomic.Int64
	done := make(chan time.Time, 1)
	for i := range n {
		r := dialRaw(b, urls[i%len(urls)])
		r.login(b, "u"+strconv.Itoa(i), true)
		go func() {
			for {
				p, err := r.Next()
				if err != nil {
					return
				}
				if strings.Contains(string(p[:min(len(p), 64)]), `"verto.event"`) && pending.Add(-1) == 0 {
					done <- time.Now()
				}
			}
		}()
	}
	sender := dialRaw(b, urls[0])
	sender.login(b, "sender", false)
	go func() {
		for {
			if _, err := sender.Next(); err != nil {
				return
			}
		}
	}()
	// No wait: the subscribe replies mean the subscriptions are in effect.
	msg := []byte(`{"jsonrpc":"2.0","id":3,"method":"verto.broadcast","params":{"eventChannel":"room","eventData":"eyJwcmVzZW5jZSI6ImF2YWlsYWJsZSJ9","localBroadcast":true}}`)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		pending.Store(int64(n))
		t0 := time.Now()
		if err := sender.Send(msg); err != nil {
			b.Fatal(err)
		}
		select {
		case t1 := <-done:
			lat = append(lat, t1.Sub(t0))
		case <-time.After(10 * time.Second):
			b.Fatalf("%d subscribers still waiting", pending.Load())
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// BenchmarkClusterRelay: direct messages from one sender to one target,
// on the same hub or on two, pipelined (at most 256 in flight).
func BenchmarkClusterRelay(b *testing.B) {
	b.Run("1hub-alone", func(b *testing.B) { u := benchHubs(b, 1, false); benchRelay(b, u[0], u[0]) })
	b.Run("1hub-clustered", func(b *testing.B) { u := benchHubs(b, 1, true); benchRelay(b, u[0], u[0]) })
	b.Run("across-2hubs", func(b *testing.B) { u := benchHubs(b, 2, true); benchRelay(b, u[0], u[1]) })
}

func benchRelay(b *testing.B, fromURL, toURL string) {
	sender, target := dialRaw(b, fromURL), dialRaw(b, toURL)
	sender.login(b, "from", false)
	target.login(b, "to", false)
	// No wait: the target's login reply means messages reach it.
	const window = 256
	credits := make(chan struct{}, window)
	replies := make(chan struct{}, window)
	for range window {
		credits <- struct{}{}
		replies <- struct{}{}
	}
	var received, total atomic.Int64
	all := make(chan struct{})
	go func() {
		for {
			if _, err := target.Next(); err != nil {
				return
			}
			credits <- struct{}{}
			if received.Add(1) == total.Load() {
				close(all)
			}
		}
	}()
	go func() {
		for {
			if _, err := sender.Next(); err != nil {
				return
			}
			replies <- struct{}{}
		}
	}()
	msg := []byte(`{"jsonrpc":"2.0","id":5,"method":"verto.info","params":{"msg":{"to":"to","body":"eyJ0eXBlIjoib2ZmZXIiLCJzZHAiOiJ2PTAuLi4ifQ=="}}}`)
	total.Store(int64(b.N))
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		<-credits
		<-replies
		if err := sender.Send(msg); err != nil {
			b.Fatal(err)
		}
	}
	select {
	case <-all:
	case <-time.After(30 * time.Second):
		b.Fatalf("%d of %d delivered", received.Load(), b.N)
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkClusterLogin: connect, log in, wait for verto.clientReady,
// disconnect; 16 clients at once, spread over the hubs.
func BenchmarkClusterLogin(b *testing.B) {
	b.Run("1hub-alone", func(b *testing.B) { benchLogin(b, benchHubs(b, 1, false)) })
	b.Run("1hub-clustered", func(b *testing.B) { benchLogin(b, benchHubs(b, 1, true)) })
	b.Run("3hubs", func(b *testing.B) { benchLogin(b, benchHubs(b, 3, true)) })
}

func benchLogin(b *testing.B, urls []string) {
	var n atomic.Int64
	b.SetParallelism(max(1, 16/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := int(n.Add(1))
			r := dialRaw(b, urls[i%len(urls)])
			r.login(b, "u"+strconv.Itoa(i%256), false)
			r.Close()
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "logins/s")
}
