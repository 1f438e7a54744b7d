package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
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
	removed    []string // uids
	unremoved  []string // uids
	members    map[string]Member
	subs       map[string]int
	remote     map[string]int
	admission  Admission
	released   int
	readies    int
	stamp      int64
	// what the fabric had been told when Ready was last called
	readyMembers map[string]Member
	readySubs    map[string]int
	busy         map[string][]string
	remoteAddr   map[string]string
	changes      int // UserChanged calls
}

func newFakeFabric() *fakeFabric {
	return &fakeFabric{members: map[string]Member{}, subs: map[string]int{}, remote: map[string]int{}, remoteAddr: map[string]string{}, busy: map[string][]string{}, admission: Unavailable}
}

func (f *fakeFabric) Start(l Local) { f.local = l }
func (f *fakeFabric) Ready(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.readies++
	f.readyMembers = maps.Clone(f.members)
	f.readySubs = maps.Clone(f.subs)
	return nil
}
func (f *fakeFabric) Stamp() int64 { f.mu.Lock(); defer f.mu.Unlock(); f.stamp++; return f.stamp }
func (f *fakeFabric) Busy(uid string) ([]string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	homes, ok := f.busy[uid]
	return homes, ok
}
func (f *fakeFabric) Broadcast(_, _ string, p []byte) {
	f.mu.Lock()
	f.broadcasts = append(f.broadcasts, string(p))
	f.mu.Unlock()
}
func (f *fakeFabric) Linked(string) bool { return true }
func (f *fakeFabric) Relay(m Message)    { f.mu.Lock(); f.relayed = append(f.relayed, m); f.mu.Unlock() }
func (f *fakeFabric) Punt(uid, sessid string, _ int64) {
	f.mu.Lock()
	f.punts = append(f.punts, uid+"/"+sessid)
	f.mu.Unlock()
}
func (f *fakeFabric) Remove(uid string) {
	f.mu.Lock()
	f.removed = append(f.removed, uid)
	f.mu.Unlock()
}
func (f *fakeFabric) Unremove(uid string) {
	f.mu.Lock()
	f.unremoved = append(f.unremoved, uid)
	f.mu.Unlock()
}
func (f *fakeFabric) UserChanged(m Member) {
	f.mu.Lock()
	f.members[m.UID] = m
	f.changes++
	f.mu.Unlock()
}
func (f *fakeFabric) UserLeft(uid string)  { f.mu.Lock(); delete(f.members, uid); f.mu.Unlock() }
func (f *fakeFabric) Subscribed(ch string) { f.mu.Lock(); f.subs[ch]++; f.mu.Unlock() }
func (f *fakeFabric) Unsubscribed(ch string) {
	f.mu.Lock()
	f.subs[ch]--
	f.mu.Unlock()
}
func (f *fakeFabric) RemoteAddr(uid string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.remoteAddr[uid]
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
	uid := "a@" + fixtures.Domain
	fab.snapshot(func() {
		// The login's reply waited for the fabric, after the hub had
		// told it of the member.
		if fab.readies != 1 || fab.readyMembers[uid].Conns != 1 {
			t.Errorf("login: Ready called %d times, the member as %+v then", fab.readies, fab.readyMembers[uid])
		}
	})
	result(t, a.call(2, "verto.subscribe", map[string]any{"eventChannel": "room"}))
	fab.snapshot(func() {
		if m := fab.members[uid]; m.Conns != 1 || len(m.Homes) != 1 || m.Homes[0] != "room" {
			t.Errorf("member announced as %+v", m)
		}
		if fab.subs["room"] != 1 {
			t.Errorf("subscriptions %v", fab.subs)
		}
		// …and so did the subscription's, after the subscription.
		if fab.readies != 2 || fab.readySubs["room"] != 1 {
			t.Errorf("subscribe: Ready called %d times, subscriptions %v then", fab.readies, fab.readySubs)
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

	// A direct message goes to the fabric whether or not the target is
	// here: it may have a connection elsewhere the hub has not heard of.
	result(t, a.call(4, "verto.info", map[string]any{"msg": map[string]any{"to": "b", "body": "m1"}}))
	b := dial(t, th, "b", nil)
	b.login("b", "pw", "sb")
	result(t, a.call(5, "verto.info", map[string]any{"msg": map[string]any{"to": "b", "body": "m2"}}))
	b.recv()
	// (The local delivery may reach b before the hub hands m2 to the
	// fabric; a's reply comes after both.)
	result(t, a.call(7, "echo", map[string]any{"after": "m2"}))
	fab.snapshot(func() {
		if len(fab.relayed) != 2 || fab.relayed[0].Body != "m1" || fab.relayed[1].Body != "m2" || fab.relayed[0].Sender != uid || len(fab.relayed[0].FromHomes) != 1 {
			t.Errorf("relayed %+v", fab.relayed)
		}
	})
	// Another hub's message reaches b, but not from another channel: the
	// marker delivered after the spam is the next frame b gets.
	fab.local.Message(Message{From: "a", FromHomes: []string{"room"}, Target: "b@" + fixtures.Domain, Body: "m3"})
	if msg := b.recv()["params"].(map[string]any)["msg"].(map[string]any); msg["body"] != "m3" {
		t.Errorf("remote message %v", msg)
	}
	fab.local.Message(Message{From: "x", FromHomes: []string{"other"}, Target: "b@" + fixtures.Domain, Body: "spam"})
	fab.local.Message(Message{From: "a", FromHomes: []string{"room"}, Target: "b@" + fixtures.Domain, Body: "marker"})
	if msg := b.recv()["params"].(map[string]any)["msg"].(map[string]any); msg["body"] != "marker" {
		t.Errorf("a message from another channel was delivered: %v", msg)
	}

	// A recipient another hub says is busy is refused, as one here would
	// be, to members of its channels (to others it does not exist).
	fab.mu.Lock()
	fab.busy["b@"+fixtures.Domain] = []string{"room"}
	fab.mu.Unlock()
	if e := errorOf(t, a.call(6, "verto.info", map[string]any{"msg": map[string]any{"to": "b", "body": "m4"}})); e["message"] != "Recipient is busy" || e["code"] != float64(-32010) {
		t.Errorf("a recipient busy on another hub: %v", e)
	}
	x := dial(t, th, "x", nil)
	x.login("x", "pw", "sx")
	result(t, x.call(2, "verto.info", map[string]any{"msg": map[string]any{"to": "b", "body": "m5"}}))
	fab.mu.Lock()
	delete(fab.busy, "b@"+fixtures.Domain)
	fab.mu.Unlock()
	if h, busy := fab.local.Busy("b@" + fixtures.Domain); busy {
		t.Errorf("b's queue here is empty, yet busy (homes %v)", h)
	}

	// A login with a chosen sessid asks the other hubs to punt it (the
	// fabric sends it to those where the user is); a remote takeover
	// punts the session here if it is older, and keeps it if newer,
	// saying so with its stamp.
	fab.mu.Lock()
	fab.remote["b@"+fixtures.Domain] = 1
	fab.mu.Unlock()
	b2 := dial(t, th, "b2", nil)
	b2.login("b", "pw", "sb2")
	var b2at int64
	fab.snapshot(func() {
		if len(fab.punts) != 4 || fab.punts[3] != "b@"+fixtures.Domain+"/sb2" {
			t.Errorf("punts %v", fab.punts)
		}
		b2at = fab.stamp
	})
	var asked []int64
	if kept, held := fab.local.Punt("b@"+fixtures.Domain, "sb2", func(at int64) bool { asked = append(asked, at); return false }); !held || kept != b2at {
		t.Errorf("a newer session: kept %d (held %v), want its stamp %d", kept, held, b2at)
	}
	if _, held := fab.local.Punt("b@"+fixtures.Domain, "sb", func(at int64) bool { asked = append(asked, at); return true }); held {
		t.Error("an older session was kept")
	}
	if r := b.recv(); r["method"] != "verto.punt" {
		t.Errorf("remote takeover: %v", r)
	}
	if len(asked) != 2 || asked[0] != b2at || asked[1] >= b2at {
		t.Errorf("the takeover compared the stamps %v (b2's is %d)", asked, b2at)
	}
	if _, held := fab.local.Punt("b@"+fixtures.Domain, "none", func(int64) bool { return true }); held {
		t.Error("a session nobody holds was held")
	}
	// The last local connection of b closes while b is elsewhere: no
	// disconnect report (counted after Shutdown below, which waits for
	// every report).
	b2.ws.CloseNow()

	// A member gone with its hub leaves, for those here; one here does
	// not (the marker event is a's next frame).
	c := "c@" + fixtures.Domain
	fab.local.Gone(Member{UID: c, Homes: []string{"room"}, Addr: "1.2.3.4:5"}, true)
	ev = a.recv()
	if p := ev["params"].(map[string]any); p["eventData"] != "bye" || p["userid"] != c {
		t.Errorf("leave event %v", ev)
	}
	fab.local.Gone(Member{UID: uid, Homes: []string{"room"}}, true)
	fab.local.Event(c, "room", []byte(`{"eventChannel":"room","eventData":"marker 1"}`))
	if p := a.recv()["params"].(map[string]any); p["eventData"] != "marker 1" {
		t.Errorf("a leave for a member here: %v", p)
	}
	// …and is back when its hub was only silent: its announcement again,
	// and its login reported again; nothing for a member here.
	hello := `{"eventChannel":"room","eventData":"hello","userid":"` + c + `","sessid":"sc"}`
	fab.local.Back(Member{UID: c, Homes: []string{"room"}, Addr: "1.2.3.4:5"}, map[string][]byte{"room": []byte(hello)}, true)
	if p := a.recv()["params"].(map[string]any); p["eventData"] != "hello" || p["userid"] != c || p["subscribedChannel"] != "room" {
		t.Errorf("announcement given back: %v", p)
	}
	fab.local.Back(Member{UID: uid, Homes: []string{"room"}}, map[string][]byte{"room": []byte(`{"eventData":"stale"}`)}, true)
	fab.local.Event(c, "room", []byte(`{"eventChannel":"room","eventData":"marker 2"}`))
	if p := a.recv()["params"].(map[string]any); p["eventData"] != "marker 2" {
		t.Errorf("an announcement given back for a member here: %v", p)
	}

	// Every report is in once the hub has shut down.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := th.h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	got := reported(gw, "verto_client_disconnect")
	if want := []string{"a@" + fixtures.Domain, c + " 1.2.3.4:5", "x@" + fixtures.Domain}; !slices.Equal(got, want) {
		t.Errorf("disconnect reports %q, want %q: c gone with its hub, a and x shut down; none for b, elsewhere", got, want)
	}
	if got := reported(gw, "verto_client_login"); !slices.Contains(got, "c 1.2.3.4:5") {
		t.Errorf("login reports %q: none for c, back", got)
	}
}

// reported lists, sorted, the login of each report of action, with the
// address for c, the member of another hub (the others' are the test's
// sockets').
func reported(gw *dirGateway, action string) []string {
	gw.mu.Lock()
	defer gw.mu.Unlock()
	var out []string
	for _, r := range gw.reports {
		if r.Get("action") != action || r.Get("success") == "0" {
			continue
		}
		if login := r.Get("login"); strings.HasPrefix(login, "c") {
			out = append(out, login+" "+r.Get("address"))
		} else {
			out = append(out, login)
		}
	}
	slices.Sort(out)
	return out
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

// TestRefusedLoginChangesNothing: a login the cluster's count refuses
// (full, or not countable now) takes over no session, tells the fabric
// nothing and reports nothing, even with the sessid of a live connection
// of the same user: that one keeps its session and its events. (It used
// to be attached first: the live tab lost its events without being
// punted, and the refused socket's close reported a disconnect with an
// empty login.)
func TestRefusedLoginChangesNothing(t *testing.T) {
	for _, refusal := range []struct {
		admission Admission
		message   string
	}{
		{Full, "Channel is full"},
		{Undecided, "Channel busy, try again shortly"},
	} {
		t.Run(refusal.message, func(t *testing.T) {
			gw := newDirGateway()
			gw.add("a", "pw", "room")
			gw.add("b", "pw", "room")
			fab := newFakeFabric()
			th := startHub(t, gw, func(o *Options) {
				o.Fabric = fab
				o.MaxClientsPerChannel = 2
			})
			fab.admission = Admitted
			a := dial(t, th, "a", nil)
			a.login("a", "pw", "sa")
			result(t, a.call(2, "verto.subscribe", map[string]any{"eventChannel": "room"}))
			b := dial(t, th, "b", nil)
			b.login("b", "pw", "sb")
			var changes, reports int
			fab.snapshot(func() {
				fab.admission = refusal.admission
				changes = fab.changes
			})
			reports = len(gw.reportList())

			again := dial(t, th, "a again", nil)
			again.send(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "login", "params": map[string]any{"login": "a", "passwd": "pw", "sessid": "sa"}})
			if e := errorOf(t, again.recv()); e["message"] != refusal.message {
				t.Fatalf("refused login: %v", e)
			}
			for f, ok := again.next(5 * time.Second); !f.closed; f, ok = again.next(5 * time.Second) {
				if !ok {
					t.Fatal("the refused socket stays open")
				}
			}
			fab.snapshot(func() {
				if fab.changes != changes || fab.released != 0 {
					t.Errorf("a refused login told the fabric: %d member changes, %d releases", fab.changes-changes, fab.released)
				}
			})
			// The live tab was neither punted nor cut off: b's broadcast
			// reaches it, and nothing came before it.
			result(t, b.call(2, "verto.broadcast", map[string]any{"eventChannel": "room", "eventData": "still here", "localBroadcast": true}))
			if f := a.recv(); f["method"] != "verto.event" || f["params"].(map[string]any)["eventData"] != "still here" {
				t.Fatalf("the live tab got %v", f)
			}
			// Once the hub has let the refused socket go, a marker's login
			// report comes after anything its close could have reported.
			waitFor(t, "the refused socket gone", func() bool {
				conns, _, _, _ := th.h.reg.counts()
				return conns == 2
			})
			gw.add("m", "pw", "other")
			fab.snapshot(func() { fab.admission = Admitted })
			m := dial(t, th, "marker", nil)
			m.login("m", "pw", "sm")
			waitFor(t, "the marker's login report", func() bool {
				for _, r := range gw.reportList()[reports:] {
					if r.Get("login") == "m" {
						return true
					}
				}
				return false
			})
			for _, r := range gw.reportList()[reports:] {
				if r.Get("login") != "m" {
					t.Errorf("a refused login reported %v", r)
				}
			}
		})
	}
}

// waitSubscribers waits until channel has n subscriptions on the hub.
func waitSubscribers(t *testing.T, th *testHub, channel string, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d subscriptions to %s", n, channel), func() bool {
		th.h.reg.mu.RLock()
		defer th.h.reg.mu.RUnlock()
		tp := th.h.reg.channels[channel]
		return tp != nil && len(tp.subs) == n
	})
}
