package cluster

import (
	"bytes"
	"runtime"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"channels/internal/hub"
)

// fuzzLocal is a hub that ignores what the node hands it, but says a user
// is busy, holds sessions and so on, so that every path runs.
type fuzzLocal struct{}

func (fuzzLocal) Event(string, string, []byte)                           {}
func (fuzzLocal) Message(hub.Message)                                    {}
func (fuzzLocal) Busy(string) ([]string, bool)                           { return []string{"c"}, true }
func (fuzzLocal) Punt(_, _ string, older func(int64) bool) (int64, bool) { return 7, !older(7) }
func (fuzzLocal) Remove(string)                                          {}
func (fuzzLocal) Unremove(string)                                        {}
func (fuzzLocal) Charge(string, bool, int)                               {}
func (fuzzLocal) Gone(hub.Member, bool)                                  {}
func (fuzzLocal) Back(hub.Member, map[string][]byte, bool)               {}
func (fuzzLocal) Level(string) (hub.Level, bool)                         { return hub.Level{Broadcast: -1, Message: 2}, true }
func (fuzzLocal) Adopt(string, hub.Level)                                {}
func (fuzzLocal) Hold(string, time.Duration)                             {}
func (fuzzLocal) Settle(string)                                          {}

// FuzzMessages: no message from NATS, however malformed, makes a node
// panic or allocate beyond its size, on any of its subjects. The node is
// not connected (nothing listens on port 1): what it publishes waits in
// its buffer.
func FuzzMessages(f *testing.F) {
	n, err := New(Options{URL: "nats://127.0.0.1:1", Prefix: "fuzz", Heartbeat: time.Hour})
	if err != nil {
		f.Fatal(err)
	}
	defer n.nc.Close()
	n.local = fuzzLocal{}
	reset := func() { // each input starts from the same state
		n.tbl.init(wireMin, wireMax)
		n.tbl.npeers.Store(0)
		n.tbl.nbusy.Store(0)
		n.tbl.dead["peer"] = &deadPeer{gone: map[string]bool{"u": true}}
		clear(n.busyLocal)
		for len(n.reqs) > 0 {
			<-n.reqs
		}
	}
	m := hub.Member{UID: "u", Homes: []string{"c"}, Addr: "a", Conns: 1}
	seed := func(kind byte, fill func(e *enc)) {
		e := newEnc(wireMax, kind, 0)
		fill(e)
		f.Add(e.b)
	}
	seed(kindEvent, func(e *enc) { e.str("u"); e.str("c"); e.bytes([]byte(`{}`)) })
	seed(kindMessage, func(e *enc) { e.str("u"); e.str("f"); e.list([]string{"c"}); e.str("t"); e.str("b") })
	seed(kindPunt, func(e *enc) { e.str("peer"); e.str("u"); e.str("s"); e.num(5) })
	seed(kindSpent, func(e *enc) { e.str("u"); e.num(1); e.num(10) })
	seed(kindBusy, func(e *enc) { e.str("peer"); e.str("u"); e.flag(true); e.list(nil) })
	seed(kindHeartbeat, func(e *enc) { e.str("peer"); e.num(3); e.num(9); e.num(1); e.num(1) })
	seed(kindDelta, func(e *enc) { e.str("peer"); e.num(4); e.num(9); putMember(e, m) })
	seed(kindDeltas, func(e *enc) {
		e.str("peer")
		e.num(5)
		e.num(9)
		e.num(2)
		putMember(e, m)
		putMember(e, m)
	})
	seed(kindAskLevels, func(e *enc) { e.str("peer"); e.num(3); e.str("u") })
	seed(kindLevels, func(e *enc) {
		e.str("peer")
		e.num(3)
		e.num(1)
		e.str("u")
		e.flag(true)
		e.tokens(-1.5)
		e.tokens(7)
	})
	seed(kindBye, func(e *enc) { e.str("other") })
	seed(kindRemove, func(e *enc) { e.str("peer"); e.str("u") })
	seed(kindUnremove, func(e *enc) { e.str("peer"); e.str("u") })
	seed(kindSync, func(e *enc) { e.str("peer") })
	seed(kindRevive, func(e *enc) { e.str("peer"); e.flag(true) })
	seed(kindSnapshot, func(e *enc) {
		e.str("peer")
		e.num(4)
		e.num(0)
		e.flag(true)
		e.num(1)
		putMember(e, m)
	})
	seed(kindReplay, func(e *enc) {
		e.str("peer")
		e.num(0)
		e.flag(true)
		e.num(1)
		putMember(e, m)
		e.num(1)
		e.str("c")
		e.bytes([]byte(`{"eventData":"x"}`))
	})
	for _, h := range hostile(4 << 10) {
		f.Add(h.data)
	}
	f.Add([]byte{kindDelta, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{wireMax, kindDeltas, 1, 'p', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		reset()
		msg := &nats.Msg{Subject: "fuzz.x", Reply: "fuzz.inbox.x", Data: data}
		n.onEvent(msg)
		n.onUser(msg)
		n.onNodes(msg)
		n.onSyncRequest(msg)
		n.onInbox(msg)
		d := dec{b: data}
		for d.err == nil && len(d.b) > 0 {
			_ = getMember(&d)
		}
		d = dec{b: data}
		_ = d.list()
	})
}

type hostileMsg struct {
	name string
	data []byte
	// ratio bounds what handling it may allocate, in multiples of its
	// size.
	ratio float64
}

// hostile builds messages of about size bytes whose counts claim far
// more than they hold, and one that really holds the most members that
// fit.
func hostile(size int) []hostileMsg {
	m := hub.Member{UID: "u", Homes: []string{"c"}, Addr: "a", Conns: 1}
	junk := bytes.Repeat([]byte{0xff}, size)
	msg := func(kind byte, fill func(e *enc)) []byte {
		e := newEnc(wireMax, kind, size)
		fill(e)
		return append(e.b, junk[:max(size-len(e.b), 0)]...)
	}
	most := func(e *enc) int { return (size - len(e.b)) / minMemberBytes }
	return []hostileMsg{
		{"deltas claiming all they could hold", msg(kindDeltas, func(e *enc) {
			e.str("peer")
			e.num(5)
			e.num(9)
			e.num(uint64(most(e)))
			putMember(e, m)
		}), 1},
		{"snapshot claiming all they could hold", msg(kindSnapshot, func(e *enc) {
			e.str("peer")
			e.num(4)
			e.num(0)
			e.flag(true)
			e.num(uint64(most(e)))
			putMember(e, m)
		}), 1},
		{"replay claiming members and announcements", msg(kindReplay, func(e *enc) {
			e.str("peer")
			e.num(0)
			e.flag(true)
			e.num(uint64(size / 8))
			putMember(e, m)
			e.num(uint64(size / 4))
			e.str("c")
			e.bytes([]byte(`{}`))
		}), 1},
		{"a message claiming a long list", msg(kindMessage, func(e *enc) {
			e.str("u")
			e.str("f")
			e.num(uint64(size - 16))
			e.str("c")
		}), 1},
		{"deltas of the most members that fit", full(kindDeltas, size, func(e *enc) {
			e.str("peer")
			e.num(5)
			e.num(9)
		}), 2}, // each applied as read
		{"snapshot of the most members that fit", full(kindSnapshot, size, func(e *enc) {
			e.str("peer")
			e.num(4)
			e.num(0)
			e.flag(true)
		}), 16}, // what the members take once read: hub.Member is 64 bytes
	}
}

// full builds a message of kind that holds the most members that fit in
// size bytes after its header.
func full(kind byte, size int, header func(e *enc)) []byte {
	e := newEnc(wireMax, kind, size)
	header(e)
	count := (size - len(e.b) - 8) / minMemberBytes
	e.num(uint64(count))
	for range count {
		e.str("u")
		e.list(nil)
		e.str("")
		e.num(1)
	}
	return e.b
}

// TestHostileCounts: a message's counts never make a node allocate for
// more than the message holds: 1 MiB whose counts claim the most they
// could cost a fraction of its size, and one that really holds 200,000
// members costs what they take once read (a snapshot, which keeps them
// until its last part), or little more than its size (changes, applied as
// read).
func TestHostileCounts(t *testing.T) {
	n, err := New(Options{URL: "nats://127.0.0.1:1", Prefix: "hostile", Heartbeat: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer n.nc.Close()
	n.local = fuzzLocal{}
	for _, h := range hostile(1 << 20) {
		msg := &nats.Msg{Subject: "hostile.x", Reply: "hostile.inbox.x", Data: h.data}
		best := uint64(1 << 62)
		for range 3 { // the least of three: another goroutine may allocate meanwhile
			n.tbl.init(wireMin, wireMax)
			n.tbl.dead["peer"] = &deadPeer{gone: map[string]bool{"u": true}}
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			n.onUser(msg)
			n.onNodes(msg)
			n.onInbox(msg)
			runtime.ReadMemStats(&after)
			best = min(best, after.TotalAlloc-before.TotalAlloc)
		}
		ratio := float64(best) / float64(len(h.data))
		t.Logf("%s: %d bytes allocated for %d (%.2f×)", h.name, best, len(h.data), ratio)
		if ratio > h.ratio {
			t.Errorf("%s: %d bytes allocated for a message of %d (%.1f×, want at most %g×)", h.name, best, len(h.data), ratio, h.ratio)
		}
	}
}
