package hub

import (
	"context"
	"net/url"
	"slices"
	"sync"
	"testing"
	"time"

	"channels/internal/fixtures"
	"channels/internal/verto"
)

// closedWith reads c's frames until its connection closes, and returns
// the close.
func closedWith(t *testing.T, c *wsClient) clientFrame {
	t.Helper()
	for {
		f, ok := c.next(5 * time.Second)
		if !ok {
			t.Fatalf("%s: still open 5 s later", c.name)
		}
		if f.closed {
			return f
		}
	}
}

// wantRemoved checks that c was closed with StatusRemoved and "removed".
func wantRemoved(t *testing.T, c *wsClient) {
	t.Helper()
	if f := closedWith(t, c); f.status != StatusRemoved || f.reason != ReasonRemoved {
		t.Fatalf("%s: closed with %d %q, want %d %q", c.name, f.status, f.reason, StatusRemoved, ReasonRemoved)
	}
}

// wantRefused logs in as user on a new socket and checks that the login
// is refused and the socket closed as removed.
func wantRefused(t *testing.T, th *testHub, user, sessid string) {
	t.Helper()
	c := dial(t, th, user+" again", nil)
	r := c.call(1, "login", map[string]any{"login": user, "passwd": "pw", "sessid": sessid})
	if e := errorOf(t, r); e["code"] != float64(verto.CodeAuthFailed) {
		t.Fatalf("%s's login after its removal: %v, want error %d", user, r, verto.CodeAuthFailed)
	}
	wantRemoved(t, c)
}

// TestRemove: removing a member closes both of its sockets with 4003
// "removed", the others get its leave once, another member is not
// touched, and its logins are refused (reply and close) while the
// directory still accepts them.
func TestRemove(t *testing.T) {
	const room = "room-1"
	gw := newDirGateway()
	th, scrape := meteredHub(t, gw, leaveOptions(100*time.Millisecond))
	for _, id := range []string{"ann", "bob", "obs"} {
		gw.add(id, "pw", room)
	}
	obs := joined(t, th, gw, "obs", "s-obs", room)
	bob := joined(t, th, gw, "bob", "s-bob", room)
	tab1 := joined(t, th, gw, "ann", "s-1", room)
	tab2 := joined(t, th, gw, "ann", "s-2", room)
	failedBefore := scrape().Sum("channels_hub_login_failures_total")

	removed := time.Now()
	th.h.Remove("ann") // the directory's bare client id
	wantRemoved(t, tab1)
	wantRemoved(t, tab2)
	if d, u := nextEvent(t, obs); d != "left" || u != "ann@"+fixtures.Domain {
		t.Fatalf("observer got %q from %q, want ann's leave", d, u)
	}
	t.Logf("leave seen %v after Remove (grace 100 ms)", time.Since(removed))
	if d, u := nextEvent(t, bob); d != "left" || u != "ann@"+fixtures.Domain {
		t.Fatalf("bob got %q from %q, want ann's leave", d, u)
	}

	// Bob is untouched: his broadcast goes out, and reaches the observer
	// right after the one leave.
	marker(t, bob, room)
	if d, u := nextEvent(t, obs); d != "marker" || u != "bob@"+fixtures.Domain {
		t.Fatalf("observer got %q from %q, want bob's marker", d, u)
	}

	wantRefused(t, th, "ann", "s-1")
	wantRefused(t, th, "ann", "s-new")
	if th.h.reg.isMember("ann@" + fixtures.Domain) {
		t.Fatal("ann is registered again")
	}
	if got := scrape().Sum("channels_hub_login_failures_total") - failedBefore; got != 2 {
		t.Errorf("%v refused logins counted, want 2", got)
	}
	if n := gw.reportCount("verto_client_disconnect"); n != 1 {
		t.Errorf("%d disconnect reports, want 1 (ann's)", n)
	}
	marker(t, obs, room) // no second leave came before it
}

// gatedGateway holds the first directory lookup of one user until
// released, so that a test can remove the user while its login is
// between the directory and the registry.
type gatedGateway struct {
	*dirGateway
	user    string
	once    sync.Once
	asked   chan struct{}
	release chan struct{}
}

func (g *gatedGateway) Respond(ctx context.Context, form url.Values) []byte {
	if form.Get("section") == "directory" && form.Get("user") == g.user {
		g.once.Do(func() {
			close(g.asked)
			<-g.release
		})
	}
	return g.dirGateway.Respond(ctx, form)
}

// TestRemoveRacesLogin: a login that the directory accepted just before
// the removal, and that attaches just after it, is refused: the hub
// checks the refusal where it registers the login, not only before the
// lookup.
func TestRemoveRacesLogin(t *testing.T) {
	gw := &gatedGateway{dirGateway: newDirGateway(), user: "ann", asked: make(chan struct{}), release: make(chan struct{})}
	gw.add("ann", "pw", "room")
	th := startHub(t, gw, nil)
	c := dial(t, th, "ann", nil)
	c.send(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "login", "params": map[string]any{"login": "ann", "passwd": "pw", "sessid": "s"}})
	<-gw.asked // the directory is answering ann's login
	th.h.Remove("ann")
	close(gw.release)
	if e := errorOf(t, c.recv()); e["code"] != float64(verto.CodeAuthFailed) {
		t.Fatalf("the racing login: %v, want refused", e)
	}
	wantRemoved(t, c)
	if th.h.reg.isMember("ann@" + fixtures.Domain) {
		t.Fatal("the racing login is registered")
	}
}

// TestRemoveThroughFabric: Remove asks the other hubs to remove the
// user (by id@domain); a removal from another hub closes the local
// connections and refuses logins here; a member removed while its hub
// was cut off is not given back when that hub is heard again.
func TestRemoveThroughFabric(t *testing.T) {
	const room = "room"
	gw := newDirGateway()
	fab := newFakeFabric()
	var heardMu sync.Mutex
	var heard []string // what Options.Removed was told
	th := startHub(t, gw, func(o *Options) {
		o.Fabric = fab
		o.Removed = func(id string) {
			heardMu.Lock()
			heard = append(heard, id)
			heardMu.Unlock()
		}
		leaveOptions(50 * time.Millisecond)(o)
	})
	gw.add("ann", "pw", room)
	gw.add("obs", "pw", room)
	obs := joined(t, th, gw, "obs", "s-obs", room)

	th.h.Remove("carl@" + fixtures.Domain) // on no hub here: the others are asked all the same
	th.h.Remove("dan")
	fab.snapshot(func() {
		if want := []string{"carl@" + fixtures.Domain, "dan@" + fixtures.Domain}; !slices.Equal(fab.removed, want) {
			t.Errorf("fabric asked to remove %q, want %q", fab.removed, want)
		}
	})

	ann := joined(t, th, gw, "ann", "s-ann", room)
	fab.local.Remove("ann@" + fixtures.Domain)
	wantRemoved(t, ann)
	if d, u := nextEvent(t, obs); d != "left" || u != "ann@"+fixtures.Domain {
		t.Fatalf("observer got %q from %q, want ann's leave", d, u)
	}
	wantRefused(t, th, "ann", "s-ann")
	heardMu.Lock()
	if want := []string{"carl", "dan", "ann"}; !slices.Equal(heard, want) {
		t.Errorf("Options.Removed heard %q, want %q (its own removals and another hub's, without the domain)", heard, want)
	}
	heardMu.Unlock()

	// Another hub, taken for dead, is heard again with the removed member
	// and with another one: only the other one is announced again.
	hello := func(uid string) []byte {
		return verto.Object("eventChannel", room, "eventData", "hello", "userid", uid, "localBroadcast", true)
	}
	fab.local.Back(Member{UID: "carl@" + fixtures.Domain, Homes: []string{room}}, map[string][]byte{room: hello("carl@" + fixtures.Domain)}, false)
	fab.local.Back(Member{UID: "eve@" + fixtures.Domain, Homes: []string{room}}, map[string][]byte{room: hello("eve@" + fixtures.Domain)}, false)
	if d, u := nextEvent(t, obs); d != "hello" || u != "eve@"+fixtures.Domain {
		t.Fatalf("observer got %q from %q, want only eve back", d, u)
	}
}

// TestUnremove: a removed member's logins are refused until Unremove,
// then accepted at once, well before Options.RemovedRefusal is over;
// Unremove asks the other hubs to do the same (by id@domain), and an
// unremove from another hub lifts the refusal here too.
func TestUnremove(t *testing.T) {
	const room = "room"
	gw := newDirGateway()
	fab := newFakeFabric()
	th := startHub(t, gw, func(o *Options) {
		o.Fabric = fab
		o.RemovedRefusal = time.Hour
	})
	gw.add("ann", "pw", room)
	gw.add("bob", "pw", room)

	ann := joined(t, th, gw, "ann", "s-1", room)
	th.h.Remove("ann")
	wantRemoved(t, ann)
	wantRefused(t, th, "ann", "s-1")
	th.h.Unremove("ann") // the directory's bare client id
	joined(t, th, gw, "ann", "s-2", room)
	fab.snapshot(func() {
		if want := []string{"ann@" + fixtures.Domain}; !slices.Equal(fab.unremoved, want) {
			t.Errorf("fabric asked to unremove %q, want %q", fab.unremoved, want)
		}
	})
	th.h.Unremove("carl") // never removed: nothing to lift, the others are asked all the same

	// Removed, then unremoved, by another hub.
	bob := joined(t, th, gw, "bob", "s-bob", room)
	fab.local.Remove("bob@" + fixtures.Domain)
	wantRemoved(t, bob)
	wantRefused(t, th, "bob", "s-bob")
	fab.local.Unremove("bob@" + fixtures.Domain)
	joined(t, th, gw, "bob", "s-bob2", room)
}

// TestRefusals: the set of removed users forgets refusals that ended,
// keeps the later end of two, and holds at most its bound, forgetting
// the refusal that ends first.
func TestRefusals(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	at := func(d time.Duration) func() time.Time { return func() time.Time { return t0.Add(d) } }
	var s refusals
	if s.has("a", at(0)) || s.until != nil {
		t.Fatal("an empty set refuses, or holds memory")
	}
	s.add("a", t0, t0.Add(2*time.Minute), 3)
	s.add("a", t0, t0.Add(time.Minute), 3) // an earlier end does not shorten it
	s.add("b", t0, t0.Add(time.Minute), 3)
	s.add("c", t0, t0.Add(3*time.Minute), 3)
	s.add("d", t0, t0.Add(4*time.Minute), 3) // full: b, ending first, goes
	tests := []struct {
		uid  string
		when time.Duration
		want bool
	}{
		{"a", 0, true},
		{"a", 90 * time.Second, true},
		{"a", 2 * time.Minute, false},
		{"b", 0, false},
		{"c", 179 * time.Second, true},
		{"d", 0, true},
		{"e", 0, false},
	}
	for _, tc := range tests {
		if got := s.has(tc.uid, at(tc.when)); got != tc.want {
			t.Errorf("%s refused at +%v: %v, want %v", tc.uid, tc.when, got, tc.want)
		}
	}
	s.add("e", t0.Add(150*time.Second), t0.Add(5*time.Minute), 3) // a has ended: forgotten
	if len(s.until) != 3 || s.has("a", at(0)) {
		t.Errorf("after a's end the set holds %v", s.until)
	}
	if !s.drop("d") || s.has("d", at(0)) || len(s.until) != 2 {
		t.Errorf("after d's unremove the set holds %v", s.until)
	}
	if s.drop("d") || s.drop("nobody") {
		t.Error("dropped a refusal that was not there")
	}
}
