package hub

import (
	"context"
	"fmt"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"channels/internal/fixtures"
)

func result(t *testing.T, r map[string]any) map[string]any {
	t.Helper()
	res, ok := r["result"].(map[string]any)
	if !ok {
		t.Fatalf("expected a result, got %v", r)
	}
	return res
}

func errorOf(t *testing.T, r map[string]any) map[string]any {
	t.Helper()
	e, ok := r["error"].(map[string]any)
	if !ok {
		t.Fatalf("expected an error, got %v", r)
	}
	return e
}

// TestPresenceBroadcast: a local broadcast reaches every subscriber of the
// channel — the sender too — with its own eventSerno, and nobody else.
func TestPresenceBroadcast(t *testing.T) {
	gw := newDirGateway()
	th := startHub(t, gw, nil)
	const room, other = "room-1", "room-2"
	var subs []*wsClient
	for i := range 4 {
		id := fmt.Sprintf("u%d", i)
		gw.add(id, "pw", room)
		c := dial(t, th, id, nil)
		c.login(id, "pw", "s-"+id)
		res := result(t, c.call(2, "verto.subscribe", map[string]any{"eventChannel": room}))
		if fmt.Sprint(res["subscribedChannels"]) != "[room-1]" {
			t.Fatalf("subscribe: %v", res)
		}
		subs = append(subs, c)
	}
	gw.add("lurker", "pw", room) // same channel, not subscribed
	lurker := dial(t, th, "lurker", nil)
	lurker.login("lurker", "pw", "s-lurker")
	gw.add("elsewhere", "pw", other)
	elsewhere := dial(t, th, "elsewhere", nil)
	elsewhere.login("elsewhere", "pw", "s-elsewhere")
	result(t, elsewhere.call(2, "verto.subscribe", map[string]any{"eventChannel": other}))

	for round := range 2 {
		sender := subs[round]
		r := sender.call(10+round, "verto.broadcast", map[string]any{
			"eventChannel": room, "eventData": "presence", "localBroadcast": true, "sessid": "s-" + sender.name,
		})
		if res := result(t, r); res["sessid"] != "s-"+sender.name || len(res) != 1 {
			t.Fatalf("broadcast result: %v", res)
		}
		for _, c := range subs {
			ev := c.recv()
			p, _ := ev["params"].(map[string]any)
			if ev["method"] != "verto.event" || p["eventData"] != "presence" ||
				p["userid"] != sender.name+"@"+fixtures.Domain || p["sessid"] != "s-"+sender.name ||
				p["subscribedChannel"] != room || fmt.Sprint(p["eventSerno"]) != fmt.Sprint(round) {
				t.Fatalf("%s got %v", c.name, ev)
			}
		}
	}
	for _, c := range append(subs, lurker, elsewhere) {
		c.quiet(50 * time.Millisecond)
	}
}

// TestDirectMessageAllConnections: a verto.info reaches every connection
// logged in as the target, with one id, and nobody else.
func TestDirectMessageAllConnections(t *testing.T) {
	gw := newDirGateway()
	th := startHub(t, gw, nil)
	gw.add("alice", "pw", "room")
	gw.add("bob", "pw", "room")
	gw.add("carol", "pw", "room")
	var alices []*wsClient
	for i := range 3 {
		c := dial(t, th, fmt.Sprintf("alice%d", i), nil)
		c.login("alice", "pw", fmt.Sprintf("sa%d", i))
		alices = append(alices, c)
	}
	bob := dial(t, th, "bob", nil)
	bob.login("bob", "pw", "sb")
	carol := dial(t, th, "carol", nil)
	carol.login("carol", "pw", "sc")

	for _, to := range []string{"alice", "alice@" + fixtures.Domain} {
		r := bob.call(5, "verto.info", map[string]any{"msg": map[string]any{"to": to, "body": "b64"}})
		if res := result(t, r); res["message"] != "SENT" {
			t.Fatalf("info: %v", res)
		}
		var id any
		for i, a := range alices {
			m := a.recv()
			msg := m["params"].(map[string]any)["msg"].(map[string]any)
			if m["method"] != "verto.info" || msg["from"] != "bob" || msg["to"] != "alice@"+fixtures.Domain || msg["body"] != "b64" || len(msg) != 3 {
				t.Fatalf("%s got %v", a.name, m)
			}
			if i == 0 {
				id = m["id"]
			} else if m["id"] != id {
				t.Fatalf("ids differ across the target's connections: %v, %v", id, m["id"])
			}
		}
	}
	// Nobody there: still SENT.
	r := bob.call(6, "verto.info", map[string]any{"msg": map[string]any{"to": "nobody", "body": "x"}})
	if result(t, r)["message"] != "SENT" {
		t.Fatal(r)
	}
	// Missing body: the INVALID MESSAGE error object.
	r = bob.call(7, "verto.info", map[string]any{"msg": map[string]any{"to": "alice"}})
	if e := errorOf(t, r); e["message"] != "INVALID MESSAGE to and body params required" || len(e) != 1 {
		t.Fatal(r)
	}
	// No msg at all: an empty result.
	if res := result(t, bob.call(8, "verto.info", map[string]any{"x": 1})); len(res) != 1 {
		t.Fatal(res)
	}
	for _, c := range append(alices, bob, carol) {
		c.quiet(50 * time.Millisecond)
	}
}

// TestPunt: the same user and sessid on a new socket takes the session
// over; the old one gets verto.punt and is closed; messages go to the new.
func TestPunt(t *testing.T) {
	gw := newDirGateway()
	th := startHub(t, gw, nil)
	gw.add("alice", "pw", "room")
	gw.add("bob", "pw", "room")
	old := dial(t, th, "old", nil)
	old.login("alice", "pw", "S")
	result(t, old.call(2, "verto.subscribe", map[string]any{"eventChannel": "room"}))

	nu := dial(t, th, "new", nil)
	nu.login("alice", "pw", "S")
	if m := old.recv(); m["method"] != "verto.punt" {
		t.Fatalf("old got %v", m)
	}
	if f, ok := old.next(5 * time.Second); !ok || !f.closed || f.status != websocket.StatusNormalClosure {
		t.Fatalf("old not closed normally: %+v", f)
	}
	bob := dial(t, th, "bob", nil)
	bob.login("bob", "pw", "sb")
	result(t, bob.call(3, "verto.info", map[string]any{"msg": map[string]any{"to": "alice", "body": "hi"}}))
	if m := nu.recv(); m["method"] != "verto.info" {
		t.Fatalf("new got %v", m)
	}
	// Another user with that sessid gets a session of its own: the
	// sessid is alice's only together with her login.
	other := dial(t, th, "other", nil)
	other.login("bob", "pw", "S")
	nu.quiet(50 * time.Millisecond)
	result(t, bob.call(4, "verto.info", map[string]any{"msg": map[string]any{"to": "alice", "body": "still"}}))
	if m := nu.recv(); m["method"] != "verto.info" {
		t.Fatalf("new got %v", m)
	}
}

// TestPermissions: allowed methods and event channels from the directory.
func TestPermissions(t *testing.T) {
	gw := newDirGateway()
	th := startHub(t, gw, nil)
	gw.set("limited", dirEntry{pass: "pw", methods: "echo", channels: "room"})
	gw.set("prefix", dirEntry{pass: "pw", methods: "verto", channels: "room"})
	gw.set("any", dirEntry{pass: "pw", methods: "__ANY__", channels: "__ANY__"})
	gw.set("none", dirEntry{pass: "pw"})

	tests := []struct {
		user, method string
		params       map[string]any
		wantErr      string // error message, or "" for a result
		wantKey      string // for results: a member that must be there
	}{
		{"limited", "echo", map[string]any{"a": 1}, "", "a"},
		{"limited", "verto.subscribe", map[string]any{"eventChannel": "room"}, "Invalid Method, Missing Method or Permission Denied", ""},
		{"prefix", "verto.subscribe", map[string]any{"eventChannel": "room.sub"}, "", "subscribedChannels"},
		{"prefix", "verto.subscribe", map[string]any{"eventChannel": "other"}, "", ""},
		{"prefix", "echo", map[string]any{}, "Invalid Method, Missing Method or Permission Denied", ""},
		{"any", "verto.subscribe", map[string]any{"eventChannel": "whatever"}, "", "subscribedChannels"},
		{"any", "verto.subscribe", map[string]any{"eventChannel": "FSevent"}, "", ""},
		{"any", "verto.ping", map[string]any{}, "", "message"},
		{"any", "verto.invite", map[string]any{}, "Invalid Method, Missing Method or Permission Denied", ""},
		{"none", "echo", map[string]any{}, "Invalid Method, Missing Method or Permission Denied", ""},
		{"none", "login", map[string]any{"login": "none", "passwd": "pw"}, "", "message"},
	}
	for i, tc := range tests {
		t.Run(fmt.Sprintf("%d_%s_%s", i, tc.user, tc.method), func(t *testing.T) {
			c := dial(t, th, tc.user, nil)
			c.login(tc.user, "pw", fmt.Sprintf("perm-%d", i))
			r := c.call(2, tc.method, tc.params)
			switch {
			case tc.wantErr != "":
				if e := errorOf(t, r); e["message"] != tc.wantErr {
					t.Fatalf("got %v", r)
				}
			case tc.wantKey == "":
				if _, ok := r["error"].(map[string]any)["unauthorizedChannels"]; !ok {
					t.Fatalf("want unauthorizedChannels error, got %v", r)
				}
			default:
				if _, ok := result(t, r)[tc.wantKey]; !ok {
					t.Fatalf("got %v", r)
				}
			}
		})
	}
}

// TestOriginCheck: only same-host or listed origins may upgrade.
func TestOriginCheck(t *testing.T) {
	gw := newDirGateway()
	th := startHub(t, gw, func(o *Options) {
		o.AllowedOrigins = []string{"https://app.example.com", "*.trusted.test"}
	})
	host := strings.TrimPrefix(th.srv.URL, "http://")
	tests := []struct {
		origin string
		ok     bool
	}{
		{"", true},
		{"http://" + host, true},
		{"https://app.example.com", true},
		{"http://app.example.com", false},
		{"https://a.trusted.test", true},
		{"https://evil.example", false},
		{"null", false},
		{"http://" + host + ".evil.example", false},
	}
	for _, tc := range tests {
		t.Run(tc.origin, func(t *testing.T) {
			h := http.Header{}
			if tc.origin != "" {
				h.Set("Origin", tc.origin)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			ws, resp, err := websocket.Dial(ctx, th.url, &websocket.DialOptions{HTTPHeader: h})
			if tc.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				_ = ws.CloseNow()
				return
			}
			if err == nil {
				_ = ws.CloseNow()
				t.Fatal("accepted")
			}
			if resp == nil || resp.StatusCode != http.StatusForbidden {
				t.Fatalf("want 403, got %v", resp)
			}
		})
	}
}

// TestSlowReaderDropped: a subscriber that stops reading is dropped when
// its queue passes its bounds (budgets lifted to get there quickly); the
// others keep getting every event promptly.
func TestSlowReaderDropped(t *testing.T) {
	gw := newDirGateway()
	th := startHub(t, gw, func(o *Options) {
		o.QueueBytes = 256 << 10
		o.WriteTimeout = 200 * time.Millisecond
		o.RequestRate, o.RequestBurst = 1e6, 1e6
		o.MaxEventBytes = 1 << 20
		o.AddressBytes = unlimited
		o.BroadcastBudget = Budget{Rate: 1e6, Burst: 1e6}
	})
	gw.add("fast", "pw", "room")
	gw.add("slow", "pw", "room")
	floodPastStuckReader(t, th)
	deadline := time.Now().Add(5 * time.Second)
	for {
		conns, _, _, _ := th.h.reg.counts()
		if conns == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("slow reader still registered (%d connections)", conns)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// floodPastStuckReader logs into th (whose gateway knows "fast" and
// "slow", both allowed "room") a reader that keeps up and one that logs
// in, subscribes and then never reads again (closed with the test), and
// has the first broadcast 200 events of 64 KiB to room — 12.5 MiB for
// the one that does not read, far beyond socket buffers — reading each
// reply and event. It returns the reader that keeps up.
func floodPastStuckReader(t *testing.T, th *testHub) *wsClient {
	t.Helper()
	fast := dial(t, th, "fast", nil)
	fast.login("fast", "pw", "sf")
	result(t, fast.call(2, "verto.subscribe", map[string]any{"eventChannel": "room"}))

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	slow, _, err := websocket.Dial(ctx, th.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { slow.CloseNow() })
	for _, m := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"login","params":{"login":"slow","passwd":"pw","sessid":"ss"}}`,
		`{"jsonrpc":"2.0","id":2,"method":"verto.subscribe","params":{"eventChannel":"room"}}`,
	} {
		if err := slow.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	waitSubscribers(t, th, "room", 2) // the slow reader's subscription too

	data := strings.Repeat("x", 64<<10)
	for i := range 200 {
		fast.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"verto.broadcast","params":{"eventChannel":"room","eventData":"%s","localBroadcast":true}}`, 100+i, data))
		for range 2 { // the reply and the event
			if f, ok := fast.next(5 * time.Second); !ok || f.closed {
				t.Fatalf("fast reader stalled at %d", i)
			}
		}
	}
	return fast
}

// TestLimits: frame size, request rate, connections per client and per
// address, idle timeout.
func TestLimits(t *testing.T) {
	t.Run("frame size", func(t *testing.T) {
		th := startHub(t, newDirGateway(), func(o *Options) { o.MaxFrameBytes = 1024 })
		c := dial(t, th, "c", nil)
		c.send(`{"jsonrpc":"2.0","id":1,"method":"echo","params":{"x":"` + strings.Repeat("a", 2000) + `"}}`)
		if f, ok := c.next(5 * time.Second); !ok || !f.closed || f.status != websocket.StatusMessageTooBig {
			t.Fatalf("want close 1009, got %+v", f)
		}
	})
	t.Run("request rate", func(t *testing.T) {
		th := startHub(t, newDirGateway(), func(o *Options) { o.RequestRate, o.RequestBurst = 1, 5 })
		c := dial(t, th, "c", nil)
		for i := range 5 {
			c.send(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"echo","params":{}}`, i))
			if e := errorOf(t, c.recv()); e["message"] != "Authentication Required" {
				t.Fatal(e)
			}
		}
		c.send(`{"jsonrpc":"2.0","id":9,"method":"echo","params":{}}`)
		if f, ok := c.next(5 * time.Second); !ok || !f.closed || f.status != websocket.StatusPolicyViolation {
			t.Fatalf("want close 1008, got %+v", f)
		}
	})
	t.Run("connections per client", func(t *testing.T) {
		gw := newDirGateway()
		gw.add("u", "pw", "room")
		th := startHub(t, gw, func(o *Options) { o.MaxConnsPerClient = 2 })
		for i := range 2 {
			dial(t, th, "ok", nil).login("u", "pw", fmt.Sprint(i))
		}
		c := dial(t, th, "third", nil)
		if e := errorOf(t, c.call(1, "login", map[string]any{"login": "u", "passwd": "pw", "sessid": "x"})); e["message"] != "Too many connections" {
			t.Fatal(e)
		}
		// Taking over one's own session is not a new connection.
		dial(t, th, "takeover", nil).login("u", "pw", "0")
	})
	t.Run("connections per address", func(t *testing.T) {
		th := startHub(t, newDirGateway(), func(o *Options) { o.MaxConnsPerAddress = 2 })
		dial(t, th, "a", nil)
		dial(t, th, "b", nil)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, resp, err := websocket.Dial(ctx, th.url, nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("want 429, got %v %v", resp, err)
		}
	})
	t.Run("idle timeout and keepalive", func(t *testing.T) {
		gw := newDirGateway()
		gw.add("u", "pw", "room")
		th := startHub(t, gw, func(o *Options) { o.IdleTimeout = 300 * time.Millisecond })
		alive := dial(t, th, "alive", nil)
		alive.login("u", "pw", "k")
		idle := dial(t, th, "idle", nil)
		for i := range 6 { // echo keepalive every 100 ms for 600 ms
			time.Sleep(100 * time.Millisecond)
			result(t, alive.call(10+i, "echo", map[string]any{}))
		}
		if f, ok := idle.next(time.Second); !ok || !f.closed || f.status != websocket.StatusGoingAway {
			t.Fatalf("idle connection not closed: %+v", f)
		}
		alive.quiet(10 * time.Millisecond)
	})
}

// TestShutdown: every socket is closed with 1001, disconnects are
// reported, no goroutine is left, and Shutdown may be called again.
func TestShutdown(t *testing.T) {
	before := runtime.NumGoroutine()
	gw := newDirGateway()
	h := New(Options{Gateway: gw, Domain: fixtures.Domain})
	srv := newLoopbackServer(t, h)
	th := &testHub{h: h, url: "ws://" + srv.addr + "/verto"}
	var clients []*wsClient
	for i := range 10 {
		u := fmt.Sprint("u", i)
		gw.add(u, "pw", "room")
		c := dial(t, th, u, nil)
		c.login(u, "pw", "s")
		clients = append(clients, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range clients {
		if f, ok := c.next(5 * time.Second); !ok || !f.closed || f.status != websocket.StatusGoingAway {
			t.Fatalf("%s: want close 1001, got %+v", c.name, f)
		}
	}
	if err := h.Shutdown(ctx); err != nil { // a second call is harmless
		t.Fatal(err)
	}
	if n := gw.reportCount("verto_client_disconnect"); n != 10 {
		t.Fatalf("%d disconnect reports, want 10", n)
	}
	srv.close()
	waitGoroutines(t, before)
}

// TestEdgeCases covers mod_verto behaviour the recording does not show.
func TestEdgeCases(t *testing.T) {
	gw := newDirGateway()
	gw.add("u", "pw", "room")
	gw.add("v", "pw", "room")
	th := startHub(t, gw, nil)
	c := dial(t, th, "c", nil)

	raw := func(frame string) string {
		t.Helper()
		c.send(frame)
		f, ok := c.next(5 * time.Second)
		if !ok || f.closed {
			t.Fatalf("no reply to %s", frame)
		}
		return string(f.data)
	}
	before := []struct{ in, want string }{
		{`{"jsonrpc":"2.0","id":1,"method":"echo"}`, `{"jsonrpc":"2.0","id":1,"error":{"code":-32001,"message":"Missing params"}}`},
		{`{"jsonrpc":"2.0","id":2,"method":"echo","params":null}`, `{"jsonrpc":"2.0","id":2,"error":{"code":-32000,"message":"Authentication Required"}}`},
		{`{"jsonrpc":"2.0","id":3,"method":"login","params":{"login":"","passwd":"x"}}`, `{"jsonrpc":"2.0","id":3,"error":{"code":-32000,"message":"Authentication Required"}}`},
		{`[{"jsonrpc":"2.0","id":4,"result":{}}]`, `[]`},
		{`[{"jsonrpc":"1.0","id":5},{"jsonrpc":"2.0","id":6,"method":"echo","params":{}}]`, `[{"jsonrpc":"2.0","id":5,"error":{"code":-32600,"message":"Invalid message"}},{"jsonrpc":"2.0","id":6,"error":{"code":-32000,"message":"Authentication Required"}}]`},
		{`{"jsonrpc":"2.0","id":"s","method":"echo","params":{}} trailing`, `{"jsonrpc":"2.0","id":"s","error":{"code":-32000,"message":"Authentication Required"}}`},
	}
	for _, tc := range before {
		if got := raw(tc.in); got != tc.want {
			t.Errorf("%s\n got  %s\n want %s", tc.in, got, tc.want)
		}
	}
	if got := raw(`{"jsonrpc":"2.0","id":1,"method":"login","params":{"login":"u","passwd":"pw","sessid":"S"}}`); got != `{"jsonrpc":"2.0","id":1,"result":{"message":"logged in","sessid":"S"}}` {
		t.Fatal(got)
	}
	c.recv() // verto.clientReady
	after := []struct{ in, want string }{
		{`{"jsonrpc":"2.0","id":2,"method":"echo","params":{"a":1,"echoParams":true}}`, `{"jsonrpc":"2.0","id":2,"result":{"a":1,"echoParams":true,"requestParams":{"a":1,"echoParams":true},"sessid":"S"}}`},
		{`{"jsonrpc":"2.0","id":3,"method":"verto.ping","params":{}}`, `{"jsonrpc":"2.0","id":3,"error":{"code":-32601,"message":"Invalid Method, Missing Method or Permission Denied"}}`}, // not in the browser's allowed methods
		{`{"jsonrpc":"2.0","id":4,"method":"verto.unsubscribe","params":{"eventChannel":"room"}}`, `{"jsonrpc":"2.0","id":4,"error":{"notSubscribedChannels":["room"]}}`},
		{`{"jsonrpc":"2.0","id":5,"method":"verto.subscribe","params":{}}`, `{"jsonrpc":"2.0","id":5,"error":{}}`},
		{`{"jsonrpc":"2.0","id":6,"method":"verto.info"}`, `{"jsonrpc":"2.0","id":6,"error":{"message":"Params data missing","code":-32002}}`},
		{`{"jsonrpc":"2.0","id":7,"method":"verto.info","params":{"msg":{"to":"v","body":"x","inDialog":true}}}`, `{"jsonrpc":"2.0","id":7,"result":{"message":"SENT","sessid":"S"}}`},
		{`{"jsonrpc":"2.0","id":8,"method":"verto.subscribe","params":{"eventChannel":["room.sub","room"]}}`, `{"jsonrpc":"2.0","id":8,"result":{"subscribedChannels":["room.sub","room"],"sessid":"S"}}`},
	}
	for _, tc := range after {
		if got := raw(tc.in); got != tc.want {
			t.Errorf("%s\n got  %s\n want %s", tc.in, got, tc.want)
		}
	}
	// A broadcast to "room.sub" reaches the subscription to "room.sub",
	// then the one to "room", each with its own channel and serial.
	c.send(`{"jsonrpc":"2.0","id":9,"method":"verto.broadcast","params":{"eventChannel":"room.sub","localBroadcast":true}}`)
	result(t, c.recv())
	for _, want := range []string{"room.sub", "room"} {
		p := c.recv()["params"].(map[string]any)
		if p["subscribedChannel"] != want || fmt.Sprint(p["eventSerno"]) != "0" {
			t.Fatalf("got %v, want subscribedChannel %s", p, want)
		}
	}
	c.quiet(50 * time.Millisecond)
}
