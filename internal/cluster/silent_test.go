package cluster_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"channels/internal/cluster"
	"channels/internal/cluster/clustertest"
)

// refusedUnreachable reports whether r is the refusal -32012
// "Recipient unreachable, try again shortly".
func refusedUnreachable(r map[string]any) bool {
	return !sent(r) && strings.HasPrefix(errorCode(r), "-32012 ")
}

// dmUntil sends direct messages from c to uid, bodies prefix-0,
// prefix-1…, every 20 ms until want(reply) holds (within d), and returns
// the bodies answered SENT before it, and the reply that ended it. Any
// reply but SENT or -32012 fails the test.
func dmUntil(t *testing.T, c *client, uid, prefix string, d time.Duration, want func(map[string]any) bool) (sentBodies []string, last string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for i := 0; ; i++ {
		body := fmt.Sprintf("%s-%d", prefix, i)
		r := c.dm(uid, body)
		if !sent(r) && !refusedUnreachable(r) {
			t.Fatalf("%s: a direct message to %s: %v", c.name, uid, r)
		}
		if want(r) {
			return sentBodies, body
		}
		if sent(r) {
			sentBodies = append(sentBodies, body)
		}
		if time.Now().After(deadline) {
			return sentBodies, ""
		}
		time.Sleep(20 * time.Millisecond) // polling: the state sought is the reply itself
	}
}

// TestPeerSilentRefused: a process whose path to NATS goes silent while
// the sender's process keeps its own link. Hub B reaches the private
// NATS through a proxy that the test blackholes (it stops forwarding
// both ways and closes nothing, so neither NATS nor B's client notices
// for 15-20 s, and hub A's link is untouched). A direct message from A's
// member to B's member must be refused -32012 once B has missed more
// than cluster.SilentBeats heartbeats, not answered SENT while it cannot arrive; every
// one answered SENT before that is delivered (the path held it); and
// once the path is back and B is heard again, messages cross again,
// proved by their delivery. Before, A answered SENT all along, until
// B's expiry (10 s), and what B's link dropped was lost.
func TestPeerSilentRefused(t *testing.T) {
	clustertest.NATS(t) // the shared server is not used, but CI must have one
	ns := &natsServer{t: t, addr: freeAddr(t)}
	t.Cleanup(ns.kill)
	ns.start()
	direct := "nats://" + ns.addr
	p := newStallProxy(t, direct)
	// A long expiry: B must not be taken for dead while the test runs.
	urls, nodes := startHubs(t, 2, hubsConfig{nats: []string{direct, "nats://" + p.addr}, expiry: time.Minute})
	ca, cb := dialURL(t, urls[0], "a", nil), dialURL(t, urls[1], "b", nil)
	ca.join(member{id: "ua", password: "pw", channel: "room"}, "sa")
	cb.join(member{id: "ub", password: "pw", channel: "room"}, "sb")
	poll(t, "each hub to know the other's member", 10*time.Second, func() bool {
		return nodes[0].RemoteConns("ub@"+domain) == 1 && nodes[1].RemoteConns("ua@"+domain) == 1
	})
	if r := ca.dm("ub", "before"); !sent(r) {
		t.Fatalf("a direct message across before the path went silent: %v", r)
	}
	cb.waitFor(5*time.Second, "the message before", isMessage("before"))

	p.blackhole()
	silent := time.Now()
	held, refused := dmUntil(t, ca, "ub", "while", 15*time.Second, refusedUnreachable)
	if refused == "" {
		t.Fatalf("direct messages to a member of a process silent for 15 s still answered SENT (%d of them)", len(held))
	}
	detect := time.Since(silent)
	// And the other way: B hears nothing from A either.
	if _, last := dmUntil(t, cb, "ua", "back", 15*time.Second, refusedUnreachable); last == "" {
		t.Fatal("B never refused a direct message to A's member while the path was silent")
	}
	if s := nodes[0].Stats(); !s.Connected || !s.Linked || s.Disconnects != 0 {
		t.Fatalf("A's own link was disturbed: %+v", s)
	}

	p.unstall()
	restored := time.Now()
	_, first := dmUntil(t, ca, "ub", "after", 15*time.Second, sent)
	if first == "" {
		t.Fatal("direct messages never crossed again after the path came back")
	}
	answered := time.Since(restored)
	// Nothing answered SENT was lost: those sent before the refusal were
	// held by the path, and come first (NATS keeps one publisher's order).
	for _, body := range append(held, first) {
		cb.waitFor(5*time.Second, "the message "+body, isMessage(body))
	}
	delivered := time.Since(restored)
	t.Logf("heartbeat %v: first refusal %v after the path went silent (%d answered SENT before it, all delivered); first SENT %v after it came back, delivered within %v",
		time.Second, detect.Round(time.Millisecond), len(held), answered.Round(time.Millisecond), delivered.Round(time.Millisecond))
	if detect > (cluster.SilentBeats+1)*time.Second { // a second's slack for a loaded machine
		t.Errorf("the silence was noticed %v after it began; want at most %d heartbeats after the last one heard", detect.Round(time.Millisecond), cluster.SilentBeats)
	}
	if s := nodes[1].Stats(); s.Disconnects != 0 {
		t.Logf("B's client noticed the silence and reconnected: %+v", s)
	}
}

// TestLateFirstConnectSettles: a process started while NATS is down has
// heard nobody when its first connection comes; until the others have
// had time to come back and say so, a direct message across is refused
// -32012, never answered SENT and lost. Hub A starts with NATS down, hub
// B behind a proxy that refuses it; NATS comes up, A connects while B
// still cannot: A's message to B's member is refused. Once B gets
// through and A has heard it, messages cross, both ways, proved by
// their delivery. Before, A answered SENT at once after its first
// connection, and the message was lost.
func TestLateFirstConnectSettles(t *testing.T) {
	clustertest.NATS(t)
	ns := &natsServer{t: t, addr: freeAddr(t)}
	t.Cleanup(ns.kill)
	direct := "nats://" + ns.addr
	p := newStallProxy(t, direct)
	p.refuse(true)
	urls, nodes := startHubs(t, 2, hubsConfig{nats: []string{direct, "nats://" + p.addr}, noWait: true})
	ca, cb := dialURL(t, urls[0], "a", nil), dialURL(t, urls[1], "b", nil)
	ca.join(member{id: "ua", password: "pw", channel: "room"}, "sa")
	cb.join(member{id: "ub", password: "pw", channel: "room"}, "sb")
	if r := ca.dm("ub", "down"); !refusedUnreachable(r) {
		t.Fatalf("a direct message across before NATS is up: %v", r)
	}

	ns.start()
	poll(t, "A's first connection", 15*time.Second, func() bool { return nodes[0].Stats().Connected })
	connected := time.Now()
	if r := ca.dm("ub", "early"); !refusedUnreachable(r) {
		t.Fatalf("a direct message across right after a late first connection, the other process never heard: %v", r)
	}
	p.refuse(false)
	for _, tt := range []struct {
		from, to *client
		uid      string
		node     int
	}{{ca, cb, "ub", 0}, {cb, ca, "ua", 1}} {
		before, body := dmUntil(t, tt.from, tt.uid, "probe-"+tt.from.name, 20*time.Second, sent)
		if body == "" || len(before) != 0 {
			t.Fatalf("%s: never answered SENT after NATS came up (%v)", tt.from.name, before)
		}
		if s := nodes[tt.node].Stats(); s.Nodes != 1 {
			t.Fatalf("%s: answered SENT before its process heard the other: %+v", tt.from.name, s)
		}
		tt.to.waitFor(5*time.Second, "the message "+body, isMessage(body))
		t.Logf("%s: first SENT %v after A's first connection", tt.from.name, time.Since(connected).Round(time.Millisecond))
	}
}
