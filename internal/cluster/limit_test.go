package cluster_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"channels/internal/cluster/clustertest"
)

// TestClusterLimitContention: many more simultaneous logins than places,
// spread over three processes, admit exactly the limit. (Compare-and-set
// timeouts under contention used to fall back to each process counting
// its own: 900 logins into 300 admitted 440.)
func TestClusterLimitContention(t *testing.T) {
	const limit, tries = 300, 900
	s := newSite(t, clustertest.NATS(t), fmt.Sprintf("CHANNELS_MAX_CLIENTS_PER_CHANNEL=%d", limit))
	nodes := s.start(3)
	ch := s.channel()
	ms := make([]member, tries)
	cs := make([]*client, tries)
	for i := range tries {
		ms[i] = s.member(ch)
		// 300 a process, from 3 addresses: under 256 sockets per address.
		cs[i] = dialNodeFrom(t, nodes[i%3], fmt.Sprintf("c%d", i), fmt.Sprintf("127.0.0.%d", 2+i/3%3))
	}
	start := make(chan struct{})
	results := make([]map[string]any, tries)
	var wg sync.WaitGroup
	for i := range tries {
		wg.Go(func() {
			<-start
			results[i] = cs[i].login(ms[i], "s")
		})
	}
	close(start)
	wg.Wait()
	in, refusals := 0, map[string]int{}
	var again []int // told to try again: the count was slow (a loaded machine)
	for i, r := range results {
		if r["result"] != nil {
			in++
			continue
		}
		msg := errorCode(r)
		switch {
		case strings.Contains(msg, "Channel is full"):
		case strings.Contains(msg, "try again"):
			again = append(again, i)
		default:
			t.Fatalf("login %d: %v", i, r)
		}
		refusals[msg]++
	}
	t.Logf("%d of %d simultaneous logins admitted into a limit of %d; refused: %v", in, tries, limit, refusals)
	if in > limit {
		t.Fatalf("%d admitted, want at most %d", in, limit)
	}
	// Those told to try again do, one at a time: the places left are
	// taken, exactly.
	deadline := time.Now().Add(30 * time.Second)
	for _, i := range again {
		for {
			if time.Now().After(deadline) {
				t.Fatal("logins told to try again kept being told so")
			}
			c := dialNodeFrom(t, nodes[i%3], fmt.Sprintf("c%d again", i), fmt.Sprintf("127.0.0.%d", 2+i/3%3))
			r := c.login(ms[i], "s")
			if r["result"] != nil {
				in++
				cs[i].ws.CloseNow() // (the refused socket is closing anyway)
				break
			}
			c.ws.CloseNow()
			if strings.Contains(errorCode(r), "Channel is full") {
				break
			}
		}
	}
	if in != limit {
		t.Fatalf("%d admitted, want exactly %d", in, limit)
	}
}

// TestClusterLimitNATSOutage: while NATS is down, a process admits only
// the users it holds already (a reload gets in and punts its old tab);
// newcomers are told to try again rather than counted per process, which
// let each process fill the channel (4 users sat in a channel of 2, and
// stayed). After NATS is back the count is exactly the users present.
func TestClusterLimitNATSOutage(t *testing.T) {
	clustertest.NATS(t) // the shared server is not used, but CI must have one
	ns := &natsServer{t: t, addr: freeAddr(t), dir: t.TempDir()}
	t.Cleanup(ns.kill)
	ns.start()
	url := "nats://" + ns.addr
	s := newSite(t, url, "CHANNELS_MAX_CLIENTS_PER_CHANNEL=2", "CHANNELS_CLUSTER_EXPIRY=2s")
	a, b := s.startNode(url), s.startNode(url)
	waitPeers(t, a, b)
	ch := s.channel()
	ma, mb, mc, md := s.member(ch), s.member(ch), s.member(ch), s.member(ch)
	ca, cb := dialNode(t, a, "a"), dialNode(t, b, "b")
	ca.join(ma, "sa")
	cb.join(mb, "sb")

	ns.kill()
	for _, n := range []*node{a, b} {
		n.waitMetric("channels_cluster_nats_connected", func(v float64) bool { return v == 0 })
	}
	for i, try := range []struct {
		n *node
		m member
	}{{a, mc}, {b, md}} {
		c := dialNode(t, try.n, fmt.Sprintf("newcomer %d", i))
		if r := c.login(try.m, "s"); !strings.Contains(errorCode(r), "try again") {
			t.Fatalf("a newcomer during the outage: %v", r)
		}
	}
	// A reload of a member held here gets in, and its old tab is punted.
	reload := dialNode(t, a, "a reloaded")
	reload.join(ma, "sa")
	ca.waitFor(5*time.Second, "punt", func(f map[string]any) bool { return f["method"] == "verto.punt" })

	ns.start()
	for _, n := range []*node{a, b} {
		n.waitMetric("channels_cluster_nats_connected", func(v float64) bool { return v == 1 })
	}
	waitPeers(t, a, b)
	// Once a newcomer is refused as full on both processes, the count has
	// been rewritten; it must hold exactly the two present.
	for _, n := range []*node{a, b} {
		poll(t, "a full channel after the outage", 10*time.Second, func() bool {
			return strings.Contains(errorCode(dialNode(t, n, "late").login(mc, "s")), "Channel is full")
		})
	}
	if users, _ := seats(t, s, url); len(users) != 2 {
		t.Fatalf("after the outage the count holds %v, want the 2 present", users)
	}
	// A member present on the other process gets in there and punts its
	// tab here.
	moved := dialNode(t, a, "b moved")
	moved.join(mb, "sb")
	cb.waitFor(5*time.Second, "punt", func(f map[string]any) bool { return f["method"] == "verto.punt" })

	// When everybody has left, the channel's key is gone (the leader's
	// sweeps list only channels that have somebody).
	for _, c := range []*client{reload, moved} {
		c.ws.CloseNow()
	}
	poll(t, "the emptied channel's key deleted", 10*time.Second, func() bool {
		_, keys := seats(t, s, url)
		return keys == 0
	})
}

// seats returns the users the site's count holds, over every channel,
// and how many keys (channels) it has.
func seats(t *testing.T, s *site, url string) (users []string, keys int) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, s.prefix+"_seats")
	if err != nil {
		t.Fatal(err)
	}
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for k := range lister.Keys() {
		e, err := kv.Get(ctx, k)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // deleted since it was listed: it holds nobody
		}
		if err != nil {
			t.Fatal(err)
		}
		keys++
		var v map[string][]string
		if err := json.Unmarshal(e.Value(), &v); err != nil {
			t.Fatal(err)
		}
		for u := range v {
			users = append(users, u)
		}
	}
	return users, keys
}

// TestClusterWholeCrash: every process of a cluster killed at once leaves
// its members in the channel counts and marked connected in the
// database, and no disconnect report will ever come. Within seconds of
// the restart both are right again: a newcomer gets the places, and
// nobody is marked connected. (The counts used to clear after about a
// minute, the connected times never.)
func TestClusterWholeCrash(t *testing.T) {
	const expiry = 2 * time.Second
	url := clustertest.NATS(t)
	s := newSite(t, url, "CHANNELS_MAX_CLIENTS_PER_CHANNEL=2", "CHANNELS_CLUSTER_EXPIRY="+expiry.String())
	a, b := s.startNode(url), s.startNode(url)
	waitPeers(t, a, b)
	ch := s.channel()
	ma, mb := s.member(ch), s.member(ch)
	dialNode(t, a, "a").join(ma, "sa")
	dialNode(t, b, "b").join(mb, "sb")
	connected := func(m member) bool {
		c, err := s.st.ClientByID(context.Background(), m.id)
		if err != nil {
			t.Fatal(err)
		}
		return !c.Connected.IsZero()
	}
	poll(t, "both marked connected", 5*time.Second, func() bool { return connected(ma) && connected(mb) })

	a.kill()
	b.kill()
	restart := time.Now()
	a, b = s.startNode(url), s.startNode(url)
	up := time.Since(restart)
	waitPeers(t, a, b)
	// Both places are free again: two newcomers get in (one a process).
	var newcomers []member
	for i, n := range []*node{a, b} {
		m := s.member(ch)
		newcomers = append(newcomers, m)
		poll(t, "a newcomer admitted after the crash", 15*time.Second, func() bool {
			return dialNode(t, n, fmt.Sprintf("newcomer %d", i)).login(m, "s")["result"] != nil
		})
	}
	places := time.Since(restart)
	poll(t, "the dead members' connected times cleared", 15*time.Second, func() bool { return !connected(ma) && !connected(mb) })
	cleared := time.Since(restart)
	// The next pass clears a row marked connected an hour ago (the
	// marker), and leaves the members really connected as they are.
	marker := s.member(ch)
	if err := s.st.ClientLoggedIn(context.Background(), marker.id, "192.0.2.1", time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	poll(t, "the marker's connected time cleared", 15*time.Second, func() bool { return !connected(marker) })
	for _, m := range newcomers {
		if !connected(m) {
			t.Fatalf("a connected member's connected time was cleared")
		}
	}
	t.Logf("after the restart (expiry %v): both processes up at %v, places free at %v, connected times cleared at %v", expiry,
		up.Round(100*time.Millisecond), places.Round(100*time.Millisecond), cleared.Round(100*time.Millisecond))
}

// TestClusterLimitWithoutJetStream: on a NATS without JetStream there is
// no shared count: each process says so and counts its own, rather than
// refusing every newcomer.
func TestClusterLimitWithoutJetStream(t *testing.T) {
	clustertest.NATS(t) // the shared server is not used, but CI must have one
	ns := &natsServer{t: t, addr: freeAddr(t)}
	t.Cleanup(ns.kill)
	ns.start()
	url := "nats://" + ns.addr
	s := newSite(t, url, "CHANNELS_MAX_CLIENTS_PER_CHANNEL=1")
	a, b := s.startNode(url), s.startNode(url)
	for _, n := range []*node{a, b} {
		poll(t, "the lack of JetStream logged", 20*time.Second, func() bool {
			return strings.Contains(n.logs.String(), "NATS has no JetStream")
		})
	}
	ch := s.channel()
	dialNode(t, a, "a").join(s.member(ch), "s")
	dialNode(t, b, "b").join(s.member(ch), "s")
	if r := dialNode(t, a, "a2").login(s.member(ch), "s"); !strings.Contains(errorCode(r), "Channel is full") {
		t.Fatalf("a second user on a process counting its own: %v", r)
	}
}
