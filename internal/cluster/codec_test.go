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
		e := newEnc(kindDelta, 0)
		e.str("node")
		e.num(42)
		putMember(e, m)
		d := dec{b: e.b[1:]}
		if d.str() != "node" || d.num() != 42 {
			t.Fatal("header")
		}
		got := getMember(&d)
		if d.err != nil || len(d.b) != 0 || !reflect.DeepEqual(got, m) {
			t.Errorf("round trip of %+v: %+v, err %v, %d left", m, got, d.err, len(d.b))
		}
	}
}

// FuzzDecode: no message, however malformed, makes a decoder panic or
// allocate beyond its size.
func FuzzDecode(f *testing.F) {
	e := newEnc(kindSnapshot, 0)
	e.str("node")
	e.num(1)
	e.num(0)
	e.num(1)
	e.num(1)
	putMember(e, hub.Member{UID: "u", Homes: []string{"c"}, Conns: 1})
	f.Add(e.b)
	f.Add([]byte{kindDelta, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		d := dec{b: data}
		for d.err == nil && len(d.b) > 0 {
			_ = getMember(&d)
		}
		d = dec{b: data}
		_ = d.list()
	})
}

func TestTableSequence(t *testing.T) {
	now := time.Unix(1000, 0)
	var tb table
	tb.init()
	m := func(uid string, conns int) hub.Member {
		return hub.Member{UID: uid, Homes: []string{"c"}, Conns: conns}
	}

	// A new peer is asked for its membership; changes before the answer
	// are ignored.
	if !tb.heartbeat("p", 3, now) {
		t.Fatal("a new peer must be asked")
	}
	if tb.delta("p", 4, m("x", 1), now) {
		t.Fatal("asked again within askAgain")
	}
	tb.snapshot("p", 4, 0, true, []hub.Member{m("x", 1), m("y", 2)}, now)
	if tb.conns["x"] != 1 || tb.conns["y"] != 2 {
		t.Fatalf("after the snapshot: %v", tb.conns)
	}
	// In-order changes apply; a gap makes it ask.
	tb.delta("p", 5, m("x", 3), now)
	tb.delta("p", 6, hub.Member{UID: "y"}, now)
	if tb.conns["x"] != 3 || tb.conns["y"] != 0 {
		t.Fatalf("after changes: %v", tb.conns)
	}
	later := now.Add(askAgain)
	if !tb.delta("p", 8, m("z", 1), later) {
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
	if tb.heartbeat("p", 8, later) {
		t.Fatal("in step, yet asked")
	}
	// Another peer shares x; when p dies only z is gone.
	tb.heartbeat("q", 0, later)
	tb.snapshot("q", 0, 0, true, []hub.Member{m("x", 1)}, later)
	dead, members, gone := tb.expire(later.Add(2*time.Second), time.Second)
	if len(dead) != 2 {
		t.Fatalf("dead %v", dead)
	}
	_ = members
	if !gone["z"] || !gone["x"] {
		t.Fatalf("gone %v (both peers died)", gone)
	}
	tb.heartbeat("q", 0, later)
	tb.snapshot("q", 0, 0, true, []hub.Member{m("x", 1)}, later)
	tb.heartbeat("p", 9, later)
	tb.snapshot("p", 9, 0, true, []hub.Member{m("x", 1), m("z", 1)}, later)
	tb.heartbeat("q", 0, later.Add(2*time.Second))
	dead, _, gone = tb.expire(later.Add(2*time.Second), time.Second)
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
