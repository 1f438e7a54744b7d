package hub

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"channels/internal/fixtures"
	"channels/internal/verto"
)

// leaveOptions make the hub deliver eventData "left" for a member whose
// last connection closed, after grace.
func leaveOptions(grace time.Duration) func(*Options) {
	return func(o *Options) {
		o.LeaveGrace = grace
		o.LeaveParams = func(ch string) []byte {
			return verto.Object("eventChannel", ch, "eventData", "left", "localBroadcast", true)
		}
	}
}

// joined logs in as id, subscribes to room and returns the connection.
func joined(t *testing.T, th *testHub, gw *dirGateway, id, sessid, room string) *wsClient {
	t.Helper()
	c := dial(t, th, id, nil)
	c.login(id, "pw", sessid)
	result(t, c.call(2, "verto.subscribe", map[string]any{"eventChannel": room}))
	return c
}

// nextEvent returns the eventData and userid of c's next frame, which
// must be a verto.event.
func nextEvent(t *testing.T, c *wsClient) (data, user string) {
	t.Helper()
	ev := c.recv()
	p, _ := ev["params"].(map[string]any)
	if ev["method"] != "verto.event" || p == nil {
		t.Fatalf("%s: expected a verto.event, got %v", c.name, ev)
	}
	data, _ = p["eventData"].(string)
	user, _ = p["userid"].(string)
	return data, user
}

// marker broadcasts eventData "marker" from c and waits for its reply and
// its own copy; whatever observers receive before the marker was sent
// before it.
func marker(t *testing.T, c *wsClient, room string) {
	t.Helper()
	result(t, c.call(9, "verto.broadcast", map[string]any{"eventChannel": room, "eventData": "marker", "localBroadcast": true}))
	if d, _ := nextEvent(t, c); d != "marker" {
		t.Fatalf("%s: expected its marker, got %q", c.name, d)
	}
}

// noLeaveDue waits until the hub holds no leave for uid.
func noLeaveDue(t *testing.T, th *testHub, uid string) {
	t.Helper()
	waitFor(t, "no leave due for "+uid, func() bool {
		l := &th.h.leaves
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.pending[uid] == nil
	})
}

// TestLeaveWithoutGoodbye: when a member's last connection closes without
// its goodbye, the others get its leave, stamped by the hub, once; a
// second connection, or one back within the grace (a reload), keeps it.
func TestLeaveWithoutGoodbye(t *testing.T) {
	const room = "room-1"
	ann := "ann@" + fixtures.Domain

	t.Run("closed", func(t *testing.T) {
		gw := newDirGateway()
		th := startHub(t, gw, leaveOptions(200*time.Millisecond))
		gw.add("ann", "pw", room)
		gw.add("obs", "pw", room)
		obs := joined(t, th, gw, "obs", "s-obs", room)
		a := joined(t, th, gw, "ann", "s-ann", room)
		closed := time.Now()
		_ = a.ws.CloseNow() // no goodbye: a crashed tab
		if d, u := nextEvent(t, obs); d != "left" || u != ann {
			t.Fatalf("observer got %q from %q, want ann's leave", d, u)
		}
		if took := time.Since(closed); took < 200*time.Millisecond || took > 3*time.Second {
			t.Errorf("leave after %v, want the grace (200 ms) and at most 3 s", took)
		}
		noLeaveDue(t, th, ann)
		marker(t, obs, room) // no second leave before it
	})

	t.Run("another connection stays", func(t *testing.T) {
		gw := newDirGateway()
		th := startHub(t, gw, leaveOptions(50*time.Millisecond))
		gw.add("ann", "pw", room)
		gw.add("obs", "pw", room)
		joined(t, th, gw, "obs", "s-obs", room)
		tab1 := joined(t, th, gw, "ann", "s-1", room)
		joined(t, th, gw, "ann", "s-2", room)
		_ = tab1.ws.CloseNow()
		waitRegistered(t, th, 2) // the close is handled: had it been ann's last, a leave would be scheduled
		th.h.leaves.mu.Lock()
		scheduled := th.h.leaves.scheduled
		th.h.leaves.mu.Unlock()
		if scheduled != 0 {
			t.Fatalf("%d leaves scheduled for a member with another connection", scheduled)
		}
	})

	t.Run("shutdown drops the leaves due", func(t *testing.T) {
		gw := newDirGateway()
		th := startHub(t, gw, leaveOptions(time.Minute))
		gw.add("ann", "pw", room)
		a := joined(t, th, gw, "ann", "s-ann", room)
		_ = a.ws.CloseNow()
		waitFor(t, "ann's leave due", func() bool {
			l := &th.h.leaves
			l.mu.Lock()
			defer l.mu.Unlock()
			return l.pending[ann] != nil
		})
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		began := time.Now()
		if err := th.h.Shutdown(ctx); err != nil {
			t.Fatalf("shutdown with a leave due in a minute: %v after %v", err, time.Since(began))
		}
	})

	t.Run("back within the grace", func(t *testing.T) {
		gw := newDirGateway()
		th := startHub(t, gw, leaveOptions(time.Second))
		gw.add("ann", "pw", room)
		gw.add("obs", "pw", room)
		obs := joined(t, th, gw, "obs", "s-obs", room)
		a := joined(t, th, gw, "ann", "s-ann", room)
		_ = a.ws.CloseNow()
		waitRegistered(t, th, 1)
		a = joined(t, th, gw, "ann", "s-ann", room) // the reloaded page
		noLeaveDue(t, th, ann)                      // the first close's leave came due, and was dropped
		marker(t, obs, room)                        // nothing before it
		_ = a.ws.CloseNow()
		if d, u := nextEvent(t, obs); d != "left" || u != ann {
			t.Fatalf("observer got %q from %q, want ann's leave after the reloaded page closed", d, u)
		}
	})
}

// TestSilentNetworkLoss: a member whose network dies without a FIN (its
// socket stays open and answers nothing, pings included) is found by the
// hub's ping and leaves the others' lists; a member that answers pings
// stays, however long it says nothing.
func TestSilentNetworkLoss(t *testing.T) {
	const room = "room-1"
	gw := newDirGateway()
	th := startHub(t, gw, func(o *Options) {
		leaveOptions(50 * time.Millisecond)(o)
		o.PingInterval = 100 * time.Millisecond
		o.PongTimeout = 200 * time.Millisecond
	})
	gw.add("ann", "pw", room)
	gw.add("obs", "pw", room)
	obs := joined(t, th, gw, "obs", "s-obs", room) // reads all along: answers pings
	mute := dialMute(t, th)
	mute.login(t, "ann", "pw", "s-ann")
	mute.call(t, `{"jsonrpc":"2.0","id":2,"method":"verto.subscribe","params":{"eventChannel":"`+room+`"}}`)
	lost := time.Now()
	// From now on nothing reads mute's socket, so no pong goes back.
	if d, u := nextEvent(t, obs); d != "left" || u != "ann@"+fixtures.Domain {
		t.Fatalf("observer got %q from %q, want ann's leave", d, u)
	}
	t.Logf("a silent member left after %v (ping every 100 ms, pong within 200 ms, grace 50 ms)", time.Since(lost))
	// The observer, silent too but answering pings, is still there: its
	// own marker comes back.
	marker(t, obs, room)
}

// muteClient reads only when told to, so once deaf it answers no ping.
type muteClient struct{ ws *websocket.Conn }

func dialMute(t *testing.T, th *testHub) *muteClient {
	t.Helper()
	ws, _, err := websocket.Dial(t.Context(), th.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ws.CloseNow() })
	return &muteClient{ws: ws}
}

// call sends a request and reads frames until its reply.
func (m *muteClient) call(t *testing.T, req string) {
	t.Helper()
	if err := m.ws.Write(t.Context(), websocket.MessageText, []byte(req)); err != nil {
		t.Fatal(err)
	}
	for {
		_, data, err := m.ws.Read(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), `"result"`) || strings.Contains(string(data), `"error"`) {
			return
		}
	}
}

func (m *muteClient) login(t *testing.T, user, pass, sessid string) {
	t.Helper()
	m.call(t, `{"jsonrpc":"2.0","id":1,"method":"login","params":{"login":"`+user+`","passwd":"`+pass+`","sessid":"`+sessid+`"}}`)
}
