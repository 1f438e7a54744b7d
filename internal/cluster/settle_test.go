package cluster

import (
	"sync"
	"testing"
	"time"

	"channels/internal/hub"
)

// fakeClock is a clock whose two readings the test moves apart: wall as
// a host's clock may step (NTP, an operator), now as time passes.
type fakeClock struct {
	mu      sync.Mutex
	wallNow time.Time
	base    time.Time // a reading of time.Now: now is base plus elapsed
	elapsed time.Duration
}

func newFakeClock() *fakeClock {
	now := time.Now()
	return &fakeClock{wallNow: now, base: now}
}

func (c *fakeClock) wall() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wallNow
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.base.Add(c.elapsed)
}

// pass lets d pass, while the wall clock moves by wall.
func (c *fakeClock) pass(d, wall time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.elapsed += d
	c.wallNow = c.wallNow.Add(wall)
}

// TestSettleMonotonic: the settling after NATS comes back, and a peer's
// silence, are measured on the node's clock as time passes, whatever
// its wall clock does: a wall clock stepped an hour ahead does not end
// the settling early (nor make a peer heard a second ago silent), and
// one stepped an hour back does not make it last longer (nor hide a
// silence). Each step is a row: the time that passes, the wall clock's
// step, whether the peer is heard meanwhile, and what Linked must say,
// for a member on the peer and for one known nowhere. Before, the
// settling's start was kept as a wall-clock number (UnixNano) and
// compared with time.Now's wall reading.
func TestSettleMonotonic(t *testing.T) {
	const hb = time.Second
	const onPeer, nowhere = "u@d", "x@d"
	type step struct {
		what            string
		settle          int // 0: none started; 1: a reconnect; 2: a late first connection
		pass, wall      time.Duration
		heard           bool // the peer is heard after the time passed
		stalled         bool // this node's own loop is found stalled after the time passed
		unnoticed       bool // this node's loop has not run its check since the time passed
		linked, reaches bool // Linked(nowhere), Linked(onPeer)
	}
	for _, tt := range []struct {
		name  string
		steps []step
	}{
		{"reconnect, wall ahead then back", []step{
			{what: "just reconnected", settle: 1, linked: false, reaches: false},
			{what: "1 s later, wall +1h", pass: hb, wall: time.Hour, linked: false, reaches: false},
			{what: "5 s after, wall -2h", pass: 4*hb + time.Millisecond, wall: -2 * time.Hour, linked: true, reaches: false},
			{what: "heard again", heard: true, linked: true, reaches: true},
		}},
		{"reconnect ended by hearing the peer", []step{
			{what: "just reconnected", settle: 1, linked: false, reaches: false},
			{what: "peer heard 1 s later, wall -1h", pass: hb, wall: -time.Hour, heard: true, linked: true, reaches: true},
		}},
		{"late first connection", []step{
			{what: "first connection", settle: 2, linked: false, reaches: false},
			{what: "peer heard, wall +1h", pass: hb, wall: time.Hour, heard: true, linked: false, reaches: false},
			{what: "4.9 s after, wall -2h", pass: 3*hb + 900*time.Millisecond, wall: -2 * time.Hour, heard: true, linked: false, reaches: false},
			{what: "5 s after", pass: 100 * time.Millisecond, linked: true, reaches: true},
		}},
		{"peer silence", []step{
			{what: "heard", heard: true, linked: true, reaches: true},
			{what: "silentBeats heartbeats later, wall +1h", pass: silentBeats * hb, wall: time.Hour, linked: true, reaches: true},
			{what: "a moment more, wall -2h", pass: time.Millisecond, wall: -2 * time.Hour, linked: true, reaches: false},
			{what: "heard again", heard: true, linked: true, reaches: true},
			{what: "a moment short of silent, wall -1h", pass: silentBeats*hb - 100*time.Millisecond, wall: -time.Hour, linked: true, reaches: true},
		}},
		// A node whose own loop stalled cannot tell a silent peer from
		// heartbeats waiting unread: for 2 heartbeats it refuses nobody.
		{"own stall", []step{
			{what: "heard", heard: true, linked: true, reaches: true},
			{what: "silent, the stall not noticed yet", pass: (silentBeats + 1) * hb, unnoticed: true, linked: true, reaches: true},
			{what: "then found stalled", stalled: true, linked: true, reaches: true},
			{what: "still within the stall's grace, wall -1h", pass: 2*hb - time.Millisecond, wall: -time.Hour, linked: true, reaches: true},
			{what: "grace over, still silent", pass: time.Millisecond, linked: true, reaches: false},
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			clk := newFakeClock()
			n, err := New(Options{URL: "nats://127.0.0.1:1", Prefix: "settle", Heartbeat: hb, clk: clk})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(n.nc.Close)
			n.connected.Store(true) // as a connection handler says
			hear := func() { n.tbl.heartbeat("peer", 0, wireMin, wireMax, clk.now()) }
			clk.pass(10*time.Second, 0)
			hear()
			n.tbl.snapshot("peer", 0, 0, true, []hub.Member{{UID: onPeer, Conns: 1}}, clk.now())
			clk.pass(time.Millisecond, 0) // NATS comes back after the peer was last heard
			for _, s := range tt.steps {
				if s.settle != 0 {
					n.startSettle(s.settle == 2)
				}
				clk.pass(s.pass, s.wall)
				if !s.unnoticed {
					n.noteCheck(clk.now()) // as the loop does every quarter heartbeat
				}
				if s.stalled {
					n.extend(&n.stallUntil, 2*hb) // as the loop does on finding a stall
				}
				if s.heard {
					hear()
				}
				if got := n.Linked(nowhere); got != s.linked {
					t.Errorf("%s: Linked(a member known nowhere) = %v, want %v", s.what, got, s.linked)
				}
				if got := n.Linked(onPeer); got != s.reaches {
					t.Errorf("%s: Linked(a member on the peer) = %v, want %v", s.what, got, s.reaches)
				}
			}
		})
	}
}
