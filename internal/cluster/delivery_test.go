package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"channels/internal/cluster/clustertest"
)

// trials is how many times the delivery tests try: CHANNELS_TRIALS, or
// 1,000 (100 with -short).
func trials() int {
	if n, err := strconv.Atoi(os.Getenv("CHANNELS_TRIALS")); err == nil && n > 0 {
		return n
	}
	if testing.Short() {
		return 100
	}
	return 1000
}

// TestClusterDeliveredAfterReply: on two processes, with no wait
// anywhere, a message sent right after another member's login or
// subscribe reply reaches it: a broadcast from process 1 to a member that
// has just subscribed on process 2, a direct message from process 1 to a
// member that has just logged in on process 2 (a quarter of the time
// while another tab of it is open on process 1, which must get it too).
// Each trial is a new member; each loss is counted.
func TestClusterDeliveredAfterReply(t *testing.T) {
	n := trials()
	s := newSite(t, clustertest.NATS(t))
	nodes := s.start(2)
	const workers = 8
	var lostEvents, lostMessages atomic.Int64

	t.Run("broadcasts", func(t *testing.T) {
		for w := range workers {
			t.Run(fmt.Sprint("worker", w), func(t *testing.T) {
				t.Parallel()
				ch := s.channel()
				// Senders on process 1 take turns: each member's budget is
				// 20 broadcasts at once, then 2 a second.
				senders := loginSenders(t, s, nodes[0], ch, w, 8)
				for i := w; i < n; i += workers {
					rx := dialNode(t, nodes[1], fmt.Sprint("rx", i))
					rx.join(s.member(ch), "r")
					data := fmt.Sprint("trial ", i)
					if r := senders[i/workers%len(senders)].broadcast(ch, data); errorCode(r) != "" {
						t.Fatalf("broadcast: %v", r)
					}
					if _, ok := rx.await(3*time.Second, isEvent(data)); !ok {
						lostEvents.Add(1)
						t.Errorf("trial %d: the broadcast sent after the subscribe reply did not arrive", i)
					}
					rx.ws.CloseNow()
				}
			})
		}
	})

	t.Run("direct messages", func(t *testing.T) {
		for w := range workers {
			t.Run(fmt.Sprint("worker", w), func(t *testing.T) {
				t.Parallel()
				ch := s.channel()
				// 100 messages at once per member, then 25 a second.
				senders := loginSenders(t, s, nodes[0], ch, w, 2)
				for i := w; i < n; i += workers {
					m := s.member(ch)
					var tabs []*client
					if i%4 == 0 { // an older tab on the sender's process
						old := dialNode(t, nodes[0], fmt.Sprint("old tab", i))
						if r := old.login(m, "t1"); r["result"] == nil {
							t.Fatalf("login: %v", r)
						}
						tabs = append(tabs, old)
					}
					rx := dialNode(t, nodes[1], fmt.Sprint("rx", i))
					if r := rx.login(m, "t2"); r["result"] == nil {
						t.Fatalf("login: %v", r)
					}
					tabs = append(tabs, rx)
					body := fmt.Sprint("trial ", i)
					r := senders[i/workers%len(senders)].call("verto.info", map[string]any{"msg": map[string]any{"to": m.id, "body": body}})
					if errorCode(r) != "" {
						t.Fatalf("info: %v", r)
					}
					for _, c := range tabs {
						if _, ok := c.await(3*time.Second, isMessage(body)); !ok {
							lostMessages.Add(1)
							t.Errorf("trial %d: %s did not get the message sent after the login reply", i, c.name)
						}
						c.ws.CloseNow()
					}
				}
			})
		}
	})
	t.Logf("%d trials each: %d broadcasts and %d direct messages lost", n, lostEvents.Load(), lostMessages.Load())
}

func isMessage(body string) func(map[string]any) bool {
	return func(f map[string]any) bool {
		if f["method"] != "verto.info" {
			return false
		}
		msg, _ := params(f)["msg"].(map[string]any)
		return msg["body"] == body
	}
}

// await is waitFor that reports a timeout instead of failing.
func (c *client) await(d time.Duration, ok func(map[string]any) bool) (map[string]any, bool) {
	deadline := time.Now().Add(d)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			return nil, false
		}
		if f := c.next(left); f != nil && ok(f) {
			return f, true
		}
	}
}

// TestClusterTakeoverRace: two logins of one session on two processes at
// the same moment: exactly one of them is punted, whichever, and never
// both or neither. The order comes from a logical clock, not from the
// hosts' clocks.
func TestClusterTakeoverRace(t *testing.T) {
	s := newSite(t, clustertest.NATS(t))
	nodes := s.start(2)
	ch := s.channel()
	// Markers come from a member on each process: a punt that either
	// process sent before its marker arrives before it.
	var markers []*client
	for i, n := range nodes {
		c := dialNode(t, n, fmt.Sprint("marker", i))
		if r := c.login(s.member(ch), "m"); r["result"] == nil {
			t.Fatalf("login: %v", r)
		}
		markers = append(markers, c)
	}
	isPunt := func(f map[string]any) bool { return f["method"] == "verto.punt" }
	punted := [2]int{}
	for trial := range 20 {
		m := s.member(ch)
		cs := []*client{dialNode(t, nodes[0], "tab@1"), dialNode(t, nodes[1], "tab@2")}
		start := make(chan struct{})
		var wg sync.WaitGroup
		for _, c := range cs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				c.send("login", map[string]any{"login": m.id, "passwd": m.password, "sessid": "same"})
			}()
		}
		close(start)
		wg.Wait()
		// Exactly one is punted…
		var loser, winner int
		select {
		case <-cs[0].closed:
			loser, winner = 0, 1
		case <-cs[1].closed:
			loser, winner = 1, 0
		case <-time.After(10 * time.Second):
			t.Fatalf("trial %d: neither of two logins of one session was punted", trial)
		}
		punted[loser]++
		// …and the other is not: both processes' markers come after any
		// punt either sent for it.
		for _, mk := range markers {
			mk.call("verto.info", map[string]any{"msg": map[string]any{"to": m.id, "body": fmt.Sprint("marker ", trial)}})
		}
		for range markers {
			f := cs[winner].waitFor(5*time.Second, "marker", func(f map[string]any) bool { return isPunt(f) || isMessage(fmt.Sprint("marker ", trial))(f) })
			if isPunt(f) {
				t.Fatalf("trial %d: both logins of one session were punted", trial)
			}
		}
		for _, c := range cs {
			c.ws.CloseNow()
		}
	}
	t.Logf("punted: the login on process 1 %d times, on process 2 %d times", punted[0], punted[1])
}

// TestClusterRecipientBusy: a member whose reader stalls on process 2 is
// refused "Recipient is busy" to senders on process 1, as on one process,
// and loses nothing it was sent before: every message answered SENT
// arrives once it reads again; then it can be reached again.
func TestClusterRecipientBusy(t *testing.T) {
	s := newSite(t, clustertest.NATS(t))
	nodes := s.start(2)
	ch := s.channel()
	target := s.member(ch)

	// The stalled reader: it reads the login's answers, then nothing, on
	// a small receive buffer.
	ctx := t.Context()
	dialer := &net.Dialer{}
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(16 << 10)
		}
		return c, err
	}}}
	ws, _, err := websocket.Dial(ctx, "ws://"+nodes[1].addr+"/verto", &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	ws.SetReadLimit(1 << 20)
	login, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": "login", "params": map[string]any{"login": target.id, "passwd": target.password, "sessid": "t"}})
	if err := ws.Write(ctx, websocket.MessageText, login); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the reply and verto.clientReady
		if _, data, err := ws.Read(ctx); err != nil || !strings.Contains(string(data), `"`) {
			t.Fatalf("login: %s %v", data, err)
		}
	}

	// Members on process 1 send 60 KB messages in turn (each member may
	// queue 6 at once) until one is refused.
	var senders []*client
	for i := range 60 {
		c := dialNode(t, nodes[0], fmt.Sprint("sender", i))
		if r := c.login(s.member(ch), "s"); r["result"] == nil {
			t.Fatalf("login: %v", r)
		}
		senders = append(senders, c)
	}
	body := strings.Repeat("m", 60_000)
	sent, refused := 0, 0
	var who []int // the sender of each message answered SENT
	for i := 0; refused == 0; i++ {
		if i == 1000 {
			t.Fatalf("%d messages sent to a stalled reader on another process, none refused", sent)
		}
		r := senders[i%len(senders)].call("verto.info", map[string]any{"msg": map[string]any{"to": target.id, "body": fmt.Sprintf("%d %s", sent, body)}})
		switch code := errorCode(r); {
		case code == "":
			who = append(who, i%len(senders))
			sent++
		case strings.Contains(code, "Recipient is busy"):
			refused++
		case strings.Contains(code, "Rate limit"):
		default:
			t.Fatalf("info: %v", r)
		}
	}
	t.Logf("%d messages sent before the stalled reader on another process was busy", sent)

	// It reads again: everything answered SENT arrives, each sender's in
	// the order it sent them (the messages of different senders are not
	// ordered among themselves: the relay promises order per sender).
	got := 0
	seen := make(map[int]bool, sent)
	last := map[int]int{} // sender → its last message number
	for got < sent {
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, data, err := ws.Read(rctx)
		cancel()
		if err != nil {
			t.Fatalf("after %d of %d messages: %v", got, sent, err)
		}
		var f map[string]any
		if json.Unmarshal(data, &f) != nil || f["method"] != "verto.info" {
			continue
		}
		b, _ := params(f)["msg"].(map[string]any)["body"].(string)
		ns, _, _ := strings.Cut(b, " ")
		n, err := strconv.Atoi(ns)
		if err != nil || n < 0 || n >= sent || seen[n] {
			t.Fatalf("message %q arrived (%d of %d so far): not one of those sent, or twice", ns, got, sent)
		}
		sender := who[n]
		if prev, ok := last[sender]; ok && n < prev {
			t.Fatalf("sender %d's message %d arrived after its message %d", sender, n, prev)
		}
		seen[n], last[sender] = true, n
		got++
	}
	// It can be reached again once its process has said so.
	marker := dialNode(t, nodes[0], "marker")
	if r := marker.login(s.member(ch), "mk"); r["result"] == nil {
		t.Fatalf("login: %v", r)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		r := marker.call("verto.info", map[string]any{"msg": map[string]any{"to": target.id, "body": "marker"}})
		if errorCode(r) == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still refused after the reader caught up: %v", r)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, data, err := ws.Read(rctx)
		cancel()
		if err != nil {
			t.Fatalf("the marker did not arrive: %v", err)
		}
		if strings.Contains(string(data), `"body":"marker"`) {
			break
		}
		if strings.Contains(string(data), `"verto.info"`) {
			t.Fatalf("a message beyond those answered SENT: %.80s", data)
		}
	}
}

// loginSenders logs k new members of ch in on n, as worker w's senders.
func loginSenders(t *testing.T, s *site, n *node, ch string, w, k int) []*client {
	t.Helper()
	var senders []*client
	for i := range k {
		c := dialNode(t, n, fmt.Sprintf("sender%d.%d", w, i))
		if r := c.login(s.member(ch), "s"); r["result"] == nil {
			t.Fatalf("login: %v", r)
		}
		senders = append(senders, c)
	}
	return senders
}
