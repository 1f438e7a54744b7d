package hub

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"channels/internal/fixtures"
)

// fakeFabric records what a hub hands to the other hubs and plays their
// part: remote connections per user, and a place count.
type fakeFabric struct {
	mu         sync.Mutex
	local      Local
	broadcasts []string // params
	relayed    []Message
	punts      []string
	members    map[string]Member
	subs       map[string]int
	remote     map[string]int
	admission  Admission
	released   int
}

func newFakeFabric() *fakeFabric {
	return &fakeFabric{members: map[string]Member{}, subs: map[string]int{}, remote: map[string]int{}, admission: Unavailable}
}

func (f *fakeFabric) Start(l Local) { f.local = l }
func (f *fakeFabric) Broadcast(_, _ string, p []byte) {
	f.mu.Lock()
	f.broadcasts = append(f.broadcasts, string(p))
	f.mu.Unlock()
}
func (f *fakeFabric) Relay(m Message) { f.mu.Lock(); f.relayed = append(f.relayed, m); f.mu.Unlock() }
func (f *fakeFabric) Punt(uid, sessid string, _ time.Time) {
	f.mu.Lock()
	f.punts = append(f.punts, uid+"/"+sessid)
	f.mu.Unlock()
}
func (f *fakeFabric) UserChanged(m Member) { f.mu.Lock(); f.members[m.UID] = m; f.mu.Unlock() }
func (f *fakeFabric) UserLeft(uid string)  { f.mu.Lock(); delete(f.members, uid); f.mu.Unlock() }
func (f *fakeFabric) Subscribed(ch string) { f.mu.Lock(); f.subs[ch]++; f.mu.Unlock() }
func (f *fakeFabric) Unsubscribed(ch string) {
	f.mu.Lock()
	f.subs[ch]--
	f.mu.Unlock()
}
func (f *fakeFabric) RemoteConns(uid string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.remote[uid]
}
func (f *fakeFabric) Admit(context.Context, string, []string, int) Admission {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.admission
}
func (f *fakeFabric) Release(string) { f.mu.Lock(); f.released++; f.mu.Unlock() }

func (f *fakeFabric) snapshot(fn func()) { f.mu.Lock(); defer f.mu.Unlock(); fn() }

// TestFabric: what a hub hands to the fabric, and what it does with what
// the fabric brings from other hubs.
func TestFabric(t *testing.T) {
	gw := newDirGateway()
	gw.add("a", "pw", "room")
	gw.add("b", "pw", "room")
	gw.add("x", "pw", "other")
	fab := newFakeFabric()
	th := startHub(t, gw, func(o *Options) {
		o.Fabric = fab
		o.LeaveParams = func(ch string) []byte { return []byte(`{"eventChannel":"` + ch + `","eventData":"bye"}`) }
	})
	a := dial(t, th, "a", nil)
	a.login("a", "pw", "sa")
	result(t, a.call(2, "verto.subscribe", map[string]any{"eventChannel": "room"}))
	uid := "a@" + fixtures.Domain
	fab.snapshot(func() {
		if m := fab.members[uid]; m.Conns != 1 || len(m.Homes) != 1 || m.Homes[0] != "room" {
			t.Errorf("member announced as %+v", m)
		}
		if fab.subs["room"] != 1 {
			t.Errorf("subscriptions %v", fab.subs)
		}
	})

	// A broadcast goes out stamped, once.
	result(t, a.call(3, "verto.broadcast", map[string]any{"eventChannel": "room", "eventData": "hi", "localBroadcast": true}))
	a.recv() // its own event
	fab.snapshot(func() {
		if len(fab.broadcasts) != 1 {
			t.Fatalf("broadcasts %v", fab.broadcasts)
		}
		var p map[string]any
		_ = json.Unmarshal([]byte(fab.broadcasts[0]), &p)
		if p["userid"] != uid || p["sessid"] != "sa" || p["eventData"] != "hi" || p["eventSerno"] != nil {
			t.Errorf("published %v", p)
		}
	})

	// Another hub's event reaches the local subscriber with its eventSerno.
	fab.local.Event("b@"+fixtures.Domain, "room", []byte(`{"eventChannel":"room","eventData":"from b","userid":"b@`+fixtures.Domain+`"}`))
	ev := a.recv()
	if p := ev["params"].(map[string]any); p["eventData"] != "from b" || p["eventSerno"] != float64(1) || p["subscribedChannel"] != "room" {
		t.Errorf("remote event delivered as %v", ev)
	}

	// A direct message to a user not here goes to the fabric; to one here
	// only, not.
	result(t, a.call(4, "verto.info", map[string]any{"msg": map[string]any{"to": "b", "body": "m1"}}))
	b := dial(t, th, "b", nil)
	b.login("b", "pw", "sb")
	result(t, a.call(5, "verto.info", map[string]any{"msg": map[string]any{"to": "b", "body": "m2"}}))
	b.recv()
	fab.snapshot(func() {
		if len(fab.relayed) != 1 || fab.relayed[0].Body != "m1" || fab.relayed[0].Sender != uid || len(fab.relayed[0].FromHomes) != 1 {
			t.Errorf("relayed %+v", fab.relayed)
		}
	})
	// Another hub's message reaches b, but not from another channel.
	fab.local.Message(Message{From: "a", FromHomes: []string{"room"}, Target: "b@" + fixtures.Domain, Body: "m3"})
	if msg := b.recv()["params"].(map[string]any)["msg"].(map[string]any); msg["body"] != "m3" {
		t.Errorf("remote message %v", msg)
	}
	fab.local.Message(Message{From: "x", FromHomes: []string{"other"}, Target: "b@" + fixtures.Domain, Body: "spam"})
	b.quiet(100 * time.Millisecond)

	// A login with a chosen sessid asks the other hubs to punt it (the
	// fabric sends it to those where the user is); a remote takeover punts
	// the session here.
	fab.mu.Lock()
	fab.remote["b@"+fixtures.Domain] = 1
	fab.mu.Unlock()
	b2 := dial(t, th, "b2", nil)
	b2.login("b", "pw", "sb2")
	fab.snapshot(func() {
		if len(fab.punts) != 3 || fab.punts[2] != "b@"+fixtures.Domain+"/sb2" {
			t.Errorf("punts %v", fab.punts)
		}
	})
	fab.local.Punt("b@"+fixtures.Domain, "sb", time.Now())
	if r := b.recv(); r["method"] != "verto.punt" {
		t.Errorf("remote takeover: %v", r)
	}
	// The last local connection of b closes while b is elsewhere: no
	// disconnect report.
	reports := gw.reportCount("verto_client_disconnect")
	b2.ws.CloseNow()
	time.Sleep(100 * time.Millisecond)
	if n := gw.reportCount("verto_client_disconnect"); n != reports {
		t.Errorf("a disconnect report for a user still connected elsewhere")
	}

	// A member gone with its hub leaves, for those here.
	fab.local.Gone(Member{UID: "c@" + fixtures.Domain, Homes: []string{"room"}, Addr: "1.2.3.4:5"}, true)
	ev = a.recv()
	if p := ev["params"].(map[string]any); p["eventData"] != "bye" || p["userid"] != "c@"+fixtures.Domain {
		t.Errorf("leave event %v", ev)
	}
	time.Sleep(100 * time.Millisecond)
	if n := gw.reportCount("verto_client_disconnect"); n != reports+1 {
		t.Errorf("no disconnect report for a member gone with its hub")
	}
	// …unless it is here now.
	fab.local.Gone(Member{UID: uid, Homes: []string{"room"}}, true)
	a.quiet(100 * time.Millisecond)
}

// TestFabricBudgetAndPlaces: a member's broadcasts through another hub
// spend its budget here; the fabric's count decides who gets in.
func TestFabricBudgetAndPlaces(t *testing.T) {
	gw := newDirGateway()
	gw.add("a", "pw", "room")
	gw.add("b", "pw", "room")
	fab := newFakeFabric()
	th := startHub(t, gw, func(o *Options) {
		o.Fabric = fab
		o.MaxClientsPerChannel = 1
		o.BroadcastBudget = Budget{Rate: 0.001, Burst: 2}
	})
	a := dial(t, th, "a", nil)
	fab.admission = Admitted
	a.login("a", "pw", "sa")
	uid := "a@" + fixtures.Domain
	for range 2 {
		fab.local.Event(uid, "room", []byte(`{"eventData":"elsewhere"}`))
	}
	r := a.call(2, "verto.broadcast", map[string]any{"eventChannel": "room", "eventData": "x", "localBroadcast": true})
	if e := errorOf(t, r); e["code"] != float64(-32010) {
		t.Errorf("over budget through another hub: %v", r)
	}
	// The fabric admitted a, so the local count does not refuse b; the
	// fabric's Full does.
	b := dial(t, th, "b", nil)
	b.login("b", "pw", "sb")
	fab.mu.Lock()
	fab.admission = Full
	fab.mu.Unlock()
	gw.add("c", "pw", "room")
	c := dial(t, th, "c", nil)
	c.send(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "login", "params": map[string]any{"login": "c", "passwd": "pw", "sessid": "sc"}})
	if e := errorOf(t, c.recv()); e["message"] != "Channel is full" {
		t.Errorf("full by the fabric's count: %v", e)
	}
	a.ws.CloseNow()
	b.ws.CloseNow()
	deadline := time.Now().Add(2 * time.Second)
	for {
		fab.mu.Lock()
		n := fab.released
		fab.mu.Unlock()
		if n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d places released, want 2", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
