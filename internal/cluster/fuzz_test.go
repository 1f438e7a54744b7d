package cluster

import (
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
func (fuzzLocal) Charge(string, bool, int)                               {}
func (fuzzLocal) Gone(hub.Member, bool)                                  {}
func (fuzzLocal) Back(hub.Member, map[string][]byte, bool)               {}

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
	seed(kindBye, func(e *enc) { e.str("other") })
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
