package cluster_test

import (
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"channels/internal/cluster/clustertest"
)

// TestCluster drives three processes with a limit of three clients per
// channel: presence and broadcast order, relay, takeover, shared budgets
// and the limit, each across processes.
func TestCluster(t *testing.T) {
	s := newSite(t, clustertest.NATS(t), "CHANNELS_MAX_CLIENTS_PER_CHANNEL=3")
	nodes := s.start(3)

	t.Run("broadcast once and in order", func(t *testing.T) {
		ch := s.channel()
		var cs []*client
		var ms []member
		for i, n := range nodes {
			m := s.member(ch)
			c := dialNode(t, n, fmt.Sprintf("c%d", i))
			c.join(m, "s"+randomHex(4))
			cs, ms = append(cs, c), append(ms, m)
		}
		// No wait: the subscribe replies mean the subscriptions are in
		// effect everywhere. Every member broadcasts 10 events at once,
		// then an 11th, "end"; each subscriber, wherever it is, gets all
		// 30, each once, each sender's in order: a duplicate would come
		// before its sender's end.
		var wg sync.WaitGroup
		for i, c := range cs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for k := range 11 {
					data := fmt.Sprintf("%d:%d", i, k)
					if k == 10 {
						data = fmt.Sprintf("%d:end", i)
					}
					c.send("verto.broadcast", map[string]any{"eventChannel": ch, "eventData": data, "localBroadcast": true})
				}
			}()
		}
		wg.Wait()
		for _, c := range cs {
			next := map[string]int{}
			for ends := 0; ends < len(cs); {
				f := c.waitFor(5*time.Second, "event", func(f map[string]any) bool { return f["method"] == "verto.event" })
				p := params(f)
				sender, k, _ := strings.Cut(fmt.Sprint(p["eventData"]), ":")
				if k == "end" {
					k = "10"
					ends++
				}
				if want := fmt.Sprint(next[sender]); k != want {
					t.Fatalf("%s: event %s from sender %s, want %s", c.name, k, sender, want)
				}
				next[sender]++
				i := int(sender[0] - '0')
				if p["userid"] != ms[i].id+"@"+domain {
					t.Fatalf("%s: event stamped %v, sent by %s", c.name, p["userid"], ms[i].id)
				}
			}
		}
	})

	t.Run("relay within the channel", func(t *testing.T) {
		ch, other := s.channel(), s.channel()
		from, to, stranger := s.member(ch), s.member(ch), s.member(other)
		a := dialNode(t, nodes[0], "from")
		a.join(from, "sa")
		// The target on two processes: both of its sockets get the message.
		b1, b2 := dialNode(t, nodes[1], "to@1"), dialNode(t, nodes[2], "to@2")
		b1.join(to, "sb1")
		b2.join(to, "sb2")
		x := dialNode(t, nodes[1], "stranger")
		x.join(stranger, "sx")
		r := a.call("verto.info", map[string]any{"msg": map[string]any{"to": to.id, "body": "hello"}})
		if res, _ := r["result"].(map[string]any); res["message"] != "SENT" {
			t.Fatalf("info: %v", r)
		}
		for _, b := range []*client{b1, b2} {
			f := b.waitFor(5*time.Second, "message", isMessageFrom(from.id))
			msg := params(f)["msg"].(map[string]any)
			if msg["body"] != "hello" || msg["to"] != to.id+"@"+domain {
				t.Fatalf("%s: got %v", b.name, msg)
			}
		}
		// Someone of another channel cannot reach anyone here, nor be
		// reached, on any process: a marker sent after the spam by the
		// same process on the same subject comes first.
		x.call("verto.info", map[string]any{"msg": map[string]any{"to": to.id, "body": "spam"}})
		x2 := dialNode(t, nodes[1], "marker for to")
		x2.join(s.member(ch), "sx2")
		x2.call("verto.info", map[string]any{"msg": map[string]any{"to": to.id, "body": "marker"}})
		a.call("verto.info", map[string]any{"msg": map[string]any{"to": stranger.id, "body": "spam"}})
		for _, b := range []*client{b1, b2} {
			f := b.waitFor(5*time.Second, "marker", func(f map[string]any) bool { return f["method"] == "verto.info" })
			if msg := params(f)["msg"].(map[string]any); msg["body"] != "marker" {
				t.Fatalf("%s: a message from another channel: %v", b.name, msg)
			}
		}
		y := dialNode(t, nodes[0], "same channel as stranger")
		y.join(s.member(other), "sy")
		y.call("verto.info", map[string]any{"msg": map[string]any{"to": stranger.id, "body": "marker"}})
		f := x.waitFor(5*time.Second, "marker", func(f map[string]any) bool { return f["method"] == "verto.info" })
		if msg := params(f)["msg"].(map[string]any); msg["body"] != "marker" {
			t.Fatalf("stranger: a message from another channel: %v", msg)
		}
	})

	t.Run("takeover punts across processes", func(t *testing.T) {
		ch := s.channel()
		m, other := s.member(ch), s.member(ch)
		old := dialNode(t, nodes[0], "old")
		old.join(m, "same-sessid")
		// Another user with the same sessid takes nothing: a direct message
		// process 1 sends after that login, on the same subject as a punt,
		// comes first.
		o := dialNode(t, nodes[1], "other")
		o.join(other, "same-sessid")
		o.call("verto.info", map[string]any{"msg": map[string]any{"to": m.id, "body": "marker"}})
		if f := old.waitFor(5*time.Second, "marker", func(f map[string]any) bool {
			return f["method"] == "verto.punt" || f["method"] == "verto.info"
		}); f["method"] != "verto.info" {
			t.Fatalf("another user's login punted: %v", f)
		}
		// The same user with the same sessid on another process takes over.
		now := dialNode(t, nodes[2], "new")
		now.join(m, "same-sessid")
		old.waitFor(5*time.Second, "punt", func(f map[string]any) bool { return f["method"] == "verto.punt" })
		select {
		case <-old.closed:
		case <-time.After(5 * time.Second):
			t.Fatal("the punted socket stays open")
		}
		// The new session works.
		if r := now.call("echo", map[string]any{"x": 1}); r["result"] == nil {
			t.Fatalf("echo after takeover: %v", r)
		}
		select {
		case <-now.closed:
			t.Fatal("the new socket was closed")
		default:
		}
	})

	t.Run("one budget per member over all processes", func(t *testing.T) {
		ch := s.channel()
		m := s.member(ch)
		a, b := dialNode(t, nodes[0], "m@0"), dialNode(t, nodes[1], "m@1")
		a.join(m, "ba")
		b.join(m, "bb")
		// The burst (20) spent through one process…
		began := time.Now()
		for i := range 20 {
			if r := a.broadcast(ch, fmt.Sprint(i)); errorCode(r) != "" {
				t.Fatalf("broadcast %d: %v", i, r)
			}
		}
		// …is spent on the other too once its events got there: of 20 more
		// through it, only what the budget refilled meanwhile (2/s) goes.
		b.waitFor(5*time.Second, "the last event", isEvent("19"))
		accepted := 0
		for i := range 20 {
			if r := b.broadcast(ch, fmt.Sprint("b", i)); errorCode(r) == "" {
				accepted++
			} else if !strings.HasPrefix(errorCode(r), "-32010") {
				t.Fatalf("broadcast through b: %v", r)
			}
		}
		refill := int(2*time.Since(began).Seconds()) + 1
		t.Logf("%d of 20 more broadcasts through another process went (refill %d)", accepted, refill)
		if accepted >= 20 || accepted > refill {
			t.Fatalf("%d broadcasts over the member's budget went through another process", accepted)
		}
	})

	t.Run("max clients per channel holds across processes", func(t *testing.T) {
		ch := s.channel()
		const tries = 12
		var ms []member
		for range tries {
			ms = append(ms, s.member(ch))
		}
		cs := make([]*client, tries)
		for i := range tries {
			cs[i] = dialNode(t, nodes[i%3], fmt.Sprintf("l%d", i))
		}
		results := make([]map[string]any, tries)
		var wg sync.WaitGroup
		for i := range tries {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[i] = cs[i].login(ms[i], "s")
			}()
		}
		wg.Wait()
		var in []int
		for i, r := range results {
			if r["result"] != nil {
				in = append(in, i)
			} else if !strings.Contains(errorCode(r), "Channel is full") {
				t.Fatalf("login %d: %v", i, r)
			}
		}
		if len(in) != 3 {
			t.Fatalf("%d of %d simultaneous logins got in, want exactly 3", len(in), tries)
		}
		// A second tab of a member that is in gets in; a fourth user does not.
		second := dialNode(t, nodes[(in[0]+1)%3], "second tab")
		if r := second.login(ms[in[0]], "s2"); r["result"] == nil {
			t.Fatalf("second tab of a member: %v", r)
		}
		var out member
		for i := range ms {
			if !slices.Contains(in, i) {
				out = ms[i]
				break
			}
		}
		late := dialNode(t, nodes[2], "late")
		if r := late.login(out, "s"); !strings.Contains(errorCode(r), "Channel is full") {
			t.Fatalf("a fourth user: %v", r)
		}
		// When one member leaves everywhere, its place is free again.
		leaving := in[1]
		cs[leaving].ws.CloseNow()
		deadline := time.Now().Add(5 * time.Second)
		for {
			c := dialNode(t, nodes[0], "retry")
			if r := c.login(out, "s"); r["result"] != nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the place of a member who left was not given back")
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
}

// leaveData is what the browser broadcasts when it leaves a channel.
var leaveData = base64.StdEncoding.EncodeToString([]byte(`{"t":"unavailable"}`))

// TestClusterNodeDeath: without a client limit (so the directory cache is
// on), a deleted channel's clients cannot log in anywhere within two
// seconds; a process killed with SIGKILL takes its members out of the
// others' presence within a few seconds.
func TestClusterNodeDeath(t *testing.T) {
	const expiry = 3 * time.Second
	s := newSite(t, clustertest.NATS(t), "CHANNELS_CLUSTER_EXPIRY="+expiry.String())
	nodes := s.start(3)

	t.Run("deleted channel", func(t *testing.T) {
		ch := s.channel()
		m := s.member(ch)
		for i, n := range nodes { // every process caches the client
			c := dialNode(t, n, fmt.Sprint("cache", i))
			c.join(m, "s"+fmt.Sprint(i))
			c.ws.CloseNow()
		}
		if err := s.st.DeleteChannel(t.Context(), ch); err != nil {
			t.Fatal(err)
		}
		deleted := time.Now()
		for i, n := range nodes {
			for {
				c := dialNode(t, n, fmt.Sprint("deleted", i))
				r := c.login(m, "sx")
				c.ws.CloseNow()
				if r["result"] == nil {
					break
				}
				if time.Since(deleted) > 2*time.Second {
					t.Fatalf("process %d still lets a client of a channel deleted %v ago log in: %v", i, time.Since(deleted).Round(time.Millisecond), r)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		t.Logf("every process refused the deleted channel's client %v after the deletion", time.Since(deleted).Round(time.Millisecond))
	})

	t.Run("kill -9", func(t *testing.T) {
		ch := s.channel()
		var cs []*client
		var ms []member
		for i, n := range nodes {
			m := s.member(ch)
			c := dialNode(t, n, fmt.Sprint("p", i))
			c.join(m, "s")
			cs, ms = append(cs, c), append(ms, m)
		}
		// A member on two processes, one of which dies, stays present.
		both := s.member(ch)
		b0, b2 := dialNode(t, nodes[0], "both@0"), dialNode(t, nodes[2], "both@2")
		b0.join(both, "s0")
		b2.join(both, "s2")
		// No wait: the login replies mean the members' changes are at
		// NATS, ahead of anything the process sends later, and a node
		// applies its peers' changes before it can find them silent.
		start := time.Now()
		nodes[2].kill()
		for _, c := range cs[:2] {
			f := c.waitFor(8*time.Second, "leave event", func(f map[string]any) bool {
				return f["method"] == "verto.event" && params(f)["eventData"] == leaveData
			})
			p := params(f)
			if p["userid"] != ms[2].id+"@"+domain || p["subscribedChannel"] != ch {
				t.Fatalf("%s: leave event %v, want one for %s", c.name, p, ms[2].id)
			}
			t.Logf("%s saw the dead process's member leave after %v", c.name, time.Since(start).Round(10*time.Millisecond))
		}
		if d := time.Since(start); d > expiry+3*time.Second {
			t.Fatalf("leave took %v", d)
		}
		// The survivors still talk to each other, and the member still on
		// a live process did not leave: every leave was delivered before
		// this broadcast (a node delivers the leaves of a death before it
		// can have heard of anything later).
		cs[0].broadcast(ch, "after")
		for _, c := range cs[:2] {
			f := c.waitFor(5*time.Second, "event after the death", func(f map[string]any) bool {
				return f["method"] == "verto.event" && (params(f)["eventData"] == "after" || params(f)["userid"] == both.id+"@"+domain)
			})
			if params(f)["eventData"] != "after" {
				t.Fatalf("%s: leave of a member still present: %v", c.name, f)
			}
		}
	})
}
