package cluster

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"channels/internal/cluster/clustertest"
	"channels/internal/hub"
)

// levelLocal is a hub whose every member has level (known), and that
// records what the node asks of it about levels.
type levelLocal struct {
	fuzzLocal
	level hub.Level
	known bool

	mu    sync.Mutex
	calls []string
	note  chan string // each call, as recorded
}

func newLevelLocal(l hub.Level, known bool) *levelLocal {
	return &levelLocal{level: l, known: known, note: make(chan string, 64)}
}

func (l *levelLocal) record(s string) {
	l.mu.Lock()
	l.calls = append(l.calls, s)
	l.mu.Unlock()
	l.note <- s
}

func (l *levelLocal) recorded() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.calls)
}

func (l *levelLocal) Level(string) (hub.Level, bool) { return l.level, l.known }
func (l *levelLocal) Adopt(uid string, lv hub.Level) {
	l.record(fmt.Sprintf("adopt %s %g %g", uid, lv.Broadcast, lv.Message))
}
func (l *levelLocal) Hold(uid string, _ time.Duration) { l.record("hold " + uid) }
func (l *levelLocal) Settle(uid string)                { l.record("settle " + uid) }

// await returns the next call recorded, within 5 s.
func (l *levelLocal) await(t *testing.T, what string) string {
	t.Helper()
	select {
	case s := <-l.note:
		return s
	case <-time.After(5 * time.Second):
		t.Fatalf("no %s within 5 s; calls: %q", what, l.recorded())
		return ""
	}
}

func waitUntil(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 10 s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLevelsFollowMembers: the exchange that carries a member's budgets
// from node to node. A member that arrives on node b while node a holds
// it is held on b (before b's Ready returns, so before the hub answers
// the login) until a's level is adopted; a member that leaves a has its
// level sent to every node, unasked; and a peer that does not announce
// the feature (an older release) is not waited for.
func TestLevelsFollowMembers(t *testing.T) {
	url := clustertest.NATS(t)
	prefix := "levels" + fmt.Sprintf("%x", time.Now().UnixNano())
	start := func(l hub.Local) *Node {
		n, err := New(Options{URL: url, Prefix: prefix, Heartbeat: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		n.Start(l)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = n.Close(ctx)
		})
		return n
	}
	la, lb := newLevelLocal(hub.Level{Broadcast: -3, Message: 5}, true), newLevelLocal(hub.Level{}, false)
	a, b := start(la), start(lb)
	answers := func(n *Node, peer string) bool {
		n.tbl.mu.RLock()
		defer n.tbl.mu.RUnlock()
		p := n.tbl.peers[peer]
		return p != nil && p.levels
	}
	waitUntil(t, "peers that know each other's features", func() bool { return answers(a, b.id) && answers(b, a.id) })
	ready := func(n *Node) {
		t.Helper()
		if err := n.Ready(t.Context()); err != nil {
			t.Fatal(err)
		}
	}

	const m = "m@d"
	a.UserChanged(hub.Member{UID: m, Homes: []string{"room"}, Conns: 1})
	ready(a)
	waitUntil(t, "news of the member on a", func() bool { return b.RemoteConns(m) == 1 })
	b.UserChanged(hub.Member{UID: m, Homes: []string{"room"}, Conns: 1})
	ready(b)
	held := time.Now()
	// The hold came first (a's level may already have followed it).
	if calls := lb.recorded(); len(calls) == 0 || calls[0] != "hold "+m {
		t.Fatalf("after Ready, b did %q; want the member held first", calls)
	}
	lb.await(t, "hold")
	if got := lb.await(t, "a's level"); got != "adopt "+m+" -3 5" {
		t.Fatalf("b did %q; want a's level adopted", got)
	}
	if got := lb.await(t, "the end of the hold"); got != "settle "+m {
		t.Fatalf("b did %q; want the hold ended", got)
	}
	t.Logf("the member was held %v after Ready returned", time.Since(held))
	if late := b.Stats().LevelsLate; late != 0 {
		t.Errorf("%d requests for levels went unanswered", late)
	}

	// Leaving a: its level goes to every node, unasked.
	a.UserLeft(m)
	ready(a)
	if got := lb.await(t, "a's level as the member left"); got != "adopt "+m+" -3 5" {
		t.Fatalf("b did %q; want a's level adopted", got)
	}

	// An older release: it announces no features, so nobody waits for it.
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	const old, o = "oldpeer", "o@d"
	member := func(e *enc) { putMember(e, hub.Member{UID: o, Homes: []string{"room"}, Addr: "x", Conns: 1}) }
	if _, err := nc.Subscribe(prefix+".node."+old+".sync", func(msg *nats.Msg) {
		e := newEnc(wireMin, kindSnapshot, 64)
		e.str(old)
		e.num(1) // seq
		e.num(0) // part
		e.flag(true)
		e.num(1)
		member(e)
		_ = nc.Publish(msg.Reply, e.b)
	}); err != nil {
		t.Fatal(err)
	}
	beat := func() {
		e := newEnc(wireMin, kindHeartbeat, 32)
		e.str(old)
		e.num(1)
		e.num(wallClock())
		e.num(wireMin)
		e.num(wireMax) // and no features
		_ = nc.Publish(prefix+".nodes", e.b)
	}
	waitUntil(t, "news of the old peer's member", func() bool { beat(); return b.RemoteConns(o) == 1 })
	if answers(b, old) {
		t.Fatal("a peer that announced no features is taken to answer requests for levels")
	}
	b.UserChanged(hub.Member{UID: o, Homes: []string{"room"}, Conns: 1})
	ready(b)
	if calls := lb.recorded(); slices.Contains(calls, "hold "+o) {
		t.Fatalf("b held a member for a peer that does not answer: %q", calls)
	}
}

// TestLevelCodec: levels cross the wire to a thousandth of a token,
// rounded down (never up), debts too, within ±2^40 tokens; a number a later release added at
// the end of a message reads as 0 when it is not there.
func TestLevelCodec(t *testing.T) {
	for _, f := range []float64{0, 1, 20, -3, 2.5, -0.0015, 1e15, -1e15, math.NaN(), math.Inf(1), math.Inf(-1)} {
		var e enc
		e.tokens(f)
		d := dec{b: e.b}
		got := d.tokens()
		want := math.Floor(max(min(f, maxTokens), -maxTokens)*1000) / 1000
		if math.IsNaN(f) {
			want = 0
		}
		if d.err != nil || got != want || got > f && f > -maxTokens {
			t.Errorf("%g: read %g (%v), want %g", f, got, d.err, want)
		}
	}
	d := dec{}
	if v := d.more(); v != 0 || d.err != nil {
		t.Errorf("a missing field read %d, %v", v, d.err)
	}
	var e enc
	e.num(features)
	d = dec{b: e.b}
	if v := d.more(); v != features || d.err != nil {
		t.Errorf("the features read %d, %v", v, d.err)
	}
}
