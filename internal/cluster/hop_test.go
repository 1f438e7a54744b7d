package cluster_test

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"channels/internal/hub"
	"channels/internal/hub/hubtest"
)

// budgetClient is one socket of a member that only broadcasts.
type budgetClient struct {
	t  *testing.T
	r  *hubtest.Raw
	id int
}

// dialBudget opens a socket to url and logs user in (not subscribed).
func dialBudget(t *testing.T, url, user string) *budgetClient {
	t.Helper()
	r, err := hubtest.DialRaw(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	if err := r.Login(user, "pw", "s-"+randomHex(4), ""); err != nil {
		t.Fatal(err)
	}
	return &budgetClient{t: t, r: r, id: 100}
}

// broadcast sends one broadcast to "room" and reports whether the hub
// accepted it.
func (c *budgetClient) broadcast() bool {
	c.t.Helper()
	c.id++
	req := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"verto.broadcast","params":{"eventChannel":"room","eventData":"x","localBroadcast":true}}`, c.id)
	if err := c.r.Send([]byte(req)); err != nil {
		c.t.Fatal(err)
	}
	for {
		p, err := c.r.Next()
		if err != nil {
			c.t.Fatalf("waiting for broadcast %d's reply: %v", c.id, err)
		}
		var f struct {
			ID     int             `json:"id"`
			Method string          `json:"method"`
			Error  json.RawMessage `json:"error"`
		}
		if json.Unmarshal(p, &f) != nil || f.Method != "" || f.ID != c.id {
			continue
		}
		if f.Error != nil && !strings.Contains(string(f.Error), "-32010") {
			c.t.Fatalf("broadcast %d: %s", c.id, p)
		}
		return f.Error == nil
	}
}

// TestBudgetsFollowHops: a member's broadcast budget follows it from
// process to process. A member broadcasts as fast as it is answered for
// a window, through one socket that stays on one hub, that hops from hub
// to hub every 250 ms (closing the old socket, then opening the new; or
// opening the new, then closing the old), or through two sockets on two
// hubs at once, taking turns. A token bucket of rate r and burst b
// accepts at most b + r·t in any window of t, whatever the sockets: that
// is the bound for each way, plus two for what is in flight between hubs
// when the window ends (the last broadcast a hub accepted before it heard
// of another's; such a broadcast leaves the member in debt, and it pays
// it back, so it does not add up over hops). Before budgets followed
// the member, each hop bought what the hub it came to had refilled while
// the member was away (an arrival found the bucket it had left, refilled,
// or a full one), and two sockets on hubs that do not hear each other
// had two budgets.
//
// The hubs hear "room" only while they have a subscriber there or the
// member is on them: the one subscriber is on hub 0. The budget is 10/s,
// 20 at once, so that 3 s tell; CHANNELS_MEASURE_HOPS=30s measures the
// issue's case instead: the default budget (2/s, 20 at once), a hop every
// 3 s, for 30 s. Measured before and after (3 s; 30 s): staying 49 and
// 49; 79 and 79. Hopping 134 and 48; 203 and 79. Hopping with overlap 134
// and 49; 203 and 79. Two hubs at once 98 and 50; 158 and 79.
func TestBudgetsFollowHops(t *testing.T) {
	const tolerance = 2
	rate, burst, window, hop := 10.0, 20, 3*time.Second, 250*time.Millisecond
	if d, err := time.ParseDuration(os.Getenv("CHANNELS_MEASURE_HOPS")); err == nil && d > 0 {
		// The measurement: the default budget, a hop every 3 s.
		rate, burst, window, hop = hub.DefaultBroadcastRate, hub.DefaultBroadcastBurst, d, 3*time.Second
	}
	urls, nodes := startHubs(t, 3, hubsConfig{broadcast: hub.Budget{Rate: rate, Burst: burst}})
	victim, err := hubtest.DialRaw(urls[0])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(victim.Close)
	if err := victim.Login("victim", "pw", "s-victim", "room"); err != nil {
		t.Fatal(err)
	}
	go func() { // it reads everything, so it is never cut
		for {
			if _, err := victim.Next(); err != nil {
				return
			}
		}
	}()

	measure := func(t *testing.T, send func(user string, end time.Time) int) {
		user := "m" + randomHex(4)
		start := time.Now()
		accepted := send(user, start.Add(window))
		elapsed := time.Since(start)
		bound := burst + int(rate*elapsed.Seconds()) + tolerance
		t.Logf("%d broadcasts accepted in %v (a bucket accepts at most %d; bound %d)", accepted, elapsed.Round(time.Millisecond), bound-tolerance, bound)
		if accepted > bound {
			t.Errorf("%d broadcasts accepted in %v, over the bound of %d: the member's budget did not follow it", accepted, elapsed.Round(time.Millisecond), bound)
		}
	}
	// spend broadcasts through c until end, counting those accepted.
	spend := func(c *budgetClient, end time.Time) (n int) {
		for time.Now().Before(end) {
			if c.broadcast() {
				n++
			}
		}
		return n
	}

	t.Run("staying", func(t *testing.T) {
		measure(t, func(user string, end time.Time) int {
			return spend(dialBudget(t, urls[1], user), end)
		})
	})
	t.Run("hopping", func(t *testing.T) {
		measure(t, func(user string, end time.Time) int {
			n := 0
			for i := 1; time.Now().Before(end); i++ {
				c := dialBudget(t, urls[i%len(urls)], user)
				n += spend(c, earliest(time.Now().Add(hop), end))
				c.r.Close()
			}
			return n
		})
	})
	t.Run("hopping with overlap", func(t *testing.T) {
		measure(t, func(user string, end time.Time) int {
			n := 0
			var prev *budgetClient
			for i := 1; time.Now().Before(end); i++ {
				c := dialBudget(t, urls[i%len(urls)], user)
				if prev != nil {
					prev.r.Close()
				}
				n += spend(c, earliest(time.Now().Add(hop), end))
				prev = c
			}
			return n
		})
	})
	t.Run("two hubs at once", func(t *testing.T) {
		measure(t, func(user string, end time.Time) int {
			cs := []*budgetClient{dialBudget(t, urls[1], user), dialBudget(t, urls[2], user)}
			n := 0
			for i := 0; time.Now().Before(end); i++ {
				if cs[i%2].broadcast() {
					n++
				}
			}
			return n
		})
	})
	// A level that came after the hold's deadline (a loaded machine) is
	// still adopted when it comes; the counts above are what must hold.
	for i, node := range nodes {
		if late := node.Stats().LevelsLate; late != 0 {
			t.Logf("hub %d: %d members waited for budget levels until the deadline", i, late)
		}
	}
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
