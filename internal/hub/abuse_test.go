package hub

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"channels/internal/fixtures"
)

// The tests in this file are attacks one member can try against the
// others; each failed against the hub before its budgets, session keys,
// channel-scoped relay and live-connection limits existed.

// burstSubscribers sizes the four-socket burst test; CI runs 100, a
// larger run is one flag away (-burst.subscribers 2000).
var burstSubscribers = flag.Int("burst.subscribers", 100, "subscribers in TestBurstIsPaidBySender's four-socket case")

// loginResult sends a login and returns its reply, consuming the
// verto.clientReady that follows a success.
func loginResult(t *testing.T, c *wsClient, user, pass, sessid string) map[string]any {
	t.Helper()
	r := c.call(1, "login", map[string]any{"login": user, "passwd": pass, "sessid": sessid})
	if _, ok := r["result"]; ok {
		if m := c.recv(); m["method"] != "verto.clientReady" {
			t.Fatalf("%s: expected verto.clientReady, got %v", c.name, m)
		}
	}
	return r
}

// alive reports whether c's connection is still open and answering: it
// counts the verto.event frames still queued for it, then asks for an echo.
func alive(t *testing.T, c *wsClient) (events int, ok bool) {
	t.Helper()
	const echoID = 999_999
	c.send(map[string]any{"jsonrpc": "2.0", "id": echoID, "method": "echo", "params": map[string]any{}})
	for {
		f, got := c.next(5 * time.Second)
		if !got || f.closed {
			return events, false
		}
		var m map[string]any
		if json.Unmarshal(f.data, &m) != nil {
			continue // a batch's replies
		}
		if m["method"] == "verto.event" {
			events++
		}
		if fmt.Sprint(m["id"]) == fmt.Sprint(echoID) && m["result"] != nil {
			return events, true
		}
	}
}

// waitRegistered waits until the hub holds n connections.
func waitRegistered(t *testing.T, th *testHub, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if conns, _, _, _ := th.h.reg.counts(); conns == n {
			return
		}
		if time.Now().After(deadline) {
			conns, _, _, _ := th.h.reg.counts()
			t.Fatalf("%d connections registered, want %d", conns, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSessidSquatting: another member who knows a victim's sessid (every
// broadcast carries it) logs in with it while the victim is away; the
// victim's reconnect must still succeed, every time.
func TestSessidSquatting(t *testing.T) {
	gw := newDirGateway()
	th := startHub(t, gw, nil)
	gw.add("victim", "pw", "room")
	gw.add("attacker", "pw", "room")
	const sessid = "victim-sessid"
	failed := 0
	for round := range 20 {
		v := dial(t, th, fmt.Sprint("victim-", round), nil)
		loginResult(t, v, "victim", "pw", sessid)
		_ = v.ws.CloseNow() // a reload or a network blip
		waitRegistered(t, th, 0)
		a := dial(t, th, fmt.Sprint("attacker-", round), nil)
		if _, ok := loginResult(t, a, "attacker", "pw", sessid)["result"]; !ok {
			t.Fatalf("round %d: the attacker's own login failed", round)
		}
		v2 := dial(t, th, fmt.Sprint("victim-again-", round), nil)
		if _, ok := loginResult(t, v2, "victim", "pw", sessid)["result"]; !ok {
			failed++
		}
		a.quiet(20 * time.Millisecond) // and the attacker was not punted either
		_ = a.ws.CloseNow()
		_ = v2.ws.CloseNow()
		waitRegistered(t, th, 0)
	}
	if failed > 0 {
		t.Fatalf("victim locked out in %d of 20 rounds", failed)
	}
}

// burstOptions keeps the per-connection request limit out of the way, so
// the member budgets are what is tested, and makes the budgets refill so
// slowly that a slow run cannot earn tokens during the test.
func burstOptions(o *Options) {
	o.RequestRate, o.RequestBurst = 1e6, 1e6
	o.AddressBytes = unlimited // every test client is on 127.0.0.1
	o.BroadcastBudget = Budget{Rate: 1e-3, Burst: DefaultBroadcastBurst}
	o.MessageBudget = Budget{Rate: 1e-3, Burst: DefaultMessageBurst}
}

// subscribers logs in n members of room and subscribes them.
func subscribers(t *testing.T, th *testHub, gw *dirGateway, room string, n int) []*wsClient {
	t.Helper()
	var subs []*wsClient
	for i := range n {
		id := fmt.Sprintf("%s-sub%d", room, i)
		gw.add(id, "pw", room)
		c := dial(t, th, id, nil)
		c.login(id, "pw", "s")
		result(t, c.call(2, "verto.subscribe", map[string]any{"eventChannel": room}))
		subs = append(subs, c)
	}
	return subs
}

func batchOf(n int, item func(i int) map[string]any) []map[string]any {
	b := make([]map[string]any, n)
	for i := range b {
		b[i] = item(i)
	}
	return b
}

func broadcastItem(room string) func(int) map[string]any {
	return func(i int) map[string]any {
		return map[string]any{"jsonrpc": "2.0", "id": 1000 + i, "method": "verto.broadcast",
			"params": map[string]any{"eventChannel": room, "eventData": "spam", "localBroadcast": true}}
	}
}

func infoItem(to string) func(int) map[string]any {
	return func(i int) map[string]any {
		return map[string]any{"jsonrpc": "2.0", "id": 1000 + i, "method": "verto.info",
			"params": map[string]any{"msg": map[string]any{"to": to, "body": "spam"}}}
	}
}

// countDropped reports how many of subs are gone, and the most events any
// survivor received.
func countDropped(t *testing.T, subs []*wsClient) (dropped, maxEvents int) {
	t.Helper()
	for _, c := range subs {
		n, ok := alive(t, c)
		if !ok {
			dropped++
		}
		maxEvents = max(maxEvents, n)
	}
	return dropped, maxEvents
}

// TestBurstIsPaidBySender: one member's burst of broadcasts or direct
// messages, however packed into frames and sockets, never gets readers who
// keep reading dropped; the sender gets errors instead.
func TestBurstIsPaidBySender(t *testing.T) {
	t.Run("one batch of 190 broadcasts", func(t *testing.T) {
		gw := newDirGateway()
		th := startHub(t, gw, nil)
		subs := subscribers(t, th, gw, "room", 10)
		gw.add("attacker", "pw", "room")
		a := dial(t, th, "attacker", nil)
		a.login("attacker", "pw", "sa")
		a.send(batchOf(190, broadcastItem("room")))
		if e := errorOf(t, a.recv()); e["message"] != "Batch too large" {
			t.Fatalf("attacker got %v", e)
		}
		if dropped, _ := countDropped(t, subs); dropped != 0 {
			t.Fatalf("%d of 10 subscribers dropped", dropped)
		}
	})
	t.Run("allowed batches from four sockets", func(t *testing.T) {
		gw := newDirGateway()
		th := startHub(t, gw, func(o *Options) {
			burstOptions(o)
			o.MaxConnsPerAddress = 1 << 20 // every subscriber dials from 127.0.0.1
		})
		subs := subscribers(t, th, gw, "room", *burstSubscribers)
		gw.add("attacker", "pw", "room")
		var sockets []*wsClient
		for i := range 4 {
			a := dial(t, th, fmt.Sprint("attacker-", i), nil)
			a.login("attacker", "pw", fmt.Sprint("sa", i))
			sockets = append(sockets, a)
		}
		for range 12 {
			for _, a := range sockets {
				a.send(batchOf(DefaultMaxBatch, broadcastItem("room")))
			}
		}
		refused := 0
		for _, a := range sockets {
			for range 12 {
				var replies []map[string]any
				f, ok := a.next(5 * time.Second)
				if !ok || f.closed || json.Unmarshal(f.data, &replies) != nil {
					continue // an event (the attacker is not subscribed) or the end
				}
				for _, r := range replies {
					if e, ok := r["error"].(map[string]any); ok && e["message"] == "Rate limit exceeded" {
						refused++
					}
				}
			}
		}
		dropped, most := countDropped(t, subs)
		if dropped != 0 {
			t.Fatalf("%d of %d subscribers dropped", dropped, len(subs))
		}
		sent := 4 * 12 * DefaultMaxBatch
		if most != DefaultBroadcastBurst || refused != sent-DefaultBroadcastBurst {
			t.Fatalf("a subscriber got %d events and %d of %d broadcasts were refused: the budget is per member, burst %d",
				most, refused, sent, DefaultBroadcastBurst)
		}
	})
	t.Run("messages to a target in another channel", func(t *testing.T) {
		gw := newDirGateway()
		th := startHub(t, gw, burstOptions)
		gw.add("target", "pw", "room")
		target := dial(t, th, "target", nil)
		target.login("target", "pw", "st")
		gw.add("outsider", "pw", "elsewhere")
		a := dial(t, th, "outsider", nil)
		a.login("outsider", "pw", "so")
		for range 12 {
			a.send(batchOf(DefaultMaxBatch, infoItem("target")))
		}
		target.quiet(100 * time.Millisecond)
		if _, ok := alive(t, target); !ok {
			t.Fatal("target dropped")
		}
	})
	t.Run("messages to a target in the same channel", func(t *testing.T) {
		gw := newDirGateway()
		th := startHub(t, gw, burstOptions)
		gw.add("target", "pw", "room")
		target := dial(t, th, "target", nil)
		target.login("target", "pw", "st")
		gw.add("member", "pw", "room")
		a := dial(t, th, "member", nil)
		a.login("member", "pw", "sm")
		for range 20 {
			a.send(batchOf(DefaultMaxBatch, infoItem("target")))
		}
		if _, ok := alive(t, a); !ok { // its echo answered: every relay is queued
			t.Fatal("sender closed")
		}
		got := 0
		for {
			f, ok := target.next(500 * time.Millisecond)
			if !ok {
				break
			}
			if f.closed {
				t.Fatalf("target dropped after %d messages", got)
			}
			got++
		}
		if got != DefaultMessageBurst {
			t.Fatalf("target got %d messages from one member; budget burst %d", got, DefaultMessageBurst)
		}
	})
}

// TestOversizedRequests: a batch over the cap runs nothing; a broadcast or
// message over its size bound is refused with an error.
func TestOversizedRequests(t *testing.T) {
	gw := newDirGateway()
	th := startHub(t, gw, nil)
	gw.add("u", "pw", "room")
	gw.add("v", "pw", "room")
	c := dial(t, th, "u", nil)
	c.login("u", "pw", "s")
	v := dial(t, th, "v", nil)
	v.login("v", "pw", "s")
	c.send(batchOf(DefaultMaxBatch+1, infoItem("v")))
	if e := errorOf(t, c.recv()); e["message"] != "Batch too large" {
		t.Fatal(e)
	}
	v.quiet(50 * time.Millisecond)
	big := strings.Repeat("x", DefaultMaxEventBytes)
	e := errorOf(t, c.call(3, "verto.broadcast", map[string]any{"eventChannel": "room", "eventData": big, "localBroadcast": true}))
	if e["message"] != "Event too large" {
		t.Fatal(e)
	}
	e = errorOf(t, c.call(4, "verto.info", map[string]any{"msg": map[string]any{"to": "v", "body": strings.Repeat("x", DefaultMaxMessageBytes+1)}}))
	if e["message"] != "Message too large" {
		t.Fatal(e)
	}
	v.quiet(50 * time.Millisecond)
}

// TestDirectMessagesStayInChannel: the hub relays a direct message only
// between clients allowed a common channel.
func TestDirectMessagesStayInChannel(t *testing.T) {
	gw := newDirGateway()
	th := startHub(t, gw, nil)
	gw.add("alice", "pw", "room")
	gw.add("bob", "pw", "room")
	gw.add("mallory", "pw", "elsewhere")
	alice := dial(t, th, "alice", nil)
	alice.login("alice", "pw", "sa")
	bob := dial(t, th, "bob", nil)
	bob.login("bob", "pw", "sb")
	mallory := dial(t, th, "mallory", nil)
	mallory.login("mallory", "pw", "sm")

	// The relay answers SENT either way, as mod_verto does.
	if res := result(t, mallory.call(2, "verto.info", map[string]any{"msg": map[string]any{"to": "alice", "body": "here"}})); res["message"] != "SENT" {
		t.Fatal(res)
	}
	alice.quiet(50 * time.Millisecond)
	result(t, bob.call(2, "verto.info", map[string]any{"msg": map[string]any{"to": "alice", "body": "hi"}}))
	m := alice.recv()
	if p, _ := m["params"].(map[string]any); m["method"] != "verto.info" || fmt.Sprint(p["msg"]) != "map[body:hi from:bob to:alice@"+th.h.opts.Domain+"]" {
		t.Fatalf("alice got %v", m)
	}
}

// TestChannelLimit: MaxClientsPerChannel counts users by their live
// connections and holds exactly under simultaneous logins; a user's second
// socket closing neither frees its place nor reports a disconnect.
func TestChannelLimit(t *testing.T) {
	t.Run("simultaneous logins", func(t *testing.T) {
		gw := newDirGateway()
		th := startHub(t, gw, func(o *Options) { o.MaxClientsPerChannel = 2 })
		var clients []*wsClient
		for i := range 20 {
			id := fmt.Sprint("u", i)
			gw.add(id, "pw", "room")
			clients = append(clients, dial(t, th, id, nil))
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		in := 0
		for i, c := range clients {
			wg.Go(func() {
				c.send(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "login",
					"params": map[string]any{"login": fmt.Sprint("u", i), "passwd": "pw", "sessid": "s"}})
			})
		}
		wg.Wait()
		for _, c := range clients {
			f, ok := c.next(5 * time.Second)
			if !ok || f.closed {
				t.Fatalf("%s: no reply", c.name)
			}
			if strings.Contains(string(f.data), `"logged in"`) {
				mu.Lock()
				in++
				mu.Unlock()
			} else if !strings.Contains(string(f.data), "Channel is full") {
				t.Fatalf("%s: %s", c.name, f.data)
			}
		}
		if in != 2 {
			t.Fatalf("%d clients logged in, limit 2", in)
		}
	})
	t.Run("a second socket closing", func(t *testing.T) {
		gw := newDirGateway()
		th := startHub(t, gw, func(o *Options) { o.MaxClientsPerChannel = 2 })
		for _, id := range []string{"x", "y", "z"} {
			gw.add(id, "pw", "room")
		}
		x1 := dial(t, th, "x1", nil)
		x1.login("x", "pw", "tab1")
		x2 := dial(t, th, "x2", nil)
		x2.login("x", "pw", "tab2") // the same client in a second tab: one place
		y := dial(t, th, "y", nil)
		y.login("y", "pw", "s")

		_ = x1.ws.CloseNow()
		waitRegistered(t, th, 2)
		z := dial(t, th, "z", nil)
		if e := errorOf(t, z.call(1, "login", map[string]any{"login": "z", "passwd": "pw", "sessid": "s"})); e["message"] != "Channel is full" {
			t.Fatalf("z: %v", e)
		}
		if f, ok := z.next(5 * time.Second); !ok || !f.closed {
			t.Fatalf("z not closed: %+v", f)
		}
		waitRegistered(t, th, 2)
		// (No disconnect report for x1: counted once every report is in,
		// below.)

		_ = x2.ws.CloseNow()
		waitRegistered(t, th, 1) // y
		deadline := time.Now().Add(5 * time.Second)
		for gw.reportCount("verto_client_disconnect") != 1 && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		if n := gw.reportCount("verto_client_disconnect"); n != 1 {
			t.Fatalf("%d disconnect reports after x's last socket closed, want 1", n)
		}
		z2 := dial(t, th, "z2", nil)
		z2.login("z", "pw", "s")
		// Shutdown waits for every report: x's first socket closing while
		// its second was live reported nothing.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := th.h.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		gw.mu.Lock()
		defer gw.mu.Unlock()
		xs := 0
		for _, r := range gw.reports {
			if r.Get("action") == "verto_client_disconnect" && strings.HasPrefix(r.Get("login"), "x@") {
				xs++
			}
		}
		if xs != 1 {
			t.Fatalf("%d disconnect reports for x, want 1: its last socket's", xs)
		}
	})
}

// TestEventSernoOrder: with several members broadcasting at once, each
// subscriber receives its events in eventSerno order.
func TestEventSernoOrder(t *testing.T) {
	gw := newDirGateway()
	th := startHub(t, gw, func(o *Options) {
		burstOptions(o)
		o.BroadcastBudget = Budget{Rate: 1e6, Burst: 1e6}
	})
	subs := subscribers(t, th, gw, "room", 3)
	const senders, each = 4, 150
	var wg sync.WaitGroup
	for i := range senders {
		id := fmt.Sprint("sender", i)
		gw.add(id, "pw", "room")
		c := dial(t, th, id, nil)
		c.login(id, "pw", "s")
		wg.Go(func() {
			for range each / DefaultMaxBatch {
				c.send(batchOf(DefaultMaxBatch, broadcastItem("room")))
			}
		})
	}
	wg.Wait()
	want := senders * (each / DefaultMaxBatch) * DefaultMaxBatch
	for _, c := range subs {
		for i := range want {
			m := c.recv()
			p, _ := m["params"].(map[string]any)
			if got := fmt.Sprint(p["eventSerno"]); got != fmt.Sprint(i) {
				t.Fatalf("%s: event %d has eventSerno %s", c.name, i, got)
			}
		}
	}
}

// TestSecondLogin: a socket may log in again as its own user (its session
// and subscriptions stay) but not as another user, which would carry it
// past that user's limits and leave its session behind.
func TestSecondLogin(t *testing.T) {
	gw := newDirGateway()
	th := startHub(t, gw, func(o *Options) { o.MaxClientsPerChannel = 1 })
	gw.add("x", "pw", "elsewhere")
	gw.add("y", "pw", "room")
	gw.add("z", "pw", "room")
	y := dial(t, th, "y", nil)
	y.login("y", "pw", "sy")
	c := dial(t, th, "x", nil)
	c.login("x", "pw", "sx")
	if res := result(t, c.call(2, "login", map[string]any{"login": "x", "passwd": "pw"})); res["message"] != "logged in" {
		t.Fatal(res)
	}
	e := errorOf(t, c.call(3, "login", map[string]any{"login": "z", "passwd": "pw"}))
	if e["message"] != "Already logged in as another user" {
		t.Fatal(e)
	}
	if e := errorOf(t, c.call(4, "verto.subscribe", map[string]any{"eventChannel": "room"})); e == nil {
		t.Fatal("subscribed to the full channel")
	}
	_ = c.ws.CloseNow()
	waitRegistered(t, th, 1)
	if _, sessions, users, _ := th.h.reg.counts(); sessions != 1 || users != 1 {
		t.Fatalf("%d sessions and %d users left for one live connection", sessions, users)
	}
}

// TestLoginTimeout: a socket that never logs in is closed, however often
// it sends.
func TestLoginTimeout(t *testing.T) {
	gw := newDirGateway()
	th := startHub(t, gw, func(o *Options) { o.LoginTimeout = 200 * time.Millisecond })
	c := dial(t, th, "anonymous", nil)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		// Write errors are expected once the hub has closed the socket.
		_ = c.ws.Write(context.Background(), websocket.MessageText, []byte(`{"jsonrpc":"2.0","id":1,"method":"echo","params":{}}`))
		f, ok := c.next(100 * time.Millisecond)
		if ok && f.closed {
			if f.status != 1008 {
				t.Fatalf("closed with %v, want 1008", f.status)
			}
			return
		}
	}
	t.Fatal("an anonymous socket stayed open")
}

// TestManySendersOneReader: many members at once, each within its budget,
// send large direct messages to one person who reads, if slowly; the
// reader keeps its connection and the senders get "Recipient is busy"
// (before: the reader was dropped as slow).
func TestManySendersOneReader(t *testing.T) {
	gw := newDirGateway()
	th := startHub(t, gw, func(o *Options) {
		burstOptions(o)
		o.MaxConnsPerAddress = 1 << 20
	})
	gw.add("victim", "pw", "room")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	victim, _, err := websocket.Dial(ctx, th.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer victim.CloseNow()
	victim.SetReadLimit(1 << 20)
	if err := victim.Write(ctx, websocket.MessageText, []byte(`{"jsonrpc":"2.0","id":1,"method":"login","params":{"login":"victim","passwd":"pw","sessid":"sv"}}`)); err != nil {
		t.Fatal(err)
	}
	// The victim reads, about 3 MB/s for these frames: slower than the
	// senders together, faster than any one of them may send.
	received, closed := make(chan int, 1), make(chan error, 1)
	go func() {
		n := 0
		for {
			if _, _, err := victim.Read(ctx); err != nil {
				received <- n
				closed <- err
				return
			}
			n++
			time.Sleep(20 * time.Millisecond)
		}
	}()

	body := strings.Repeat("m", DefaultMaxMessageBytes)
	const senders, each = 30, 6
	var wg sync.WaitGroup
	var mu sync.Mutex
	busy, unanswered := 0, 0
	for i := range senders {
		id := fmt.Sprint("sender", i)
		gw.add(id, "pw", "room")
		c := dial(t, th, id, nil)
		c.login(id, "pw", "s")
		wg.Go(func() {
			for j := range each {
				c.send(map[string]any{"jsonrpc": "2.0", "id": 10 + j, "method": "verto.info",
					"params": map[string]any{"msg": map[string]any{"to": "victim", "body": body}}})
			}
			for range each {
				f, ok := c.next(10 * time.Second)
				mu.Lock()
				switch {
				case !ok || f.closed:
					unanswered++
				case strings.Contains(string(f.data), "Recipient is busy"):
					busy++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	// Let the victim drain what was queued, then check it is still there.
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if conns, _, _, _ := th.h.reg.counts(); conns != senders+1 {
			t.Fatalf("%d connections: the reader was dropped", conns)
		}
		var backlog int
		th.h.reg.eachConn(func(c *conn) {
			_, bytes := c.out.backlog()
			backlog = max(backlog, bytes)
		})
		if backlog == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case err := <-closed:
		t.Fatalf("the reader's connection ended after %d frames: %v", <-received, err)
	default:
	}
	if unanswered > 0 {
		t.Fatalf("%d messages got no reply", unanswered)
	}
	// How many were refused depends on how much the loopback socket's
	// buffers took in meanwhile; the reader staying is what must hold.
	t.Logf("%d of %d messages refused as busy", busy, senders*each)
}

// TestSubscriptionLimit: one connection cannot hold unbounded subscriptions
// (a user allowed "a" may name any "a.b").
func TestSubscriptionLimit(t *testing.T) {
	gw := newDirGateway()
	th := startHub(t, gw, nil)
	gw.add("u", "pw", "room")
	c := dial(t, th, "u", nil)
	c.login("u", "pw", "s")
	var names []string
	for i := range DefaultMaxSubscriptions + 5 {
		names = append(names, fmt.Sprint("room.", i))
	}
	res := result(t, c.call(2, "verto.subscribe", map[string]any{"eventChannel": names}))
	if got := len(res["subscribedChannels"].([]any)); got != DefaultMaxSubscriptions {
		t.Fatalf("%d subscriptions taken, limit %d", got, DefaultMaxSubscriptions)
	}
	if got := len(res["unauthorizedChannels"].([]any)); got != 5 {
		t.Fatalf("%d refused, want 5", got)
	}
}

// TestRecipientBusy: with a quarter of a reader's queue bytes waiting, a
// direct message to it is refused to its sender, and a broadcast past the
// half that others may fill is not queued for it, which keeps its
// connection.
func TestRecipientBusy(t *testing.T) {
	gw := newDirGateway()
	gw.add("sender", "pw", "room")
	gw.add("reader", "pw", "room")
	h := New(Options{Gateway: gw, Domain: fixtures.Domain, QueueBytes: 128 << 10, MaxMessageBytes: 64 << 10})
	defer func() { _ = h.Shutdown(context.Background()) }()
	login := func(c *conn, user string) {
		c.handleFrame([]byte(`{"jsonrpc":"2.0","id":1,"method":"login","params":{"login":"` + user + `","passwd":"pw","sessid":"s"}}`))
		if !c.authed {
			t.Fatalf("%s: login failed", user)
		}
		drain(t, c)
	}
	sender, reader := newConn(h, nil, "127.0.0.1:1"), newConn(h, nil, "127.0.0.1:2")
	login(sender, "sender")
	login(reader, "reader")
	reader.handleFrame([]byte(`{"jsonrpc":"2.0","id":2,"method":"verto.subscribe","params":{"eventChannel":"room"}}`))
	drain(t, reader)

	send := func(body string) string {
		sender.handleFrame([]byte(`{"jsonrpc":"2.0","id":3,"method":"verto.info","params":{"msg":{"to":"reader","body":"` + body + `"}}}`))
		return string(bytes.Join(drain(t, sender), nil))
	}
	if r := send(strings.Repeat("a", 40<<10)); !strings.Contains(r, `"SENT"`) {
		t.Fatalf("first message: %s", r)
	}
	if r := send("b"); !strings.Contains(r, "Recipient is busy") {
		t.Fatalf("message to a reader with 40 KiB of 128 waiting: %s", r)
	}
	for range 3 { // 3 × ~10 KiB events: the third passes the half others may fill
		sender.handleFrame([]byte(`{"jsonrpc":"2.0","id":4,"method":"verto.broadcast","params":{"eventChannel":"room","localBroadcast":true,"eventData":"` + strings.Repeat("e", 10<<10) + `"}}`))
		drain(t, sender)
	}
	if reader.stopping.Load() {
		t.Fatal("the reader was dropped")
	}
	if got := len(drain(t, reader)); got != 3 { // the first message and two events
		t.Fatalf("%d frames queued for the reader, want 3", got)
	}
}

// TestOwnRepliesAlwaysFit: however many frames others queue for a reader
// (tiny messages fill the frame bound long before the byte bound), its
// replies to its own requests still fit, so it is never dropped for them.
func TestOwnRepliesAlwaysFit(t *testing.T) {
	gw := newDirGateway()
	h := New(Options{Gateway: gw, Domain: fixtures.Domain, QueueSize: 64, RequestRate: 1e6, RequestBurst: 1e6,
		MessageBudget: Budget{Rate: 1e6, Burst: 1e6}})
	defer func() { _ = h.Shutdown(context.Background()) }()
	var senders []*conn
	for i := range 8 {
		id := fmt.Sprint("s", i)
		gw.add(id, "pw", "room")
		c := newConn(h, nil, fmt.Sprint("127.0.0.1:", 10+i))
		c.handleFrame([]byte(`{"jsonrpc":"2.0","id":1,"method":"login","params":{"login":"` + id + `","passwd":"pw","sessid":"s"}}`))
		drain(t, c)
		senders = append(senders, c)
	}
	gw.add("reader", "pw", "room")
	reader := newConn(h, nil, "127.0.0.1:2")
	reader.handleFrame([]byte(`{"jsonrpc":"2.0","id":1,"method":"login","params":{"login":"reader","passwd":"pw","sessid":"s"}}`))
	drain(t, reader)
	for range 20 { // 160 tiny messages for a queue of 64 frames
		for _, c := range senders {
			c.handleFrame([]byte(`{"jsonrpc":"2.0","id":2,"method":"verto.info","params":{"msg":{"to":"reader","body":"x"}}}`))
			drain(t, c)
		}
	}
	for i := range 20 { // the reader's own requests, replies unread
		reader.handleFrame([]byte(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"echo","params":{}}`, 100+i)))
	}
	if reader.stopping.Load() {
		t.Fatal("the reader was dropped for its own replies")
	}
	replies, deliveries := 0, 0
	for _, f := range drain(t, reader) {
		if bytes.Contains(f, []byte(`"result"`)) {
			replies++
		} else {
			deliveries++
		}
	}
	if replies != 20 || deliveries == 0 || deliveries > 64/2 {
		t.Fatalf("%d replies and %d deliveries queued; want 20, and at most %d deliveries", replies, deliveries, 64/2)
	}
}
