package cluster_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"channels/internal/cluster/clustertest"
)

// dm sends a direct message and returns its reply.
func (c *client) dm(to, body string) map[string]any {
	c.t.Helper()
	return c.call("verto.info", map[string]any{"msg": map[string]any{"to": to, "body": body}})
}

func sent(r map[string]any) bool {
	res, _ := r["result"].(map[string]any)
	return res != nil && res["message"] == "SENT"
}

// eventData is what a frame carries: a broadcast's eventData or a direct
// message's body.
func eventData(f map[string]any) string {
	p := params(f)
	if f["method"] == "verto.info" {
		msg, _ := p["msg"].(map[string]any)
		return fmt.Sprint(msg["body"])
	}
	return fmt.Sprint(p["eventData"])
}

// TestNATSOutageRefusesAndDropsStale: what a NATS outage does to
// cross-process traffic, with two hubs on a private nats-server that is
// killed and started again. While a process's NATS link is down, a direct
// message to a member on the other process is refused to its sender
// (-32012 "Recipient unreachable, try again shortly"), not answered SENT,
// while one to a member on the same process is delivered; nothing sent
// during the outage is delivered after it (a marker each side sends once
// the link is back comes first: NATS keeps one publisher's order, so
// anything older would have come before it); and once both processes are
// back, direct messages and broadcasts cross again. Before, the message
// across was answered SENT and either lost (the process that reconnected
// first flushed nats.go's reconnect buffer before the other had
// subscribed again) or delivered seconds late, in a burst.
func TestNATSOutageRefusesAndDropsStale(t *testing.T) {
	clustertest.NATS(t) // the shared server is not used, but CI must have one
	ns := &natsServer{t: t, addr: freeAddr(t)}
	t.Cleanup(ns.kill)
	ns.start()
	urls, nodes := startHubs(t, 2, hubsConfig{nats: []string{"nats://" + ns.addr}})
	ca, cc := dialURL(t, urls[0], "a", nil), dialURL(t, urls[0], "c", nil)
	cb := dialURL(t, urls[1], "b", nil)
	ca.join(member{id: "ua", password: "pw", channel: "room"}, "sa")
	cc.join(member{id: "uc", password: "pw", channel: "room"}, "sc")
	cb.join(member{id: "ub", password: "pw", channel: "room"}, "sb")
	if r := ca.dm("ub", "before"); !sent(r) {
		t.Fatalf("a direct message across before the outage: %v", r)
	}
	cb.waitFor(5*time.Second, "the message before the outage", isMessage("before"))

	ns.kill()
	poll(t, "both processes to see the outage", 10*time.Second, func() bool {
		return !nodes[0].Stats().Connected && !nodes[1].Stats().Connected
	})
	for _, tt := range []struct {
		from *client
		to   string
	}{{ca, "ub"}, {cb, "ua"}} {
		r := tt.from.dm(tt.to, "during-"+tt.from.name)
		if sent(r) || !strings.HasPrefix(errorCode(r), "-32012 ") {
			t.Errorf("%s: a direct message to %s on the other process during the outage: %v, want -32012", tt.from.name, tt.to, r)
		}
	}
	// On the same process, messages and broadcasts still work.
	if r := ca.dm("uc", "local"); !sent(r) {
		t.Errorf("a direct message on the same process during the outage: %v", r)
	}
	cc.waitFor(5*time.Second, "the local message", isMessage("local"))
	ca.broadcast("room", "during-a")
	cb.broadcast("room", "during-b")
	cc.waitFor(5*time.Second, "the local broadcast", isEvent("during-a"))

	ns.start()
	// Back once a direct message crosses each way (refused until then).
	for _, tt := range []struct {
		from, to *client
		uid      string
	}{{ca, cb, "ub"}, {cb, ca, "ua"}} {
		deadline := time.Now().Add(20 * time.Second)
		for i := 0; ; i++ {
			body := fmt.Sprintf("probe-%s-%d", tt.from.name, i)
			r := tt.from.dm(tt.uid, body)
			if sent(r) {
				if _, ok := tt.to.await(5*time.Second, isMessage(body)); !ok {
					t.Fatalf("%s: answered SENT after the outage, never delivered: %s", tt.from.name, body)
				}
				break
			}
			if !strings.HasPrefix(errorCode(r), "-32012 ") {
				t.Fatalf("%s: %v", tt.from.name, r)
			}
			if time.Now().After(deadline) {
				t.Fatal("direct messages never crossed again after the outage")
			}
			// Refused: the link is not back yet. The next try waits for
			// an event that cannot come (bounded), not for a guess.
			tt.to.await(100*time.Millisecond, isMessage("never"))
		}
	}
	// Nothing sent during the outage comes after it.
	for _, tt := range []struct{ from, to *client }{{ca, cb}, {cb, ca}} {
		marker := "marker-" + tt.from.name
		tt.from.broadcast("room", marker)
		for {
			f, ok := tt.to.await(5*time.Second, func(f map[string]any) bool {
				return f["method"] == "verto.event" || f["method"] == "verto.info"
			})
			if !ok {
				t.Fatalf("%s: no %s", tt.to.name, marker)
			}
			if d := eventData(f); strings.HasPrefix(d, "during-") {
				t.Errorf("%s: %q, sent during the outage, delivered after it", tt.to.name, d)
			} else if d == marker {
				break
			}
		}
	}
	if r := ca.dm("ub", "after"); !sent(r) {
		t.Fatalf("a direct message across after the outage: %v", r)
	}
	cb.waitFor(5*time.Second, "the message after the outage", isMessage("after"))
}

// TestNATSOutageFigures measures what an outage of
// CHANNELS_MEASURE_OUTAGE (e.g. 15s) does to the traffic of
// CHANNELS_MEASURE_MEMBERS members (default 4) over two processes, each
// sending a direct message to a member on the other process and a
// broadcast every second: how many direct messages were answered SENT and
// lost, or delivered late (over 2 s after they were sent), how many were
// refused, and the same for the broadcasts' deliveries across.
func TestNATSOutageFigures(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("CHANNELS_MEASURE_OUTAGE"))
	if err != nil {
		t.Skip("set CHANNELS_MEASURE_OUTAGE=15s to measure")
	}
	members := 4
	if v, err := strconv.Atoi(os.Getenv("CHANNELS_MEASURE_MEMBERS")); err == nil && v >= 2 {
		members = v
	}
	ns := &natsServer{t: t, addr: freeAddr(t)}
	t.Cleanup(ns.kill)
	ns.start()
	urls, _ := startHubs(t, 2, hubsConfig{nats: []string{"nats://" + ns.addr}})
	type arrival struct{ at, sent time.Time }
	var mu sync.Mutex
	got := map[string][]arrival{} // body → its arrivals across
	side := func(i int) int { return i % 2 }
	uid := func(i int) string { return fmt.Sprintf("m%d", i) }
	senders := make([]*client, members)
	for i := range members {
		rx := dialURL(t, urls[side(i)], "rx"+uid(i), nil)
		rx.join(member{id: uid(i), password: "pw", channel: "room"}, "rx"+uid(i))
		senders[i] = dialURL(t, urls[side(i)], "tx"+uid(i), nil)
		if r := senders[i].login(member{id: uid(i), password: "pw"}, "tx"+uid(i)); r["result"] == nil {
			t.Fatal(r)
		}
		go func() {
			for {
				select {
				case f := <-rx.frames:
					body := eventData(f)
					parts := strings.Split(body, "/")
					if len(parts) != 3 || parts[1] == strconv.Itoa(side(i)) {
						continue // not a measured one, or from this process
					}
					ns, _ := strconv.ParseInt(parts[2], 10, 64)
					mu.Lock()
					got[body] = append(got[body], arrival{time.Now(), time.Unix(0, ns)})
					mu.Unlock()
				case <-rx.closed:
					return
				}
			}
		}()
	}
	var dmSent, dmRefused, evSent atomic.Int64
	var sentDMs sync.Map // body → true
	var evs sync.Map
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			c := senders[i]
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				to := rand.IntN(members)
				for side(to) == side(i) {
					to = rand.IntN(members)
				}
				body := fmt.Sprintf("dm-%d-%d/%d/%d", i, k, side(i), time.Now().UnixNano())
				if r := c.dm(uid(to), body); sent(r) {
					dmSent.Add(1)
					sentDMs.Store(body, true)
				} else {
					dmRefused.Add(1)
				}
				ev := fmt.Sprintf("ev-%d-%d/%d/%d", i, k, side(i), time.Now().UnixNano())
				if r := c.broadcast("room", ev); r["result"] != nil {
					evSent.Add(1)
					evs.Store(ev, true)
				}
			}
		}()
	}
	time.Sleep(2 * time.Second)
	killed := time.Now()
	ns.kill()
	time.Sleep(d)
	restarted := time.Now()
	ns.start()
	time.Sleep(5 * time.Second)
	close(stop)
	wg.Wait()
	time.Sleep(2 * time.Second)
	mu.Lock()
	defer mu.Unlock()
	count := func(m *sync.Map, perMsg int) (lost, late, lateMax int, worst time.Duration) {
		m.Range(func(k, _ any) bool {
			arr := got[k.(string)]
			lost += perMsg - len(arr)
			if perMsg == 1 && len(arr) == 0 {
				parts := strings.Split(k.(string), "/")
				ns, _ := strconv.ParseInt(parts[2], 10, 64)
				at := time.Unix(0, ns)
				t.Logf("lost: %s, sent %v after the kill, %v after the restart", parts[0], at.Sub(killed).Round(time.Millisecond), at.Sub(restarted).Round(time.Millisecond))
			}
			for _, a := range arr {
				if lag := a.at.Sub(a.sent); lag > 2*time.Second {
					late++
					worst = max(worst, lag)
				}
			}
			return true
		})
		return lost, late, 0, worst
	}
	dmLost, dmLate, _, dmWorst := count(&sentDMs, 1)
	evLost, evLate, _, evWorst := count(&evs, members/2) // each reaches the other process's members
	t.Logf("outage %v, %d members over 2 processes: direct messages across: %d SENT (%d lost, %d late, the latest %v), %d refused; broadcasts: %d, deliveries across %d lost, %d late (the latest %v)",
		d, members, dmSent.Load(), dmLost, dmLate, dmWorst.Round(time.Millisecond), dmRefused.Load(), evSent.Load(), evLost, evLate, evWorst.Round(time.Millisecond))
}
