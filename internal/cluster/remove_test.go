package cluster_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"channels/internal/cluster"
	"channels/internal/cluster/clustertest"
	"channels/internal/hub"
	"channels/internal/verto"
)

// removalHub is one hub of removalHubs.
type removalHub struct {
	h    *hub.Hub
	node *cluster.Node
	url  string // ws://…/verto
}

// removalHubs starts n hubs in this process, joined over NATS at
// natsURL, that deliver eventData "left" for a member gone (after the
// default grace).
func removalHubs(t *testing.T, natsURL string, n int) []removalHub {
	t.Helper()
	prefix := clustertest.Prefix("remove")
	var hubs []removalHub
	for range n {
		node, err := cluster.New(cluster.Options{URL: natsURL, Prefix: prefix})
		if err != nil {
			t.Fatal(err)
		}
		h := hub.New(hub.Options{
			Gateway: memGateway{}, Domain: domain, Fabric: node,
			LeaveParams: func(ch string) []byte {
				return verto.Object("eventChannel", ch, "eventData", "left", "localBroadcast", true)
			},
		})
		hubs = append(hubs, removalHub{h: h, node: node, url: serveHub(t, h, node)})
	}
	poll(t, "hubs that know each other", 10*time.Second, func() bool {
		for _, x := range hubs {
			if x.node.Stats().Nodes != n-1 {
				return false
			}
		}
		return true
	})
	return hubs
}

// closedAs waits for c's connection to close and returns its close
// status and reason.
func closedAs(t *testing.T, c *client, d time.Duration) (websocket.StatusCode, string) {
	t.Helper()
	select {
	case <-c.closed:
	case <-time.After(d):
		t.Fatalf("%s: still open %v later", c.name, d)
	}
	var ce websocket.CloseError
	if !errors.As(c.err, &ce) {
		t.Fatalf("%s: ended without a close frame: %v", c.name, c.err)
	}
	return ce.Code, ce.Reason
}

// TestClusterRemove: Remove on hub A closes every socket of the member,
// on A and on B, with 4003 "removed"; both hubs refuse its logins
// afterwards (and close the socket the same way); the members on both
// see it leave within 3 s; another member is untouched.
func TestClusterRemove(t *testing.T) {
	hubs := removalHubs(t, clustertest.NATS(t), 2)
	a, b := hubs[0], hubs[1]
	join := func(x removalHub, name, id string) *client {
		c := dialURL(t, x.url, name, nil)
		c.join(member{id: id, password: "pw", channel: "room"}, "s-"+name)
		return c
	}
	obsA, obsB := join(a, "obsA", "obs-a"), join(b, "obsB", "obs-b")
	annA, annB := join(a, "annA", "ann"), join(b, "annB", "ann")
	bob := join(b, "bob", "bob")
	ann := "ann@" + domain
	poll(t, "each hub to know ann's socket on the other", 10*time.Second, func() bool {
		return a.node.RemoteConns(ann) == 1 && b.node.RemoteConns(ann) == 1
	})

	removed := time.Now()
	a.h.Remove("ann")
	for _, c := range []*client{annA, annB} {
		code, reason := closedAs(t, c, 3*time.Second)
		if code != hub.StatusRemoved || reason != hub.ReasonRemoved {
			t.Fatalf("%s closed with %d %q, want %d %q", c.name, code, reason, hub.StatusRemoved, hub.ReasonRemoved)
		}
		t.Logf("%s closed %v after Remove on A", c.name, time.Since(removed))
	}
	isLeave := func(f map[string]any) bool {
		return f["method"] == "verto.event" && params(f)["eventData"] == "left" && params(f)["userid"] == ann
	}
	for _, c := range []*client{obsA, obsB} {
		c.waitFor(3*time.Second, "ann's leave", isLeave)
		t.Logf("%s saw ann leave %v after Remove on A", c.name, time.Since(removed))
	}

	for _, x := range hubs {
		c := dialURL(t, x.url, "ann again", nil)
		r := c.login(member{id: "ann", password: "pw"}, "s-annB")
		if !strings.HasPrefix(errorCode(r), "-32001 ") {
			t.Fatalf("ann's login after its removal: %v, want refused", r)
		}
		if code, reason := closedAs(t, c, 3*time.Second); code != hub.StatusRemoved || reason != hub.ReasonRemoved {
			t.Fatalf("refused login closed with %d %q", code, reason)
		}
	}

	// Bob is still there: his broadcast reaches the observer on A.
	if r := bob.broadcast("room", "bob is here"); r["result"] == nil {
		t.Fatalf("bob's broadcast: %v", r)
	}
	obsA.waitFor(3*time.Second, "bob's broadcast", isEvent("bob is here"))
	if a.node.RemoteConns(ann) != 0 || b.node.RemoteConns(ann) != 0 {
		t.Error("a hub still counts ann's connections on the other")
	}
}

// TestClusterUnremove: after Remove on hub A, both hubs refuse the
// member's logins; Unremove on A lets it log in again on A at once and on
// B as soon as B has heard it, well before the refusal would end.
func TestClusterUnremove(t *testing.T) {
	hubs := removalHubs(t, clustertest.NATS(t), 2)
	a, b := hubs[0], hubs[1]
	login := func(x removalHub, name, sessid string) map[string]any {
		c := dialURL(t, x.url, name, nil)
		return c.login(member{id: "ann", password: "pw"}, sessid)
	}
	// mark, on B, is a barrier: removed from A after the unremove, on the
	// same subject, so its close proves B has heard the unremove.
	mark := dialURL(t, b.url, "mark", nil)
	mark.join(member{id: "mark", password: "pw", channel: "room"}, "s-mark")
	annB := dialURL(t, b.url, "annB", nil)
	annB.join(member{id: "ann", password: "pw", channel: "room"}, "s-ann")

	a.h.Remove("ann")
	if code, _ := closedAs(t, annB, 3*time.Second); code != hub.StatusRemoved {
		t.Fatalf("ann's socket on B closed with %d", code)
	}
	for _, x := range []removalHub{a, b} {
		if r := login(x, "ann refused", "s-ann"); !strings.HasPrefix(errorCode(r), "-32001 ") {
			t.Fatalf("ann's login after its removal: %v, want refused", r)
		}
	}

	a.h.Unremove("ann")
	if r := login(a, "ann on A", "s-ann-a"); r["result"] == nil {
		t.Fatalf("ann's login on A after Unremove: %v", r)
	}
	a.h.Remove("mark")
	if code, _ := closedAs(t, mark, 3*time.Second); code != hub.StatusRemoved {
		t.Fatalf("mark's socket on B closed with %d", code)
	}
	if r := login(b, "ann on B", "s-ann-b"); r["result"] == nil {
		t.Fatalf("ann's login on B after Unremove on A: %v", r)
	}
}
