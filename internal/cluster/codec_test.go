package cluster

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"channels/internal/hub"
)

func TestToken(t *testing.T) {
	long := string(make([]byte, 300))
	tests := []struct{ name, want string }{
		{"0f8fad5b-d9cb-469f-a165-70867728950e", "u0f8fad5b-d9cb-469f-a165-70867728950e"},
		{"a.b", "xYS5i"},
		{"u", "uu"},
		{"*", "xKg"},
		{"x>", "xeD4"},
		{"id@example.org", "xaWRAZXhhbXBsZS5vcmc"},
		{"", "x"},
	}
	seen := map[string]string{}
	for _, tt := range tests {
		got := token(tt.name)
		if got != tt.want {
			t.Errorf("token(%.20q) = %q, want %q", tt.name, got, tt.want)
		}
		if !safe(got) || len(got) > 260 {
			t.Errorf("token(%.20q) = %q: not a safe subject token", tt.name, got)
		}
		if prev, ok := seen[got]; ok {
			t.Errorf("token(%q) = token(%q)", tt.name, prev)
		}
		seen[got] = tt.name
	}
	if tl := token(long); tl[0] != 'h' || len(tl) != 65 || tl == token(long+"x") {
		t.Errorf("token of a long name: %q", tl)
	}
	if token("uabc") == token("abc") || token("xYS5i") == token("a.b") {
		t.Error("prefixed names collide")
	}
}

func TestCodecRoundTrip(t *testing.T) {
	members := []hub.Member{
		{UID: "a@d", Homes: []string{"ch1", "ch2"}, Addr: "1.2.3.4:5", Conns: 2},
		{UID: "b@d", Homes: nil, Addr: "", Conns: 1},
		{UID: "c@d", Homes: []string{}, Addr: "[::1]:9", Conns: 300},
	}
	for _, m := range members {
		e := newEnc(wireMax, kindDelta, 0)
		e.str("node")
		e.num(42)
		putMember(e, m)
		_, kind, d, ok := envelope(e.b, wireMin, wireMax)
		if !ok || kind != kindDelta {
			t.Fatal("envelope")
		}
		if d.str() != "node" || d.num() != 42 {
			t.Fatal("header")
		}
		got := getMember(&d)
		if d.err != nil || len(d.b) != 0 || !reflect.DeepEqual(got, m) {
			t.Errorf("round trip of %+v: %+v, err %v, %d left", m, got, d.err, len(d.b))
		}
	}
}

func TestTableSequence(t *testing.T) {
	now := time.Unix(1000, 0)
	var tb table
	tb.init(wireMin, wireMax)
	hb := func(id string, seq uint64, now time.Time) bool {
		return tb.heartbeat(id, seq, wireMin, wireMax, now).ask
	}
	delta := func(id string, seq uint64, m hub.Member, now time.Time) bool { return tb.delta(id, seq, m, now).ask }
	m := func(uid string, conns int) hub.Member {
		return hub.Member{UID: uid, Homes: []string{"c"}, Conns: conns}
	}

	// A new peer is asked for its membership; changes before the answer
	// are ignored.
	if !hb("p", 3, now) {
		t.Fatal("a new peer must be asked")
	}
	if delta("p", 4, m("x", 1), now) {
		t.Fatal("asked again within askAgain")
	}
	tb.snapshot("p", 4, 0, true, []hub.Member{m("x", 1), m("y", 2)}, now)
	if tb.conns["x"] != 1 || tb.conns["y"] != 2 {
		t.Fatalf("after the snapshot: %v", tb.conns)
	}
	// In-order changes apply; a gap makes it ask.
	delta("p", 5, m("x", 3), now)
	delta("p", 6, hub.Member{UID: "y"}, now)
	if tb.conns["x"] != 3 || tb.conns["y"] != 0 {
		t.Fatalf("after changes: %v", tb.conns)
	}
	later := now.Add(askAgain)
	if !delta("p", 8, m("z", 1), later) {
		t.Fatal("a gap must make it ask")
	}
	if tb.conns["z"] != 0 {
		t.Fatal("a change after a gap applied")
	}
	// A snapshot in two parts replaces everything.
	tb.snapshot("p", 8, 0, false, []hub.Member{m("x", 1)}, later)
	tb.snapshot("p", 8, 1, true, []hub.Member{m("z", 1)}, later)
	if tb.conns["x"] != 1 || tb.conns["z"] != 1 || len(tb.conns) != 2 {
		t.Fatalf("after the second snapshot: %v", tb.conns)
	}
	if hb("p", 8, later) {
		t.Fatal("in step, yet asked")
	}
	// Another peer shares x; when p dies only z is gone.
	hb("q", 0, later)
	tb.snapshot("q", 0, 0, true, []hub.Member{m("x", 1)}, later)
	dead, members, gone, _ := tb.expire(later.Add(2*time.Second), time.Second, "self")
	if len(dead) != 2 {
		t.Fatalf("dead %v", dead)
	}
	_ = members
	if !gone["z"] || !gone["x"] {
		t.Fatalf("gone %v (both peers died)", gone)
	}
	hb("q", 0, later)
	tb.snapshot("q", 0, 0, true, []hub.Member{m("x", 1)}, later)
	hb("p", 9, later)
	tb.snapshot("p", 9, 0, true, []hub.Member{m("x", 1), m("z", 1)}, later)
	hb("q", 0, later.Add(2*time.Second))
	dead, _, gone, _ = tb.expire(later.Add(2*time.Second), time.Second, "self")
	if len(dead) != 1 || dead[0] != "p" || gone["x"] || !gone["z"] {
		t.Fatalf("dead %v gone %v: x is still on q", dead, gone)
	}
}

func TestRedact(t *testing.T) {
	got := Redact("nats://channels:s3cret@a:4222,tls://b:4222,nats://tok3n@c:4222")
	if strings.Contains(got, "s3cret") || strings.Contains(got, "tok3n") || !strings.Contains(got, "b:4222") {
		t.Errorf("Redact: %q", got)
	}
}

// TestTableRevive: a peer taken for dead that is heard again is asked to
// give its members back (not more often than askAgain, at most maxAsks
// times); of those it gives, the ones taken for gone with it and not on
// another peer now are back, once.
func TestTableRevive(t *testing.T) {
	now := time.Unix(1000, 0)
	var tb table
	tb.init(wireMin, wireMax)
	m := func(uid string) hub.Member { return hub.Member{UID: uid, Homes: []string{"c"}, Conns: 1} }
	tb.heartbeat("p", 1, wireMin, wireMax, now)
	tb.snapshot("p", 1, 0, true, []hub.Member{m("x"), m("y"), m("z")}, now)
	tb.heartbeat("q", 0, wireMin, wireMax, now)
	tb.snapshot("q", 0, 0, true, []hub.Member{m("y")}, now)
	later := now.Add(5 * time.Second)
	tb.heartbeat("q", 0, wireMin, wireMax, later)
	dead, _, gone, leader := tb.expire(later, 3*time.Second, "a")
	if len(dead) != 1 || !gone["x"] || gone["y"] || !leader {
		t.Fatalf("dead %v gone %v leader %v", dead, gone, leader)
	}
	// x reconnects to q meanwhile.
	tb.delta("q", 1, m("x"), later)
	h := tb.heartbeat("p", 2, wireMin, wireMax, later.Add(time.Second))
	if !h.revive || !h.reported || !h.first || !h.ask {
		t.Fatalf("heard again: %+v", h)
	}
	if h := tb.heartbeat("p", 2, wireMin, wireMax, later.Add(1500*time.Millisecond)); h.revive {
		t.Fatal("asked again within askAgain")
	}
	back, reported := tb.replayed("p", []hub.Member{m("x"), m("z")}, false)
	if len(back) != 1 || back[0].UID != "z" || !reported {
		t.Fatalf("back %v reported %v: z only (x is on q, y was never gone)", back, reported)
	}
	if back, _ := tb.replayed("p", []hub.Member{m("z")}, true); len(back) != 0 {
		t.Fatalf("z back twice: %v", back)
	}
	if back, _ := tb.replayed("p", []hub.Member{m("z")}, true); back != nil {
		t.Fatal("a replay after the last part")
	}
	// A peer that never answers is asked maxAsks times.
	tb.heartbeat("r", 0, wireMin, wireMax, later)
	tb.expire(later.Add(10*time.Second), 3*time.Second, "a")
	asks := 0
	for i := range 20 {
		if tb.heartbeat("r", 0, wireMin, wireMax, later.Add(time.Duration(11+3*i)*time.Second)).revive {
			asks++
		}
	}
	if asks != maxAsks {
		t.Errorf("asked %d times, want %d", asks, maxAsks)
	}
}

// TestTableBusyAndVersions: busy notes by peer and their expiry; the wire
// version spoken is the newest every live peer reads.
func TestTableBusyAndVersions(t *testing.T) {
	now := time.Now()
	var tb table
	tb.init(1, 3)
	if _, busy := tb.busyAt("u"); busy {
		t.Fatal("busy with no note")
	}
	tb.setBusy("p", "u", true, []string{"c"}, now.Add(time.Hour))
	tb.setBusy("q", "u", true, nil, now.Add(-time.Second)) // expired
	if homes, busy := tb.busyAt("u"); !busy || len(homes) != 1 || homes[0] != "c" {
		t.Fatalf("busy %v in %v", busy, homes)
	}
	tb.setBusy("p", "u", false, nil, now)
	if _, busy := tb.busyAt("u"); busy {
		t.Fatal("busy after the free note")
	}
	tb.sweepBusy(now)
	if n := tb.nbusy.Load(); n != 0 || len(tb.busy) != 0 {
		t.Fatalf("%d notes left after the sweep", n)
	}

	if v := tb.speak.Load(); v != 1 {
		t.Fatalf("alone: version %d, want the oldest read, 1", v)
	}
	tb.heartbeat("p", 0, 1, 2, now)
	tb.heartbeat("q", 0, 2, 5, now)
	if v := tb.speak.Load(); v != 2 {
		t.Fatalf("peers reading up to 2 and 5: version %d, want 2", v)
	}
	tb.bye("p", now)
	if v := tb.speak.Load(); v != 3 {
		t.Fatalf("a peer reading up to 5: version %d, want this node's newest, 3", v)
	}
}

// TestTableVersionsSettle: a node speaks its oldest version until it has
// been up for an expiry (a live peer it has not heard yet may read no
// newer), while a peer's versions are unknown, and while a peer that left
// (an expiry) or died (deadKeep) read no newer; then the newest all read.
func TestTableVersionsSettle(t *testing.T) {
	start := time.Unix(1000, 0)
	expiry := 10 * time.Second
	var tb table
	tb.init(1, 3)
	tb.settle(start.Add(expiry), expiry)
	speaks := func(now time.Time, want uint32, what string) {
		t.Helper()
		tb.respeak(now)
		if v := tb.speak.Load(); v != want {
			t.Fatalf("%s: version %d, want %d", what, v, want)
		}
	}
	tb.heartbeat("new", 0, 1, 3, start.Add(time.Second))
	speaks(start.Add(time.Second), 1, "a peer reading 3, before an expiry since the start")
	speaks(start.Add(expiry), 3, "the same, an expiry after the start")
	tb.delta("unknown", 1, hub.Member{UID: "u", Conns: 1}, start.Add(expiry))
	speaks(start.Add(expiry), 1, "a peer whose heartbeat is not heard yet")
	tb.heartbeat("unknown", 1, 1, 3, start.Add(expiry))
	speaks(start.Add(expiry), 3, "its heartbeat heard")

	// An old peer (reads 1-2) comes, then leaves: remembered an expiry.
	at := start.Add(time.Minute)
	tb.heartbeat("old", 0, 1, 2, at)
	speaks(at, 2, "beside an old peer")
	tb.bye("old", at)
	speaks(at.Add(expiry-time.Millisecond), 2, "an old peer that left just now")
	speaks(at.Add(expiry), 3, "an expiry after the old peer left")

	// An old peer that dies is remembered deadKeep.
	at = at.Add(time.Minute)
	tb.heartbeat("old2", 0, 1, 2, at)
	tb.heartbeat("new", 0, 1, 3, at.Add(expiry))
	tb.heartbeat("unknown", 1, 1, 3, at.Add(expiry))
	dead, _, _, _ := tb.expire(at.Add(expiry+time.Second), expiry, "a")
	if len(dead) != 1 || dead[0] != "old2" {
		t.Fatalf("dead %v, want old2", dead)
	}
	speaks(at.Add(expiry+2*time.Second), 2, "an old peer taken for dead just now")
	tb.heartbeat("new", 0, 1, 3, at.Add(deadKeep))
	tb.heartbeat("unknown", 1, 1, 3, at.Add(deadKeep))
	speaks(at.Add(expiry+time.Second+deadKeep), 3, "deadKeep after the old peer died")
}
